//! queue-send (SPEC §6, queue-send(8)) against real relays: Postfix's
//! smtp-sink (pipelining, its own message dump) and aiosmtpd
//! (`tests/relay.py`: exact bytes and envelopes, scripted 4xx/5xx
//! replies, bounces parsed with Python's email package), picoq's qmqpd
//! under tcpserver for the QMQP route. Messages go in as the submitter
//! through the installed `qmail-queue -> queue-shim`; queue-send runs as
//! the spool user, as deployed.
//!
//! The tests share the installed spool and its control files, so they
//! take turns (`LOCK`) and each starts from an empty queue.

#[path = "support/relay.rs"]
mod relay;
#[path = "support/spool.rs"]
mod spool;
mod support;

use relay::{Peer, b64, relay, relayed, scratch};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::envelope;

static LOCK: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A free port (the kernel's choice, released at once), so that parallel
/// test runs on one machine never collide.
fn port() -> u16 {
    relay::free_port()
}

/// The install, an empty queue, `me` and a default route to `port`.
fn setup(port: u16) -> &'static spool::Install {
    let i = spool::install();
    i.clear_queue();
    i.set_control("me", Some("box.example\n"));
    i.set_control("helohost", None);
    i.set_control("smtproutes", Some(&format!(":127.0.0.1:{port}\n")));
    i.set_control("qmqpservers", None);
    i.set_control("queuelifetime", None);
    i.set_control("retrymin", Some("0\n"));
    i.set_control("retrymax", Some("0\n"));
    i.set_control("timeoutconnect", Some("5\n"));
    i.set_control("timeoutremote", Some("10\n"));
    i
}

fn submit(i: &spool::Install, msg: &[u8], sender: &str, rcpts: &[&str]) {
    let s = i.submit(msg, &envelope(sender, rcpts));
    assert_eq!(s.code, Some(0), "submission failed: {}", s.stderr);
}

fn run(i: &spool::Install, args: &[&str]) -> Output {
    i.queue_send(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "queue-send failed: {err}");
    err
}

/// The Received line queue-spool put first, then `msg`: what the spool
/// entry's message is.
fn spooled(i: &spool::Install, marker: &str) -> Vec<u8> {
    let e = i.entries_with(marker);
    assert_eq!(e.len(), 1, "{marker}");
    spool::parse_entry(&e[0].1).unwrap().message
}

fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, &c) in b.iter().enumerate() {
        if c == b'\n' && (n == 0 || b[n - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(c);
    }
    if !out.ends_with(b"\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Messages that test the DATA transform: dot lines (RFC 5321 §4.5.2: a
/// lone dot must not end the data), a last line without LF, CRLF already
/// there, bytes that are not ASCII.
fn tricky_messages(tag: &str) -> Vec<Vec<u8>> {
    vec![
        format!("Subject: {tag}-1\n\n.\n..\n.leading dot\nend\n").into_bytes(),
        format!("Subject: {tag}-2\n\nno final newline").into_bytes(),
        format!("Subject: {tag}-3\r\n\r\ncrlf already\r\n.\r\n").into_bytes(),
        [format!("Subject: {tag}-4\n\n").as_bytes(), b"\xff\xfe bin \x00 nul\n"].concat(),
    ]
}

#[test]
fn delivers_to_aiosmtpd_exact_bytes_and_envelope_over_one_connection() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let dir = scratch("exact");
    let log = dir.join("log");
    let _r = relay(p, &log, "{}");
    let msgs = tricky_messages("exact");
    let mut want = Vec::new();
    for (n, m) in msgs.iter().enumerate() {
        submit(i, m, "s@x.org", &["a@y.org", "b@y.org"]);
        want.push(spooled(i, &format!("exact-{}", n + 1)));
    }
    let err = ok(&run(i, &[]));
    assert_eq!(err.matches(": delivered: 250 2.0.0 accepted").count(), 8, "{err}");
    assert!(i.names("new").is_empty() && i.names("info").is_empty());
    let got = relayed(&log);
    assert_eq!(got.len(), 4);
    for g in &got {
        assert_eq!(g["mail_from"], "s@x.org");
        assert_eq!(g["rcpt_tos"], "a@y.org b@y.org");
        // aiosmtpd offers SIZE: queue-send declares the message's size.
        assert!(g["mail_options"].starts_with("SIZE="), "{g:?}");
        let content = b64(&g["content"]);
        assert!(want.iter().any(|w| crlf(w) == content), "bytes differ: {:?}", String::from_utf8_lossy(&content));
    }
    // Several messages per connection: one client port for all four.
    assert!(got.iter().all(|g| g["peer_port"] == got[0]["peer_port"]), "{got:?}");
}

#[test]
fn delivers_to_postfix_smtp_sink_pipelined() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let dir = scratch("sink");
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let _sink = Peer(
        Command::new("smtp-sink")
            .args(["-u", "nobody", "-d"])
            .arg(format!("{}/%M.", dir.display()))
            .arg(format!("127.0.0.1:{p}"))
            .arg("64")
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let msgs = tricky_messages("sink");
    let mut want = Vec::new();
    for (n, m) in msgs.iter().enumerate() {
        submit(i, m, "s@x.org", &["a@y.org"]);
        want.push(spooled(i, &format!("sink-{}", n + 1)));
    }
    let err = ok(&run(i, &[]));
    assert_eq!(err.matches(": delivered: 250 2.0.0 Ok").count(), 4, "{err}");
    // smtp-sink's dump: its X- lines, its Received line, then the message
    // as it parsed it (dots removed, lines ended by LF).
    let mut dumps = 0;
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let b = std::fs::read(e.path()).unwrap();
        let text = String::from_utf8_lossy(&b).into_owned();
        assert!(text.contains("X-Mail-Args: <s@x.org>") && text.contains("X-Rcpt-Args: <a@y.org>"), "{text}");
        let at = text.find("Received: (qmail").expect("queue's Received line");
        let body = &b[at..];
        assert!(
            want.iter().any(|w| {
                let lf: Vec<u8> = crlf(w).into_iter().filter(|&c| c != b'\r').collect();
                body.starts_with(&lf)
            }),
            "{text}"
        );
        dumps += 1;
    }
    assert_eq!(dumps, 4);
}

#[test]
fn retries_after_4xx_then_delivers_once() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let log = scratch("retry").join("log");
    let _r = relay(p, &log, r#"{"data": ["451 4.3.0 try again later"]}"#);
    submit(i, b"Subject: retry\n\nx\n", "s@x.org", &["a@y.org"]);
    let err = ok(&run(i, &[]));
    assert!(err.contains(": deferred: 451 4.3.0 try again later"), "{err}");
    assert_eq!(i.names("new").len(), 1);
    assert_eq!(i.names("info").len(), 1, "a state file records the try");
    let l = String::from_utf8(run(i, &["-l"]).stdout).unwrap();
    assert!(
        l.contains("queued age ")
            && l.contains("s from <s@x.org> left 1/1 last error: 451 4.3.0 try again later\n  to <a@y.org>\n"),
        "{l}"
    );
    let err = ok(&run(i, &[]));
    assert!(err.contains(": delivered: "), "{err}");
    assert!(i.names("new").is_empty() && i.names("info").is_empty());
    assert_eq!(relayed(&log).len(), 1);
}

#[test]
fn retry_waits_for_its_time() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    i.set_control("retrymin", Some("600\n"));
    i.set_control("retrymax", Some("3600\n"));
    let log = scratch("wait").join("log");
    let _r = relay(p, &log, r#"{"data": ["451 4.3.0 later"]}"#);
    submit(i, b"Subject: wait\n\nx\n", "s@x.org", &["a@y.org"]);
    ok(&run(i, &[]));
    // Not due for 10 minutes: the next pass leaves it alone.
    let err = ok(&run(i, &[]));
    assert!(!err.contains("a@y.org"), "{err}");
    assert_eq!(i.names("new").len(), 1);
    assert!(relayed(&log).is_empty());
}

#[test]
fn a_5xx_recipient_is_bounced_with_an_rfc3464_report() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let log = scratch("bounce").join("log");
    let _r = relay(p, &log, r#"{"rcpt": {"bad@y.org": ["550 5.1.1 no such user"]}}"#);
    submit(i, b"Subject: bounce-me\nX-Tag: t1\n\nbody\n", "s@x.org", &["good@y.org", "bad@y.org"]);
    let err = ok(&run(i, &[]));
    assert!(err.contains("to <bad@y.org> via 127.0.0.1:") && err.contains(": failed: 550 5.1.1 no such user"), "{err}");
    assert!(i.names("new").is_empty(), "the entry and its bounce are gone: {:?}", i.names("new"));
    let got = relayed(&log);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["rcpt_tos"], "good@y.org");
    // The bounce went out in the same run: from <>, to the sender.
    let dsn = &got[1];
    // aiosmtpd writes the null sender as `<>`.
    assert_eq!(dsn["mail_from"], "<>");
    assert_eq!(dsn["rcpt_tos"], "s@x.org");
    assert_eq!(dsn["type"], "multipart/report");
    assert_eq!(dsn["report_type"], "delivery-status");
    assert_eq!(dsn["parts"], "text/plain message/delivery-status text/rfc822-headers");
    assert_eq!(dsn["status.0.Reporting-MTA"], "dns; box.example");
    assert!(dsn.contains_key("status.0.Arrival-Date"));
    assert_eq!(dsn["status.1.Final-Recipient"], "rfc822; bad@y.org");
    assert_eq!(dsn["status.1.Action"], "failed");
    assert_eq!(dsn["status.1.Status"], "5.1.1");
    assert_eq!(dsn["status.1.Diagnostic-Code"], "smtp; 550 5.1.1 no such user");
    assert!(!dsn.contains_key("status.2.Final-Recipient"), "only the failed recipient");
    let headers = String::from_utf8(b64(&dsn["headers"])).unwrap();
    assert!(
        headers.contains("Subject: bounce-me") && headers.contains("X-Tag: t1") && !headers.contains("body"),
        "{headers}"
    );
}

#[test]
fn a_5xx_after_data_bounces_every_recipient() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let log = scratch("databounce").join("log");
    let _r = relay(p, &log, r#"{"data": ["554 5.7.1 content rejected"]}"#);
    submit(i, b"Subject: data-bounce\n\nx\n", "s@x.org", &["a@y.org", "b@y.org"]);
    let err = ok(&run(i, &[]));
    assert_eq!(err.matches(": failed: 554 5.7.1 content rejected").count(), 2, "{err}");
    let got = relayed(&log);
    assert_eq!(got.len(), 1, "only the bounce: {got:?}");
    let dsn = &got[0];
    assert_eq!(dsn["rcpt_tos"], "s@x.org");
    assert_eq!(dsn["status.1.Final-Recipient"], "rfc822; a@y.org");
    assert_eq!(dsn["status.2.Final-Recipient"], "rfc822; b@y.org");
    assert_eq!(dsn["status.2.Status"], "5.7.1");
    assert!(i.names("new").is_empty());
}

/// An envelope address may hold any byte but NUL (qmail-queue's
/// interface); one with a line break must not become two SMTP commands.
#[test]
fn an_address_with_a_line_break_is_refused_not_sent() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let log = scratch("crlf").join("log");
    let _r = relay(p, &log, "{}");
    submit(i, b"Subject: crlf\n\nx\n", "s@x.org", &["a@y.org\r\nRCPT TO:<evil@z.org>", "b@y.org"]);
    let err = ok(&run(i, &[]));
    assert!(
        err.contains("to <a@y.org??RCPT TO:<evil@z.org>> via -: failed: 553 5.1.3 a control character in the address"),
        "{err}"
    );
    let got = relayed(&log);
    assert_eq!(got.len(), 2, "the message to b@y.org and the bounce: {got:?}");
    assert_eq!(got[0]["rcpt_tos"], "b@y.org");
    assert_eq!(got[1]["rcpt_tos"], "s@x.org");
    assert_eq!(got[1]["status.1.Final-Recipient"], "rfc822; a@y.org??RCPT TO:<evil@z.org>");
    assert!(!got.iter().any(|g| g["rcpt_tos"].contains("evil")));
}

/// A connection lost after the data, or a relay that does not answer
/// within timeoutremote, is local trouble: retried, never bounced, and
/// the message arrives once the relay behaves.
#[test]
fn lost_connection_and_silence_are_retried() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    i.set_control("timeoutremote", Some("1\n"));
    let log = scratch("lost").join("log");
    let _r = relay(p, &log, r#"{"data": ["CLOSE", "SILENCE"]}"#);
    submit(i, b"Subject: lost\n\nx\n", "s@x.org", &["a@y.org"]);
    let err = ok(&run(i, &[]));
    assert!(
        err.contains(": deferred (local): connection to 127.0.0.1:") && err.contains(" lost: closed by the relay"),
        "{err}"
    );
    let err = ok(&run(i, &[]));
    assert!(err.contains(" lost: timed out"), "{err}");
    assert_eq!(i.names("new").len(), 1);
    assert!(relayed(&log).is_empty());
    let err = ok(&run(i, &[]));
    assert!(err.contains(": delivered: "), "{err}");
    assert_eq!(relayed(&log).len(), 1);
    assert!(i.names("new").is_empty() && i.names("info").is_empty());
}

/// RFC 5321 §3.2: a client whose EHLO is refused may fall back to HELO.
#[test]
fn ehlo_refused_falls_back_to_helo() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    i.set_control("helohost", Some("helo.example\n"));
    let log = scratch("helo").join("log");
    let _r = relay(p, &log, r#"{"ehlo": "502 5.5.1 EHLO not here"}"#);
    submit(i, b"Subject: helo\n\nx\n", "s@x.org", &["a@y.org"]);
    let err = ok(&run(i, &[]));
    assert!(err.contains(": delivered: "), "{err}");
    let got = relayed(&log);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["helo"], "helo.example");
    assert_eq!(got[0]["esmtp"], "False", "a HELO session");
    // Without EHLO there is no SIZE extension to use.
    assert_eq!(got[0]["mail_options"], "");
}

#[test]
fn partial_acceptance_retries_only_the_rest() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let log = scratch("partial").join("log");
    let _r = relay(p, &log, r#"{"rcpt": {"b@y.org": ["451 4.2.0 mailbox busy"]}}"#);
    submit(i, b"Subject: partial\n\nx\n", "s@x.org", &["a@y.org", "b@y.org", "c@y.org"]);
    ok(&run(i, &[]));
    let l = String::from_utf8(run(i, &["-l"]).stdout).unwrap();
    assert!(l.ends_with(" left 1/3 last error: 451 4.2.0 mailbox busy\n  to <b@y.org>\n"), "{l}");
    ok(&run(i, &[]));
    let got = relayed(&log);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["rcpt_tos"], "a@y.org c@y.org");
    assert_eq!(got[1]["rcpt_tos"], "b@y.org", "delivered recipients are not sent again");
    assert!(i.names("new").is_empty());
}

#[test]
fn a_bounce_is_never_bounced_but_parked_in_failed() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let log = scratch("dbl").join("log");
    let _r = relay(p, &log, r#"{"rcpt": {"gone@y.org": ["550 5.1.1 gone"], "gone2@y.org": ["550 5.1.1 gone"]}}"#);
    submit(i, b"Subject: dbl\n\nx\n", "", &["gone@y.org"]);
    submit(i, b"Subject: dbl2\n\nx\n", "#@[]", &["gone2@y.org"]);
    let err = ok(&run(i, &[]));
    assert!(err.contains("moved to queue/failed: undeliverable bounce: 550 5.1.1 gone"), "{err}");
    assert!(i.names("new").is_empty());
    let failed = i.names("failed");
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(relayed(&log).is_empty(), "no bounce was sent");
    let l = String::from_utf8(run(i, &["-l"]).stdout).unwrap();
    assert_eq!(l.matches(" failed age ").count(), 2, "{l}");
    assert!(
        l.contains("s from <> left 1/1 last error: undeliverable bounce: 550 5.1.1 gone\n  to <gone@y.org>\n"),
        "{l}"
    );
}

#[test]
fn queuelifetime_bounces_4xx_and_parks_local_trouble() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    i.set_control("queuelifetime", Some("0\n"));
    let log = scratch("life").join("log");
    let _r = relay(p, &log, r#"{"rcpt": {"slow@y.org": ["452 4.2.2 over quota"]}}"#);
    submit(i, b"Subject: life\n\nx\n", "s@x.org", &["slow@y.org"]);
    ok(&run(i, &[]));
    let got = relayed(&log);
    assert_eq!(got.len(), 1, "the bounce");
    assert_eq!(got[0]["status.1.Final-Recipient"], "rfc822; slow@y.org");
    assert_eq!(got[0]["status.1.Status"], "4.4.7");
    assert!(got[0]["status.1.Diagnostic-Code"].starts_with("smtp; 452 4.2.2 over quota"));
    // Local trouble (nothing listens on this port) is never a bounce:
    // past the lifetime the entry waits in failed/ for the administrator.
    i.set_control("smtproutes", Some(&format!(":127.0.0.1:{}\n", port())));
    submit(i, b"Subject: life2\n\nx\n", "s@x.org", &["x@y.org"]);
    let err = ok(&run(i, &[]));
    assert!(err.contains("deferred (local): connect to 127.0.0.1:"), "{err}");
    assert!(err.contains("moved to queue/failed: queue lifetime exceeded; last error: connect to"), "{err}");
    assert_eq!(relayed(&log).len(), 1, "no bounce for local trouble");
    assert_eq!(i.names("failed").len(), 1);
}

#[test]
fn connection_refused_is_retried_not_bounced() {
    let _t = turn();
    let i = setup(port());
    submit(i, b"Subject: refused\n\nx\n", "s@x.org", &["a@y.org", "b@y.org"]);
    let err = ok(&run(i, &[]));
    assert!(
        err.contains("deferred (local): connect to 127.0.0.1:") && err.contains("failed: connection refused"),
        "{err}"
    );
    assert_eq!(i.names("new").len(), 1);
    assert!(i.names("failed").is_empty());
}

#[test]
fn removes_tmp_leftovers_older_than_36_hours() {
    let _t = turn();
    let i = setup(port());
    let tmp = i.prefix.join("queue/tmp");
    let now = std::time::SystemTime::now();
    for (name, age_h) in [("1.111", 37), ("2.222", 35)] {
        let f = std::fs::File::create(tmp.join(name)).unwrap();
        f.set_modified(now - Duration::from_secs(age_h * 3600)).unwrap();
    }
    let err = ok(&run(i, &[]));
    assert!(err.contains("removed stale queue/tmp/1.111"), "{err}");
    assert_eq!(i.names("tmp"), ["2.222"]);
}

#[test]
fn a_second_runner_exits_75() {
    let _t = turn();
    let i = setup(port());
    let mut holder = Command::new("flock").arg("-o").arg(i.prefix.join("queue")).args(["sleep", "3"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let o = run(i, &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(o.status.code(), Some(75));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "queue-send: fatal: another queue-send is running on this spool\n");
}

#[test]
fn daemon_delivers_at_once_through_the_trigger() {
    let _t = turn();
    let p = port();
    let i = setup(p);
    let log = scratch("daemon").join("log");
    let _r = relay(p, &log, "{}");
    let daemon = Peer(i.queue_send(&["-d"]).stderr(Stdio::null()).spawn().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    submit(i, b"Subject: daemon\n\nx\n", "s@x.org", &["a@y.org"]);
    while relayed(&log).is_empty() && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t0.elapsed();
    drop(daemon);
    assert_eq!(relayed(&log).len(), 1);
    // Its idle sleep is up to an hour: only the trigger makes this quick.
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn qmqp_route_to_picoq_qmqpd() {
    let _t = turn();
    let i = setup(port());
    let p = port();
    i.set_control("smtproutes", None);
    i.set_control("qmqpservers", Some(&format!("127.0.0.1:{p}\n")));
    let md = scratch("qmqp").join("Maildir");
    for d in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    let _srv = Peer(
        Command::new("tcpserver")
            .args(["-H", "-R", "-l", "test", "127.0.0.1", &p.to_string()])
            .arg(i.prefix.join("bin/qmqpd"))
            .arg(format!("{}/", md.display()))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(300));
    submit(i, b"Subject: via-qmqp\n\n.dot\n", "s@x.org", &["a@y.org"]);
    let want = spooled(i, "via-qmqp");
    let err = ok(&run(i, &[]));
    assert!(err.contains("to <a@y.org> via 127.0.0.1:") && err.contains(": delivered: 250 "), "{err}");
    let files: Vec<_> = std::fs::read_dir(md.join("new")).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    let got = std::fs::read(files[0].path()).unwrap();
    assert!(got.ends_with(&want), "{}", String::from_utf8_lossy(&got));
}

#[test]
fn bad_configuration_and_usage_are_fatal_with_documented_codes() {
    let _t = turn();
    let i = setup(port());
    let code = |args: &[&str]| {
        let o = run(i, args);
        (o.status.code(), String::from_utf8_lossy(&o.stderr).into_owned())
    };
    assert_eq!(code(&["-x"]).0, Some(64));
    i.set_control("smtproutes", Some(":relay.example.net\n"));
    let (c, e) = code(&[]);
    assert_eq!(c, Some(78));
    assert!(e.contains("bad line in control/smtproutes (want domain:IP[:port]; no DNS): :relay.example.net"), "{e}");
    i.set_control("smtproutes", None);
    let (c, e) = code(&[]);
    assert_eq!(
        (c, e.as_str()),
        (
            Some(78),
            "queue-send: fatal: no route: control/smtproutes and control/qmqpservers are both missing or empty\n"
        )
    );
    i.set_control("smtproutes", Some(":127.0.0.1\n"));
    i.set_control("me", None);
    assert_eq!(code(&[]).0, Some(78));
    i.set_control("me", Some("box.example\n"));
    // Not the spool user, even root: refused (bounces and state must
    // belong to the spool user).
    let o = Command::new(i.prefix.join("bin/queue-send")).output().unwrap();
    assert_eq!(o.status.code(), Some(77), "{}", String::from_utf8_lossy(&o.stderr));
}
