//! Hostile SMTP clients beyond smtpd_adversarial.rs (issue 6): a client
//! that goes silent in every state, one that never reads its replies, a
//! 1 GiB DATA against databytes 10 MiB, 1 MiB lines, 100,000 pipelined
//! commands, and a connection storm against tcpserver's -c limit. Each
//! gets its documented reply, and smtpd-front's peak RSS (VmHWM, read
//! from /proc before QUIT) stays at a minimal session's.

#[path = "support/smtpd.rs"]
mod smtpd;
mod support;

use smtpd::{Rig, assert_flat, baseline, crlf, vm_hwm_if_alive};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// timeoutsmtpd for the slow-client cases, and how late the 451 may come.
const TIMEOUT_SECS: u64 = 1;
const TIMEOUT_SLACK: Duration = Duration::from_secs(5);

/// `smtpd::measured` as (reply text, peak RSS KB, exit code).
fn session(r: &Rig, replies: usize, feed: impl FnOnce(&mut dyn Write) + Send + 'static) -> (String, u64, Option<i32>) {
    let (s, rss) = smtpd::measured(r, replies, feed);
    (s.out, rss, s.code)
}

/// A client that sends `prefix` and then nothing, holding the connection:
/// 451 timeout after timeoutsmtpd, exit 1, nothing queued — in every
/// state, including the middle of a command line and of a DATA line.
#[test]
fn a_silent_client_times_out_in_every_state() {
    let states: [(&str, &[&str], &[u8], &str); 8] = [
        ("greeting", &[], b"", "220 mx.test ESMTP"),
        ("after HELO", &["HELO c"], b"", "250 mx.test"),
        ("after MAIL", &["MAIL FROM:<a@b.test>"], b"", "250 ok"),
        ("after RCPT", &["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>"], b"", "250 ok"),
        ("half a command", &["MAIL FROM:<a@b.test>"], b"RCPT TO:<u@exa", "250 ok"),
        ("after 354", &["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA"], b"", "354 go ahead"),
        (
            "half a DATA line",
            &["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA"],
            b"Subject: x\r\nhalf a li",
            "354 go ahead",
        ),
        (
            "before the final dot",
            &["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA"],
            b"Subject: x\r\n\r\nbody\r\n",
            "354 go ahead",
        ),
    ];
    for (name, lines, partial, last) in states {
        let r = Rig::new("silent");
        r.control("timeoutsmtpd", &format!("{TIMEOUT_SECS}\n"));
        let mut c = r.command();
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let t = Instant::now();
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut input = crlf(lines);
        input.extend_from_slice(partial);
        stdin.write_all(&input).unwrap();
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let took = t.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        let want_end = format!("{last}\r\n451 timeout (#4.4.2)\r\n");
        assert!(text.ends_with(&want_end), "{name}: {text:?}");
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            took >= Duration::from_secs(TIMEOUT_SECS) && took < Duration::from_secs(TIMEOUT_SECS) + TIMEOUT_SLACK,
            "{name}: {took:?}"
        );
        assert!(r.queued().is_empty(), "{name}: nothing queued");
        eprintln!("silent client, {name}: 451 timeout after {:.2} s", took.as_secs_f64());
    }
}

/// A client that sends 100,000 NOOPs and never reads a reply: the replies
/// fill the pipe, the write blocks, and timeoutsmtpd ends it (qmail's
/// timeoutwrite) instead of a process stuck forever.
#[test]
fn a_client_that_never_reads_is_dropped_by_the_write_timeout() {
    let r = Rig::new("noread");
    r.control("timeoutsmtpd", &format!("{TIMEOUT_SECS}\n"));
    let mut c = r.command();
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap(); // held, never read
    let feeder = std::thread::spawn(move || {
        let cmds = b"NOOP\r\n".repeat(100_000);
        let _ = stdin.write_all(&cmds);
        // Then hold the connection open until smtpd-front is gone.
        std::thread::sleep(Duration::from_secs(TIMEOUT_SECS) + TIMEOUT_SLACK);
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(TIMEOUT_SECS) + TIMEOUT_SLACK, "smtpd-front still blocked in write");
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("client that never reads: smtpd-front gone after {:.2} s, {status:?}", t.elapsed().as_secs_f64());
    assert!(!status.success());
    drop(stdout);
    feeder.join().unwrap();
    assert!(r.queued().is_empty());
}

/// 1 GiB of DATA against databytes 10 MiB: read to the end at a flat
/// memory, then 552, nothing queued, and the session goes on.
#[test]
fn one_gib_of_data_against_databytes_10_mib() {
    let r = Rig::new("gib");
    r.control("databytes", &format!("{}\n", 10 << 20));
    let base = baseline(&r);
    // Under a runner (qemu takes minutes for a GiB) 128 MiB.
    let total: usize = if std::env::var_os("PICOQ_RUNNER").is_some() { 128 << 20 } else { 1 << 30 };
    let t = Instant::now();
    let (text, rss, code) = session(&r, 6, move |w| {
        let _ = w.write_all(&crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA", "Subject: big", ""]));
        // 1 GiB in 1 MiB chunks of 64-byte lines.
        let line = b"0123456789012345678901234567890123456789012345678901234567890\r\n";
        let chunk = line.repeat((1 << 20) / line.len());
        let mut sent = 0usize;
        while sent < total {
            if w.write_all(&chunk).is_err() {
                return;
            }
            sent += chunk.len();
        }
        let _ = w.write_all(b".\r\nNOOP\r\n");
    });
    let took = t.elapsed();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[3], "354 go ahead", "{text}");
    assert_eq!(lines[4], "552 sorry, that message size exceeds my databytes limit (#5.3.4)", "{text}");
    assert_eq!(lines[5], "250 ok");
    assert_eq!(code, Some(0));
    assert_eq!(r.queued().len(), 1, "only the baseline's message");
    let mib = (total >> 20) as f64;
    eprintln!("{mib} MiB DATA: {:.1} s ({:.0} MiB/s)", took.as_secs_f64(), mib / took.as_secs_f64());
    assert_flat("1 GiB DATA over databytes 10 MiB", base, rss);
}

/// 1 MiB lines: 8 command lines (each 500, the session goes on) and 16
/// DATA lines (stored exactly) at a flat memory.
#[test]
fn one_mib_lines_in_commands_and_data() {
    let r = Rig::new("mib");
    let base = baseline(&r);
    let big = vec![b'z'; 1 << 20];
    let (text, rss, code) = session(&r, 1 + 8 + 4, move |w| {
        for _ in 0..8 {
            let _ = w.write_all(b"NOOP ");
            let _ = w.write_all(&big);
            let _ = w.write_all(b"\r\n");
        }
        let _ = w.write_all(&crlf(&["MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA", "Subject: mib", ""]));
        for _ in 0..16 {
            let _ = w.write_all(&big);
            let _ = w.write_all(b"\r\n");
        }
        let _ = w.write_all(b".\r\n");
    });
    let lines: Vec<&str> = text.split("\r\n").collect();
    for l in &lines[1..9] {
        assert_eq!(*l, "500 line too long (#5.5.2)");
    }
    assert!(lines[12].starts_with("250 ok "), "{:?}", &lines[9..]);
    assert_eq!(code, Some(0));
    let q = r.queued();
    assert_eq!(q.last().unwrap().body().len(), "Subject: mib\n\n".len() + 16 * ((1 << 20) + 1));
    assert_flat("1 MiB lines", base, rss);
}

/// 100,000 pipelined commands in one write: one reply each, in order.
#[test]
fn hundred_thousand_pipelined_commands() {
    let r = Rig::new("pipe100k");
    let base = baseline(&r);
    const N: usize = 100_000;
    let cycle: [&[u8]; 5] =
        [b"NOOP\r\n", b"MAIL FROM:<a@b.test>\r\n", b"RCPT TO:<u@example.org>\r\n", b"RSET\r\n", b"VRFY x\r\n"];
    let want: [&str; 5] = ["250 ok", "250 ok", "250 ok", "250 flushed", "252 send some mail, i'll try my best"];
    let mut input = Vec::new();
    for i in 0..N {
        input.extend_from_slice(cycle[i % 5]);
    }
    let t = Instant::now();
    let (text, rss, code) = session(&r, N + 1, move |w| {
        let _ = w.write_all(&input);
    });
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "220 mx.test ESMTP");
    for i in 0..N {
        assert_eq!(lines[1 + i], want[i % 5], "reply {i}");
    }
    assert_eq!(lines[N + 1], "221 mx.test");
    assert_eq!(code, Some(0));
    eprintln!("100,000 pipelined commands: {:.2} s", t.elapsed().as_secs_f64());
    assert_flat("100,000 pipelined commands", base, rss);
}

/// A storm of 20 connections at once against tcpserver -c 4: never more than 4
/// smtpd-front at once, every connection eventually greeted and served,
/// each smtpd-front at a minimal session's memory.
#[test]
fn connection_storm_under_tcpservers_limit() {
    const LIMIT: usize = 4;
    // At most tcpserver's listen backlog (20) waiting: beyond it Linux
    // drops the handshake's last ACK and a client that waits for the
    // greeting may wait for SYN-ACK retransmissions (up to a minute) —
    // the kernel's queue, not smtpd-front, then decides.
    const CONNECTIONS: usize = 20;
    let r = Rig::new("storm");
    let base = baseline(&r);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = std::process::Command::new("tcpserver");
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PICOQ_HOME", r.home.path())
        .env("QMAILQUEUE", &r.queue)
        .env("QQ_DIR", r.queue_dir.path())
        .args(["-H", "-R", "-l", "picoq.test", "-c"])
        .arg(LIMIT.to_string())
        .arg("127.0.0.1")
        .arg(port.to_string());
    if let Ok(runner) = std::env::var("PICOQ_RUNNER") {
        c.args(runner.split_whitespace());
    }
    c.arg(support::bin("smtpd-front")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let t0 = Instant::now();
    let mut server = c.spawn().expect("tcpserver (ucspi-tcp): tests/deps.sh");
    let tcpserver_pid = server.id();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tcpserver did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A session is a child of tcpserver running smtpd-front, or under
    // qemu-user (cross-test) the emulator, whose peak RSS holds the
    // program's: the baseline above was measured the same way. (A child
    // not yet past exec is tcpserver, or the runner's launcher: skipped.)
    let is_session = |exe: &std::path::Path| {
        exe.ends_with("smtpd-front") || exe.file_name().is_some_and(|n| n.to_string_lossy().starts_with("qemu-"))
    };
    // Children of tcpserver (the smtpd-fronts), and their peak RSS.
    let children = move || -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{tcpserver_pid}/task/{tcpserver_pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    // Every client at once, each in its own thread: connect (connections
    // beyond the limit wait in the listen queue or in SYN retries), read
    // the greeting, hold the connection a moment, send one message, QUIT.
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            std::thread::spawn(move || -> Result<(), String> {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let mut rd = BufReader::new(s.try_clone().unwrap());
                let mut line = String::new();
                rd.read_line(&mut line).map_err(|e| e.to_string())?;
                if line != "220 mx.test ESMTP\r\n" {
                    return Err(format!("connection {i}: greeting {line:?}"));
                }
                std::thread::sleep(Duration::from_millis(100));
                let msg = crlf(&[
                    "MAIL FROM:<a@b.test>",
                    "RCPT TO:<u@example.org>",
                    "DATA",
                    &format!("Subject: storm {i}"),
                    "",
                    "x",
                    ".",
                    "QUIT",
                ]);
                s.write_all(&msg).map_err(|e| e.to_string())?;
                let mut all = String::new();
                rd.read_to_string(&mut all).map_err(|e| e.to_string())?;
                if !all.contains("\r\n250 ok ") || !all.ends_with("221 mx.test\r\n") {
                    return Err(format!("connection {i}: {all:?}"));
                }
                Ok(())
            })
        })
        .collect();
    let mut max_seen = 0;
    let mut max_rss = 0;
    while clients.iter().any(|c| !c.is_finished()) {
        let kids = children();
        max_seen = max_seen.max(kids.len());
        for k in &kids {
            // A session may end between the two reads: then it has no
            // memory left to measure.
            if std::fs::read_link(format!("/proc/{k}/exe")).is_ok_and(|e| is_session(&e))
                && let Some(kb) = vm_hwm_if_alive(*k)
            {
                max_rss = max_rss.max(kb);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut served = 0;
    for c in clients {
        c.join().unwrap().unwrap();
        served += 1;
    }
    let _ = server.kill();
    let _ = server.wait();
    eprintln!(
        "storm: {CONNECTIONS} connections, {served} served in {:.1} s, at most {max_seen} smtpd-front at once (limit {LIMIT}), peak RSS {max_rss} KB",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(served, CONNECTIONS);
    assert!(max_seen <= LIMIT, "{max_seen} concurrent > -c {LIMIT}");
    assert_eq!(max_seen, LIMIT, "the storm should fill every slot");
    assert_eq!(r.queued().len(), CONNECTIONS + 1);
    assert!(max_rss > 0, "no running session was measured");
    assert_flat("storm, each smtpd-front", base, max_rss);
}
