use super::*;

/// Collects what a scan serves, as spoolfetch would send it.
#[derive(Default)]
struct Served {
    out: Vec<u8>,
    after: u64,
    epoch: Option<Epoch>,
    records: Vec<u64>,
}

impl RecordSink for Served {
    type Error = std::convert::Infallible;
    fn wants(&mut self, epoch: u64) -> bool {
        epoch > self.after
    }
    fn begin(&mut self, epoch: &Epoch) -> Result<bool, Self::Error> {
        self.epoch = Some(*epoch);
        self.records.push(epoch.value());
        Ok(true)
    }
    fn line(&mut self, line: &[u8]) -> Result<bool, Self::Error> {
        write_served_line(line, self.epoch.as_ref().unwrap(), &mut self.out);
        Ok(true)
    }
    fn end(&mut self) -> Result<bool, Self::Error> {
        self.epoch = None;
        Ok(true)
    }
}

/// Scans `file` through the bounded line reader with a small buffer, line by line and
/// block by block (as the spool reader does), and checks both ways agree.
fn scan(file: &[u8], after: u64) -> (Served, ScanStats) {
    let by_line = scan_with(file, after, false);
    for cap in [7, 64, 4096] {
        let (blocks, stats) = scan_with_cap(file, after, true, cap);
        assert_eq!(
            String::from_utf8_lossy(&blocks.out),
            String::from_utf8_lossy(&by_line.0.out),
            "blocks of {cap}"
        );
        assert_eq!(blocks.records, by_line.0.records, "blocks of {cap}");
        assert_eq!(stats.served, by_line.1.served, "blocks of {cap}");
        assert_eq!(stats.damaged, by_line.1.damaged, "blocks of {cap}");
        assert_eq!(
            stats.served_until, by_line.1.served_until,
            "blocks of {cap}"
        );
    }
    by_line
}

fn scan_with(file: &[u8], after: u64, blocks: bool) -> (Served, ScanStats) {
    scan_with_cap(file, after, blocks, 7)
}

fn scan_with_cap(file: &[u8], after: u64, blocks: bool, cap: usize) -> (Served, ScanStats) {
    let mut sink = Served {
        after,
        ..Served::default()
    };
    let mut scanner = Scanner::new();
    let mut lines = crate::util::line::LineReader::new(file, cap, 200);
    if blocks {
        while let Some(b) = lines.next_block().unwrap() {
            let go_on = match b {
                crate::util::line::Block::Lines(block) => scanner.block(block, &mut sink).unwrap(),
                crate::util::line::Block::Line(end, line, n) => {
                    scanner.line(line, end, n, &mut sink).unwrap()
                }
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

fn sealed(epoch: u64, body: &str) -> Vec<u8> {
    let mut v = Vec::new();
    write_sealed(epoch, body.as_bytes(), &mut v);
    v
}

/// Scans `file` through `sink` line by line, as far as the sink lets it; gives how many
/// lines were fed.
fn feed<S: RecordSink>(file: &[u8], sink: &mut S) -> Result<usize, S::Error> {
    let mut scanner = Scanner::new();
    let mut lines = crate::util::line::LineReader::new(file, 64, 200);
    let mut fed = 0;
    while let Some((end, line, n)) = lines.next_line().unwrap() {
        fed += 1;
        if !scanner.line(line, end, n, sink)? {
            return Ok(fed);
        }
    }
    scanner.finish(sink)?;
    Ok(fed)
}

#[test]
fn a_sink_ends_the_scan_with_false_and_an_error_ends_it_too() {
    let mut file = Vec::new();
    for t in [100, 200, 300] {
        file.extend_from_slice(&sealed(t, "a.value 1\nb.value 2\n"));
    }
    file.extend_from_slice(b"timestamp 400\nc.value 3\n");
    // Stops at the second record's start: nothing after it is fed.
    struct UpTo(u64, Vec<u64>);
    impl RecordSink for UpTo {
        type Error = String;
        fn begin(&mut self, e: &Epoch) -> Result<bool, String> {
            self.1.push(e.value());
            Ok(e.value() < self.0)
        }
    }
    let mut sink = UpTo(200, Vec::new());
    // A sealed record begins once its body is in and checked: two records of three
    // lines each.
    assert_eq!(feed(&file, &mut sink), Ok(6));
    assert_eq!(sink.1, [100, 200]);
    // The same from a line: the plain record's first line stops it.
    struct FirstLine(usize);
    impl RecordSink for FirstLine {
        type Error = String;
        fn line(&mut self, _: &[u8]) -> Result<bool, String> {
            self.0 += 1;
            Err(format!("line {}", self.0))
        }
    }
    let mut sink = FirstLine(0);
    assert_eq!(
        feed(b"timestamp 5\nx.value 1\ny.value 2\n", &mut sink),
        Err("line 1".into())
    );
}

#[test]
fn the_closure_adapter_gets_each_intact_record_whole() {
    let mut file = sealed(100, "a.value 1\nb.value 2\n");
    file.extend_from_slice(b"timestamp 200\nc.value 3\n.\n");
    let mut torn = sealed(300, "d.value 4\n");
    torn[20] ^= 1;
    file.extend_from_slice(&torn);
    file.extend_from_slice(&sealed(400, "e.value 5\n"));
    let mut got = Vec::new();
    let mut sink = records(|e: &Epoch, body: &[u8]| {
        got.push((e.value(), String::from_utf8_lossy(body).into_owned()));
        Ok::<_, std::convert::Infallible>(e.value() < 400)
    });
    assert_eq!(
        feed(&file, &mut sink),
        Ok(file.split(|&b| b == b'\n').count() - 1)
    );
    assert_eq!(
        got,
        [
            (100, "a.value 1\nb.value 2\n".to_string()),
            (200, "c.value 3\n".to_string()),
            (400, "e.value 5\n".to_string()),
        ]
    );
    // A classic record past MAX_RECORD is left out, the next one is not.
    let mut big = b"timestamp 500\n".to_vec();
    let line = format!("x.value {}\n", "9".repeat(150));
    while big.len() <= MAX_RECORD {
        big.extend_from_slice(line.as_bytes());
    }
    big.extend_from_slice(b"timestamp 600\ny.value 1\n");
    let mut times = Vec::new();
    let mut sink = records(|e: &Epoch, _: &[u8]| {
        times.push(e.value());
        Ok::<_, std::convert::Infallible>(true)
    });
    feed(&big, &mut sink).unwrap();
    assert_eq!(times, [600]);
}

#[test]
fn value_lines_are_rewritten_like_perl() {
    let e = Epoch::new(1000);
    let cases: &[(&str, &str)] = &[
        ("load.value 0.06", "load.value 1000:0.06"),
        ("load.value N:0.06", "load.value 1000:0.06"),
        ("load.value U", "load.value 1000:U"),
        ("load.value N", "load.value 1000:N"),
        ("load.value 1234:5", "load.value 1234:5"),
        ("load.value N:", "load.value N:"),
        ("load.value N:1:2", "load.value N:1:2"),
        ("load.value\t\t7", "load.value 1000:7"),
        ("load.value  ", "load.value 1000: "),
        ("load.value ", "load.value "),
        ("load.value", "load.value"),
        ("load.value5", "load.value5"),
        ("a.b.value 5", "a.b.value 5"),
        (".value 5", ".value 5"),
        ("load.value -1.5e+10", "load.value 1000:-1.5e+10"),
        ("load.value 12 \r", "load.value 1000:12 \r"),
        ("load.label load", "load.label load"),
        ("multigraph load", "multigraph load"),
        ("f\u{e9}.value 3", "f\u{e9}.value 3"),
    ];
    for (input, want) in cases {
        let mut out = Vec::new();
        write_served_line(input.as_bytes(), &e, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("{want}\n"),
            "input {input:?}"
        );
    }
}

#[test]
fn epoch_digits_are_copied_as_written() {
    let Some(Header::Plain(e)) = parse_header(b"timestamp 0042") else {
        panic!("not a plain header")
    };
    let mut out = Vec::new();
    write_served_line(b"x.value 1", &e, &mut out);
    assert_eq!(out, b"x.value 0042:1\n");
    assert_eq!(e.value(), 42);
}

#[test]
fn headers() {
    assert_eq!(parse_header(b"timestamp"), None);
    assert_eq!(parse_header(b"timestamp x"), None);
    assert_eq!(parse_header(b"timestamps 1"), None);
    assert!(matches!(parse_header(b"timestamp 12"), Some(Header::Plain(e)) if e.value() == 12));
    assert_eq!(parse_header(b"timestamp 12abc"), Some(Header::Damaged));
    assert_eq!(
        parse_header(b"timestamp 12!len=3 crc32=00000000"),
        Some(Header::Damaged)
    );
    assert_eq!(
        parse_header(b"timestamp 99999999999999999999999"),
        Some(Header::Damaged)
    );
    assert_eq!(
        parse_header(b"timestamp 5 len=3 crc32=zz"),
        Some(Header::Damaged)
    );
    assert_eq!(
        parse_header(b"timestamp 5 len=3 crc32=0000000A"),
        Some(Header::Damaged)
    );
    assert_eq!(
        parse_header(b"timestamp 5 len=3 crc32=00000000 x"),
        Some(Header::Damaged)
    );
    let s = sealed(5, "a\n");
    let line = &s[..s.iter().position(|&b| b == b'\n').unwrap()];
    assert!(matches!(
        parse_header(line),
        Some(Header::Sealed { len: 2, .. })
    ));
}

#[test]
fn plain_records_are_served_after_the_cursor() {
    let file = b"timestamp 100\nmultigraph load\nload.value 1\ntimestamp 200\nmultigraph load\nload.value N:2\n";
    let (s, stats) = scan(file, 100);
    assert_eq!(
        String::from_utf8_lossy(&s.out),
        "multigraph load\nload.value 200:2\n"
    );
    assert_eq!(s.records, vec![200]);
    assert_eq!(stats.damaged, 0);
    let (s, _) = scan(file, 0);
    assert_eq!(s.records, vec![100, 200]);
}

#[test]
fn sealed_records_are_verified() {
    let mut file = sealed(100, "multigraph a\na.value 1\n");
    file.extend(sealed(200, "multigraph a\na.value 2\n"));
    let (s, stats) = scan(&file, 0);
    assert_eq!(
        String::from_utf8_lossy(&s.out),
        "multigraph a\na.value 100:1\nmultigraph a\na.value 200:2\n"
    );
    assert_eq!((stats.served, stats.damaged), (2, 0));
}

#[test]
fn a_flipped_byte_loses_only_its_record() {
    let mut file = sealed(100, "multigraph a\na.value 1\n");
    let second = file.len();
    file.extend(sealed(200, "multigraph a\na.value 2\n"));
    file.extend(sealed(300, "multigraph a\na.value 3\n"));
    let n = file.len();
    // Flip a byte of every position of the second record in turn.
    let third = n - sealed(300, "multigraph a\na.value 3\n").len();
    for i in second..third {
        let mut damaged = file.clone();
        damaged[i] ^= 0x01;
        let (s, stats) = scan(&damaged, 0);
        assert_eq!(s.records.first(), Some(&100), "flip at {i}");
        assert_eq!(s.records.last(), Some(&300), "flip at {i}");
        assert!(
            !s.records.contains(&200),
            "flip at {i}: damaged record served"
        );
        assert!(stats.damaged >= 1, "flip at {i} not detected");
    }
}

#[test]
fn a_torn_tail_is_never_served_and_the_next_append_is() {
    let full = sealed(100, "multigraph a\na.value 1\n");
    for cut in 1..full.len() {
        let mut file = full[..cut].to_vec();
        let (s, stats) = scan(&file, 0);
        assert!(s.records.is_empty(), "cut at {cut}");
        assert_eq!(stats.damaged, 1, "cut at {cut}");
        // A writer that did not repair the tail appends the next record after it.
        file.extend(sealed(200, "multigraph a\na.value 2\n"));
        let (s, _) = scan(&file, 0);
        let glued = file[..cut].ends_with(b"\n");
        if glued {
            assert_eq!(s.records, vec![200], "cut at {cut}");
        } else {
            // The new header is glued onto the torn line and cannot be recognised;
            // nothing torn is served either way.
            assert!(
                s.records.is_empty() || s.records == vec![200],
                "cut at {cut}"
            );
        }
        assert!(
            !String::from_utf8_lossy(&s.out).contains("100:"),
            "cut at {cut}"
        );
    }
}

#[test]
fn plain_tail_cut_in_mid_line_is_not_served() {
    let (s, stats) = scan(b"timestamp 100\nmultigraph a\na.value 1", 0);
    assert_eq!(String::from_utf8_lossy(&s.out), "multigraph a\n");
    assert_eq!(stats.first_damage.map(|d| d.1), Some(Damage::TruncatedLine));
}

#[test]
fn junk_before_and_between_records_is_skipped_and_counted() {
    let mut file = b"garbage\n\xff\xfe\n".to_vec();
    file.extend(sealed(100, "a.value 1\n"));
    file.extend(b"stray line\n");
    file.extend(sealed(200, "a.value 2\n"));
    let (s, stats) = scan(&file, 0);
    assert_eq!(s.records, vec![100, 200]);
    assert_eq!(stats.damaged, 2);
    assert_eq!(stats.first_damage, Some((0, Damage::Junk)));
}

#[test]
fn dot_lines_and_long_lines() {
    let long = "x".repeat(300);
    let file = format!(
        "timestamp 100\n.\na.value 1\ntimestamp 200\n{long}\na.value 2\ntimestamp 300\na.value 3\n"
    );
    let (s, stats) = scan(file.as_bytes(), 0);
    assert_eq!(
        String::from_utf8_lossy(&s.out),
        "a.value 100:1\na.value 300:3\n",
        "a record with a line over the limit stops at that line"
    );
    assert_eq!(stats.first_damage.map(|d| d.1), Some(Damage::LineTooLong));
}

#[test]
fn oversized_seal_is_rejected_without_buffering() {
    let file = format!(
        "timestamp 100 len={} crc32=00000000\na.value 1\ntimestamp 200\na.value 2\n",
        MAX_RECORD + 1
    );
    let (s, stats) = scan(file.as_bytes(), 0);
    assert_eq!(s.records, vec![200]);
    assert_eq!(stats.first_damage.map(|d| d.1), Some(Damage::TooLarge));
}

#[test]
fn records_outside_the_window_are_not_checked() {
    let mut file = sealed(100, "a.value 1\n");
    let n = file.len();
    file[n - 2] = b'9';
    let (s, stats) = scan(&file, 100);
    assert!(s.records.is_empty());
    assert_eq!(stats.damaged, 0);
}

#[test]
fn sealed_bodies_that_are_empty_or_hold_dot_and_blank_lines() {
    let mut file = sealed(100, "");
    file.extend(sealed(200, "a.value 1\n.\n\nb.value 2\n"));
    file.extend(sealed(300, "c.value 3\n"));
    let (s, stats) = scan(&file, 0);
    assert_eq!(s.records, vec![100, 200, 300]);
    assert_eq!(
        String::from_utf8_lossy(&s.out),
        "a.value 200:1\nb.value 200:2\nc.value 300:3\n"
    );
    assert_eq!(stats.damaged, 0);
}

#[test]
fn served_until_is_the_end_of_the_last_intact_record() {
    let mut file = sealed(100, "a.value 1\n");
    file.extend(sealed(200, "a.value 2\n"));
    let intact = file.len() as u64;
    let (_, stats) = scan(&file, 0);
    assert_eq!(stats.served_until, intact);
    let torn = sealed(300, "a.value 3\n");
    for cut in 1..torn.len() {
        let mut f = file.clone();
        f.extend_from_slice(&torn[..cut]);
        let (_, stats) = scan(&f, 0);
        assert_eq!(stats.served_until, intact, "cut at {cut}");
    }
    let plain = b"timestamp 100\na.value 1\ntimestamp 200\na.value 2\na.va";
    let (_, stats) = scan(plain, 0);
    assert_eq!(stats.served_until, plain.len() as u64 - 4);
}
