//! Hostile and broken clients (SPEC §5 "goes beyond"): each gets its
//! documented reply, and smtpd-front's memory stays flat whatever the
//! input's size: its own peak RSS (VmHWM, read from /proc while the session
//! waits for QUIT, so the queue program's memory is not counted) is
//! compared with a minimal session's.

#[path = "support/smtpd.rs"]
mod smtpd;
mod support;

use smtpd::{Rig, Session, assert_flat, baseline, crlf};
use std::io::Write;
use std::process::Stdio;

/// Runs a session whose `input` ends in QUIT: everything before QUIT is
/// sent, `replies` reply lines are awaited, VmHWM is read, then QUIT.
fn run_measured(r: &Rig, input: &[u8], replies: usize) -> (Session, u64) {
    let body = input.strip_suffix(b"QUIT\r\n").expect("input ends in QUIT").to_vec();
    smtpd::measured(r, replies, move |w| {
        let _ = w.write_all(&body);
    })
}

#[test]
fn ten_mib_command_line_is_500_with_flat_memory() {
    let r = Rig::new("cmd10m");
    let base = baseline(&r);
    let mut input = b"HELO ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 10 << 20));
    input.extend_from_slice(b"\r\nNOOP\r\nQUIT\r\n");
    let (s, rss) = run_measured(&r, &input, 3);
    assert_eq!(s.lines(), ["220 mx.test ESMTP", "500 line too long (#5.5.2)", "250 ok", "221 mx.test"]);
    assert_flat("10 MiB command line", base, rss);
}

#[test]
fn ten_mib_line_inside_data_is_streamed() {
    let r = Rig::new("data10m");
    let base = baseline(&r);
    let mut input = crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA", "Subject: long", ""]);
    input.extend(std::iter::repeat_n(b'y', 10 << 20));
    input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    let (s, rss) = run_measured(&r, &input, 5);
    assert!(s.lines()[4].starts_with("250 ok "), "{:?}", s.lines());
    let q = r.queued();
    assert_eq!(q.last().unwrap().body().len(), "Subject: long\n\n".len() + (10 << 20) + 1);
    assert_flat("10 MiB DATA line", base, rss);
}

#[test]
fn hundred_thousand_recipients() {
    let r = Rig::new("rcpt100k");
    let base = baseline(&r);
    let mut input = crlf(&["MAIL FROM:<a@b.test>"]);
    for i in 0..100_000 {
        input.extend_from_slice(format!("RCPT TO:<user{i}@example.org>\r\n").as_bytes());
    }
    input.extend(crlf(&["DATA", "x", ".", "QUIT"]));
    let (s, rss) = run_measured(&r, &input, 100_004);
    let l = s.lines();
    assert_eq!(l.iter().filter(|l| **l == "452 too many recipients (#4.5.3)").count(), 100_000 - 100);
    assert_flat("100,000 RCPT with maxrcpt 100", base, rss);
    assert_eq!(r.queued().last().unwrap().parsed_envelope().1.len(), 100);

    // The hard maximum: all 100,000 accepted, the envelope in a file.
    r.control("maxrcpt", "0\n");
    let (s, rss) = run_measured(&r, &input, 100_004);
    assert!(!s.out.contains("452"), "maxrcpt 0 means the compiled-in maximum, 100,000");
    assert!(s.lines()[100_003].starts_with("250 ok "), "{}", s.lines()[100_003]);
    assert_flat("100,000 accepted recipients", base, rss);
    assert_eq!(r.queued().last().unwrap().parsed_envelope().1.len(), 100_000);
}

#[test]
fn nul_bytes_everywhere() {
    let r = Rig::new("nuls");
    let mut input = b"\0\0\0\r\nHELO \0x\r\nMAIL FROM:<\0>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n".to_vec();
    input.extend(std::iter::repeat_n(0u8, 100_000));
    input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    let s = r.run(&input);
    let l = s.lines();
    assert_eq!(l[1], "502 unimplemented (#5.5.1)");
    assert_eq!(l[2], "250 mx.test");
    assert!(l[6].starts_with("250 ok "), "{l:?}");
    let q = r.queued();
    assert_eq!(q[0].parsed_envelope().0, "");
    assert_eq!(q[0].body().len(), 100_001);
}

#[test]
fn pipelined_garbage_gets_one_reply_per_line() {
    let r = Rig::new("garbage");
    let mut input = Vec::new();
    for i in 0..1000u32 {
        let junk: Vec<u8> = (0..(i % 97)).map(|k| ((k * 31 + i) % 256) as u8).filter(|&b| b != b'\n').collect();
        input.extend_from_slice(&junk);
        input.extend_from_slice(b"\r\n");
    }
    input.extend_from_slice(b"QUIT\r\n");
    let s = r.run(&input);
    // Every line is answered (a few random ones may even be verbs).
    assert_eq!(s.lines().len(), 1 + 1000 + 1);
    assert_eq!(s.lines().last(), Some(&"221 mx.test"));
    assert_eq!(s.code, Some(0));
}

#[test]
fn bare_lf_in_each_state() {
    let smtplf = "451 See https://cr.yp.to/docs/smtplf.html.";
    // Commands: a bare LF ends the line, as in qmail (no smuggling risk:
    // no message text is involved).
    let r = Rig::new("lfstates");
    let s = r.run(b"HELO x\nMAIL FROM:<a@b.test>\nRCPT TO:<u@example.org>\nDATA\n");
    assert_eq!(s.lines()[4], "354 go ahead");
    // DATA: header, header end, body, dot line, right after CR.
    for (state, body) in [
        ("header", "Subject: x\nmore\r\n"),
        ("header end", "Subject: x\r\n\nbody\r\n"),
        ("body", "Subject: x\r\n\r\nbody\nsmuggled\r\n"),
        ("dot line", "Subject: x\r\n\r\nbody\r\n.\nMAIL FROM:<x@y>\r\n"),
        ("dot CR", "Subject: x\r\n\r\n.\r\r\n\n"),
        ("first byte", "\n"),
    ] {
        let r = Rig::new("lfdata");
        let mut input = crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA"]);
        input.extend_from_slice(body.as_bytes());
        input.extend_from_slice(b"\r\n.\r\nRSET\r\nQUIT\r\n");
        let s = r.run(&input);
        assert_eq!(s.lines().last(), Some(&smtplf), "{state}");
        assert_eq!(s.code, Some(1), "{state}");
        assert!(r.queued().is_empty(), "{state}");
    }
}

#[test]
fn client_that_stops_talking_mid_data() {
    let r = Rig::new("stall");
    r.control("timeoutsmtpd", "1\n");
    let mut c = r.command();
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA", "Subject: half"])).unwrap();
    let t = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.ends_with("354 go ahead\r\n451 timeout (#4.4.2)\r\n"), "{out}");
    assert!(r.queued().is_empty());
}

#[test]
fn databytes_exceeded_mid_stream_reads_to_the_end() {
    let r = Rig::new("dbstream");
    r.control("databytes", "1048576\n");
    let base = baseline(&r);
    let mut input = crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA", "Subject: big", ""]);
    let line = b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n";
    for _ in 0..(20 << 20) / line.len() {
        input.extend_from_slice(line);
    }
    input.extend_from_slice(b".\r\nNOOP\r\nQUIT\r\n");
    let (s, rss) = run_measured(&r, &input, 6);
    assert_eq!(
        s.lines()[4..],
        ["552 sorry, that message size exceeds my databytes limit (#5.3.4)", "250 ok", "221 mx.test"],
        "the reply comes after the end of DATA, and the session goes on"
    );
    assert_eq!(r.queued().len(), 1, "only the baseline's message was queued");
    assert_flat("20 MiB over databytes", base, rss);
}
