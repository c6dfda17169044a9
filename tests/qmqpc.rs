//! qmqpc against a scripted QMQP server: what qmail-qmqpc users rely on
//! (exit codes of SPEC §3/§4) and what picoq adds (failover until the last
//! byte is sent, the server's words on fd 6, ports and IPv6).
//! The real-server checks are in qmqpc_postfix.rs.

mod support;

use support::qmqp_script::{Blackhole, Script, ScriptedServer, decode};
use support::{Home, Message, envelope, message_of_size, run_queue, run_queue_with};

const MSG: &[u8] = b"Date: 21 Nov 2026 05:43:00 -0000\nSubject: t\n\nhello\n";

fn home_with(servers: &[String]) -> Home {
    let h = Home::new("qmqpc");
    h.control("qmqpservers", &(servers.join("\n") + "\n"));
    h
}

fn v4(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// A reply netstring.
fn reply(text: &str) -> Vec<u8> {
    format!("{}:{},", text.len(), text).into_bytes()
}

#[test]
fn k_reply_exits_0_and_the_packet_is_exact() {
    let s = ScriptedServer::start(Script::Reply(reply("Kok 1700000000 qp 42")));
    let h = home_with(&[v4(s.port())]);
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@example.org", &["b@example.net"]), false);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "");
    let packets = s.packets();
    assert_eq!(packets.len(), 1);
    // The whole packet, byte for byte (cr.yp.to/proto/qmqp.html).
    let inner = format!("{}:{},13:a@example.org,13:b@example.net,", MSG.len(), std::str::from_utf8(MSG).unwrap());
    let expect = format!("{}:{inner},", inner.len());
    assert_eq!(String::from_utf8_lossy(&packets[0]), expect);
}

#[test]
fn seed_example_packet_empty_message() {
    // seeds/003: `45:0:,17:jason@example.net,17:jason@example.net,,`
    let s = ScriptedServer::start(Script::Reply(reply("Kok")));
    let h = home_with(&[v4(s.port())]);
    let env = envelope("jason@example.net", &["jason@example.net"]);
    let out = run_queue("qmqpc", h.path(), Message::Pipe(b""), &env, false);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(s.packets()[0], b"45:0:,17:jason@example.net,17:jason@example.net,,");
}

#[test]
fn z_reply_is_71_and_d_reply_is_31_without_fd6() {
    // qmail-qmqpc: Z -> die_temp (71), D -> die_perm (31).
    for (text, code) in [("Zqueue full", 71), ("Dno such user", 31)] {
        let s = ScriptedServer::start(Script::Reply(reply(text)));
        let h = home_with(&[v4(s.port())]);
        let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
        assert_eq!(out.code, Some(code), "{out:?}");
        // The server's words reach the log too.
        assert!(out.stderr.contains(&format!("said: {text}")), "{}", out.stderr);
    }
}

#[test]
fn z_and_d_text_goes_to_fd6_with_exit_82() {
    for text in ["Zgateway busy, try later (#4.3.0)", "Dmailbox unknown (#5.1.1)"] {
        let s = ScriptedServer::start(Script::Reply(reply(text)));
        let h = home_with(&[v4(s.port())]);
        let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), true);
        assert_eq!(out.code, Some(82), "{out:?}");
        assert_eq!(out.fd6.unwrap(), text.as_bytes());
    }
}

#[test]
fn reply_text_cannot_inject_lines_and_empty_text_gets_the_default() {
    let s = ScriptedServer::start(Script::Reply(reply("Zbad\r\n250 ok")));
    let h = home_with(&[v4(s.port())]);
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), true);
    assert_eq!(out.code, Some(82));
    assert_eq!(out.fd6.unwrap(), b"Zbad??250 ok");

    let s = ScriptedServer::start(Script::Reply(reply("D")));
    let h = home_with(&[v4(s.port())]);
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), true);
    assert_eq!(out.code, Some(82));
    assert_eq!(out.fd6.unwrap(), b"Dmail server permanently rejected message (#5.3.0)");
}

#[test]
fn silent_server_gives_74_after_timeoutremote() {
    let s = ScriptedServer::start(Script::Silent);
    let h = home_with(&[v4(s.port())]);
    h.control("timeoutremote", "1\n");
    let t = std::time::Instant::now();
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(74), "{out:?}");
    assert!(t.elapsed() < std::time::Duration::from_secs(30), "took {:?}", t.elapsed());
    assert!(out.stderr.contains("timed out"), "{}", out.stderr);
}

#[test]
fn closed_port_gives_73() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let h = home_with(&[v4(port)]);
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(73), "{out:?}");
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);
}

#[test]
fn connect_timeout_gives_72_after_timeoutconnect() {
    let hole = Blackhole::start();
    let h = home_with(&[v4(hole.port)]);
    h.control("timeoutconnect", "1\n");
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(72), "{out:?}");
}

/// Each failure that happens before the last byte is sent moves on to the
/// next server, which then gets the message exactly once.
#[test]
fn failover_for_every_pre_commit_failure() {
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let hole = Blackhole::start();
    let reset = ScriptedServer::start(Script::ResetAfter(16));
    let stall = ScriptedServer::start(Script::NeverRead);
    let good = ScriptedServer::start(Script::Reply(reply("Kok")));
    // A message large enough that the stalled server's socket buffers fill.
    let big = message_of_size("failover", 8 << 20);
    for (what, first) in [
        ("refused", v4(refused_port)),
        ("connect timeout", v4(hole.port)),
        ("reset mid-packet", v4(reset.port())),
        ("write timeout", v4(stall.port())),
    ] {
        let before = good.packets().len();
        let h = home_with(&[first, v4(good.port())]);
        h.control("timeoutconnect", "1\n").control("timeoutremote", "2\n");
        let out = run_queue("qmqpc", h.path(), Message::Pipe(&big), &envelope("a@x", &["b@y"]), false);
        assert_eq!(out.code, Some(0), "{what}: {out:?}");
        assert!(out.stderr.contains("warning"), "{what}: the failed server is logged: {}", out.stderr);
        let packets = good.packets();
        assert_eq!(packets.len(), before + 1, "{what}");
        assert_eq!(decode(&packets[before]).message, big, "{what}");
    }
}

/// After the last byte, the server may have queued the message: a second
/// server would make a duplicate, so qmqpc stops with 74 (SPEC §4).
#[test]
fn no_failover_once_the_packet_was_sent() {
    for script in [Script::CloseAfterPacket, Script::Silent, Script::Reply(b"garbage".to_vec())] {
        let first = ScriptedServer::start(script.clone());
        let second = ScriptedServer::start(Script::Reply(reply("Kok")));
        let h = home_with(&[v4(first.port()), v4(second.port())]);
        h.control("timeoutremote", "1\n");
        let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
        assert_eq!(out.code, Some(74), "{script:?}: {out:?}");
        assert_eq!(first.packets().len(), 1, "{script:?}");
        assert_eq!(second.connections(), 0, "{script:?}: second server must not be tried");
    }
}

#[test]
fn z_reply_is_final_too() {
    // qmail-qmqpc exits on Z: the server answered, no other server is asked.
    let first = ScriptedServer::start(Script::Reply(reply("Zbusy")));
    let second = ScriptedServer::start(Script::Reply(reply("Kok")));
    let h = home_with(&[v4(first.port()), v4(second.port())]);
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(71));
    assert_eq!(second.connections(), 0);
}

#[test]
fn all_servers_failing_exits_with_the_last_error() {
    let refused_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let hole = Blackhole::start();
    let h = home_with(&[v4(hole.port), v4(refused_port)]);
    h.control("timeoutconnect", "1\n");
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(73), "{out:?}");
    let h = home_with(&[v4(refused_port), v4(hole.port)]);
    h.control("timeoutconnect", "1\n");
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(72), "{out:?}");
}

#[test]
fn qmqpservers_lines_with_ports_comments_and_ipv6() {
    let good = ScriptedServer::start(Script::Reply(reply("Kok")));
    // qmail ignored text after the address; picoq keeps that working, and
    // skips (with a warning) lines it can't parse.
    let h = Home::new("servers");
    h.control("qmqpservers", &format!("# gateways\n\nnot-an-ip\n127.0.0.1:{} internal gateway\n", good.port()));
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("ignoring bad line in control/qmqpservers: not-an-ip"), "{}", out.stderr);

    if let Some(v6) = ScriptedServer::start_v6(Script::Reply(reply("Kok"))) {
        let h = home_with(&[format!("[::1]:{}", v6.port())]);
        let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
        assert_eq!(out.code, Some(0), "{out:?}");
        assert_eq!(v6.packets().len(), 1);
    } else {
        eprintln!("no IPv6 loopback here: the [::1] case was not run");
    }
}

#[test]
fn message_from_a_regular_file_is_sent_from_its_current_offset() {
    // A caller that read part of the file before exec'ing qmqpc (as a
    // shell `read` does) hands over the rest, like qmail's slurpclose.
    let s = ScriptedServer::start(Script::Reply(reply("Kok")));
    let h = home_with(&[v4(s.port())]);
    let dir = support::TempDir::new("offset");
    let f = dir.path().join("m");
    std::fs::write(&f, b"SKIPPED LINE\nSubject: x\n\nbody\n").unwrap();
    std::fs::write(dir.path().join("env"), envelope("a@x", &["b@y"])).unwrap();
    let bin = support::bin("qmqpc");
    let runner = std::env::var("PICOQ_RUNNER").unwrap_or_default();
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("read skip; exec {runner} \"$0\" 1<\"$1\""))
        .arg(&bin)
        .arg(dir.path().join("env"))
        .stdin(std::fs::File::open(&f).unwrap())
        .env("PICOQ_HOME", h.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let p = s.packets();
    assert_eq!(decode(p.last().unwrap()).message, b"Subject: x\n\nbody\n");
}

#[test]
fn message_file_and_pipe_give_the_same_packet() {
    let s = ScriptedServer::start(Script::Reply(reply("Kok")));
    let h = home_with(&[v4(s.port())]);
    let dir = support::TempDir::new("same");
    let m = message_of_size("same", 200_000);
    std::fs::write(dir.path().join("m"), &m).unwrap();
    let env = envelope("a@x", &["b@y", "c@z"]);
    assert_eq!(run_queue("qmqpc", h.path(), Message::Pipe(&m), &env, false).code, Some(0));
    assert_eq!(run_queue("qmqpc", h.path(), Message::File(&dir.path().join("m")), &env, false).code, Some(0));
    let p = s.packets();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0], p[1]);
    assert_eq!(decode(&p[0]).message, m);
}

#[test]
fn many_recipients_spill_the_envelope_and_arrive_in_order() {
    let s = ScriptedServer::start(Script::Reply(reply("Kok")));
    let h = home_with(&[v4(s.port())]);
    let rcpts: Vec<String> = (0..5000).map(|i| format!("user{i:05}@example.net")).collect();
    let refs: Vec<&str> = rcpts.iter().map(|s| s.as_str()).collect();
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &refs), false);
    assert_eq!(out.code, Some(0), "{out:?}");
    let p = decode(&s.packets()[0]);
    assert_eq!(p.recipients.len(), 5000);
    assert!(p.recipients.iter().zip(&rcpts).all(|(a, b)| a == b.as_bytes()));
}

// --- bad input: the envelope (qmail-qmqpc's die_format/die_read) ---------

#[test]
fn bad_envelopes_are_91() {
    let s = ScriptedServer::start(Script::Reply(reply("Kok")));
    let h = home_with(&[v4(s.port())]);
    for bad in [&b""[..], b"Ta@b\0\0", b"Fa@b\0Xc\0\0", b"Fa@b\0Tc@d\0", b"Fa@b", b"\0"] {
        let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), bad, false);
        assert_eq!(out.code, Some(91), "{:?}: {out:?}", String::from_utf8_lossy(bad));
    }
    assert_eq!(s.connections(), 0, "nothing is sent for a bad envelope");
}

#[test]
fn envelope_read_error_is_54() {
    // fd 1 is a directory: read() fails with EISDIR.
    let h = home_with(&["127.0.0.1:1".to_string()]);
    let bin = support::bin("qmqpc");
    let runner = std::env::var("PICOQ_RUNNER").unwrap_or_default();
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {runner} \"$0\" 1</"))
        .arg(&bin)
        .stdin(std::process::Stdio::null())
        .env("PICOQ_HOME", h.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(54), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn overlong_address_is_11() {
    let h = home_with(&["127.0.0.1:1".to_string()]);
    let long = "a".repeat(1003);
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &[&long]), false);
    assert_eq!(out.code, Some(11), "{out:?}");
    let ok = "a".repeat(1002);
    let s = ScriptedServer::start(Script::Reply(reply("Kok")));
    let h = home_with(&[v4(s.port())]);
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &[&ok]), false);
    assert_eq!(out.code, Some(0), "1002 bytes is the longest allowed: {out:?}");
}

// --- configuration ------------------------------------------------------

#[test]
fn missing_qmqpservers_is_55() {
    let h = Home::new("noservers");
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(55), "{out:?}");
    assert!(out.stderr.contains("unable to read control/qmqpservers"), "{}", out.stderr);
}

#[test]
fn qmqpservers_without_a_usable_line_is_55() {
    let h = Home::new("emptyservers");
    h.control("qmqpservers", "# nothing here\n\ngateway.example\n");
    let out = run_queue("qmqpc", h.path(), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(55), "{out:?}");
}

#[test]
fn missing_home_is_61() {
    let dir = support::TempDir::new("nohome");
    let out = run_queue("qmqpc", &dir.path().join("absent"), Message::Pipe(MSG), &envelope("a@x", &["b@y"]), false);
    assert_eq!(out.code, Some(61), "{out:?}");
}

#[test]
fn unwritable_tmpdir_for_a_piped_message_is_53() {
    let h = home_with(&["127.0.0.1:1".to_string()]);
    let out = run_queue_with(
        "qmqpc",
        h.path(),
        Message::Pipe(MSG),
        &envelope("a@x", &["b@y"]),
        false,
        &[("TMPDIR", "/nonexistent/picoq")],
    );
    assert_eq!(out.code, Some(53), "{out:?}");
    assert!(out.stderr.contains("/nonexistent/picoq"), "{}", out.stderr);
}
