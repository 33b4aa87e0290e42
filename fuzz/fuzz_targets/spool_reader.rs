//! Any bytes as a spool file: the scanner never panics, never serves a `.` line (it would
//! end the master's read), and serves only records inside the cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use munin_async::line::LineReader;
use munin_async::record::{write_served_line, Epoch, RecordSink, Scanner, MAX_LINE};

struct Sink {
    after: u64,
    epoch: Option<Epoch>,
    out: Vec<u8>,
}

impl RecordSink for Sink {
    type Error = std::convert::Infallible;
    fn wants(&mut self, t: u64) -> bool {
        t > self.after
    }
    fn begin(&mut self, e: &Epoch) -> Result<(), Self::Error> {
        assert!(e.value() > self.after);
        self.epoch = Some(*e);
        Ok(())
    }
    fn line(&mut self, line: &[u8]) -> Result<(), Self::Error> {
        assert_ne!(line, b".");
        let e = self.epoch.expect("line outside a record");
        write_served_line(line, &e, &mut self.out);
        Ok(())
    }
    fn end(&mut self) -> Result<(), Self::Error> {
        self.epoch = None;
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let (&first, file) = match data.split_first() {
        Some(x) => x,
        None => return,
    };
    let mut sink = Sink {
        after: u64::from(first) * 1000,
        epoch: None,
        out: Vec::new(),
    };
    let mut scanner = Scanner::new();
    let capacity = usize::from(first % 16) + 1;
    let max = if first & 1 == 0 { MAX_LINE } else { 64 };
    let mut lines = LineReader::new(file, capacity, max);
    while let Some((end, line, n)) = lines.next_line().unwrap() {
        scanner.line(line, end, n, &mut sink).unwrap();
    }
    scanner.finish(&mut sink).unwrap();
    assert!(!sink.out.starts_with(b".\n") && !sink.out.windows(3).any(|w| w == b"\n.\n"));
});
