//! Any bytes as a spool file: the scanner never panics, never serves a `.` line (it would
//! end the master's read), serves only records after the cursor, and gives the same
//! records whether it is fed line by line or block by block, through any buffer size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use munin_async::spool::record::{
    write_served_line, Epoch, RecordSink, ScanStats, Scanner, MAX_LINE,
};
use munin_async::util::line::{Block, LineReader};

struct Sink {
    after: u64,
    epoch: Option<Epoch>,
    out: Vec<u8>,
    records: Vec<u64>,
}

impl RecordSink for Sink {
    type Error = std::convert::Infallible;
    fn wants(&mut self, t: u64) -> bool {
        t > self.after
    }
    fn begin(&mut self, e: &Epoch) -> Result<bool, Self::Error> {
        assert!(e.value() > self.after);
        self.epoch = Some(*e);
        self.records.push(e.value());
        Ok(true)
    }
    fn line(&mut self, line: &[u8]) -> Result<bool, Self::Error> {
        assert_ne!(line, b".");
        let e = self.epoch.expect("line outside a record");
        write_served_line(line, &e, &mut self.out);
        Ok(true)
    }
    fn end(&mut self) -> Result<bool, Self::Error> {
        self.epoch = None;
        Ok(true)
    }
}

fn scan(file: &[u8], after: u64, capacity: usize, max: usize, blocks: bool) -> (Sink, ScanStats) {
    let mut sink = Sink {
        after,
        epoch: None,
        out: Vec::new(),
        records: Vec::new(),
    };
    let mut scanner = Scanner::new();
    let mut lines = LineReader::new(file, capacity, max);
    if blocks {
        while let Some(b) = lines.next_block().unwrap() {
            let go_on = match b {
                Block::Lines(block) => scanner.block(block, &mut sink).unwrap(),
                Block::Line(end, line, n) => scanner.line(line, end, n, &mut sink).unwrap(),
            };
            assert!(go_on, "this sink never ends a scan");
        }
    } else {
        while let Some((end, line, n)) = lines.next_line().unwrap() {
            assert!(scanner.line(line, end, n, &mut sink).unwrap());
        }
    }
    assert!(scanner.finish(&mut sink).unwrap());
    (sink, scanner.stats())
}

fuzz_target!(|data: &[u8]| {
    let (&first, file) = match data.split_first() {
        Some(x) => x,
        None => return,
    };
    let after = u64::from(first) * 1000;
    let max = if first & 1 == 0 { MAX_LINE } else { 64 };
    let (by_line, line_stats) = scan(file, after, usize::from(first % 16) + 1, max, false);
    assert!(!by_line.out.starts_with(b".\n") && !by_line.out.windows(3).any(|w| w == b"\n.\n"));
    for capacity in [usize::from(first % 16) + 1, 4096] {
        let (by_block, block_stats) = scan(file, after, capacity, max, true);
        assert_eq!(by_block.out, by_line.out);
        assert_eq!(by_block.records, by_line.records);
        assert_eq!(block_stats.served, line_stats.served);
        assert_eq!(block_stats.damaged, line_stats.damaged);
    }
});
