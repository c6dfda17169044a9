//! qmqpd: qmail-qmqpd's protocol behaviour over pipes (answers, exit codes,
//! the Received line, bounded lengths), the Maildir hand-off, and interop
//! under the real tcpserver with picoq's qmqpc, nullmailer's qmqp module
//! and — for comparison — Postfix's qmqpd receiving the same message.

#[path = "support/postfix.rs"]
mod postfix;
#[path = "support/smtpd.rs"]
mod smtpd;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Home, Message, TempDir, envelope, message_of_size, run_queue};

/// A QMQP packet for `message`, `sender` and `rcpts`.
fn packet(message: &[u8], sender: &[u8], rcpts: &[&[u8]]) -> Vec<u8> {
    fn ns(v: &mut Vec<u8>, b: &[u8]) {
        v.extend_from_slice(format!("{}:", b.len()).as_bytes());
        v.extend_from_slice(b);
        v.push(b',');
    }
    let mut inner = Vec::new();
    ns(&mut inner, message);
    ns(&mut inner, sender);
    for r in rcpts {
        ns(&mut inner, r);
    }
    let mut p = Vec::new();
    ns(&mut p, &inner);
    p
}

/// What one qmqpd run did.
#[derive(Debug)]
struct Run {
    answer: String,
    code: Option<i32>,
    log: String,
}

/// Runs qmqpd with `input` on fd 0 (a pipe), the given environment and
/// arguments, as tcpserver would for one connection.
fn qmqpd(home: &Path, input: &[u8], args: &[&Path], env: &[(&str, &str)]) -> Run {
    let mut c = support::command("qmqpd");
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("PICOQ_HOME", home)
        .env("TCPREMOTEIP", "192.0.2.7")
        .env("TCPLOCALHOST", "gw.picoq.test")
        .envs(env.iter().copied());
    let out = support::run_with_input(c, input);
    Run {
        answer: String::from_utf8_lossy(&out.stdout).into_owned(),
        code: out.status.code(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn maildir(tag: &str) -> TempDir {
    let d = TempDir::new(tag);
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir(d.path().join(sub)).unwrap();
    }
    d
}

/// The files delivered into `md/new`, oldest name first.
fn delivered(md: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(md.join("new"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// `Kok <digits> qp <digits>` as a netstring.
fn assert_kok(answer: &str) {
    let (len, rest) = answer.split_once(':').expect("netstring");
    let body = rest.strip_suffix(',').expect("comma");
    assert_eq!(len.parse::<usize>().unwrap(), body.len(), "{answer}");
    let words: Vec<&str> = body.split(' ').collect();
    assert!(
        words.len() == 4
            && words[0] == "Kok"
            && words[2] == "qp"
            && words[1].parse::<u64>().is_ok()
            && words[3].parse::<u32>().is_ok(),
        "{answer}"
    );
}

/// A rig whose `bin/qmail-queue` is the recording fake queue.
fn queue_rig() -> smtpd::Rig {
    smtpd::Rig::new("qmqpd")
}

#[test]
fn seed_packet_into_a_maildir_with_envelope_and_received_lines() {
    // seeds/003's packet: an empty message, one recipient.
    let md = maildir("seed");
    let home = Home::new("qmqpd-seed");
    let r = qmqpd(
        home.path(),
        b"45:0:,17:jason@example.net,17:jason@example.net,,",
        &[md.path()],
        &[("TCPREMOTEHOST", "lou.example.net"), ("TCPREMOTEINFO", "jason")],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_kok(&r.answer);
    let files = delivered(md.path());
    assert_eq!(files.len(), 1);
    let text = String::from_utf8(files[0].1.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Return-Path: <jason@example.net>");
    assert_eq!(lines[1], "Delivered-To: jason@example.net");
    // qmail's received(): from HOST (INFO@IP), by LOCAL with QMQP; DATE.
    assert_eq!(lines[2], "Received: from lou.example.net (jason@192.0.2.7)");
    assert!(lines[3].starts_with("  by gw.picoq.test with QMQP; ") && lines[3].ends_with(" -0000"), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(std::fs::read_dir(md.path().join("tmp")).unwrap().next().is_none(), "tmp/ is left empty");
    assert!(r.log.contains("qmqpd: 192.0.2.7 rcpts=1 bytes=0 Kok"), "{}", r.log);
}

#[test]
fn queue_gets_received_line_message_and_envelope() {
    let rig = queue_rig();
    let msg = message_of_size("q", 5000);
    let r = qmqpd(
        rig.home.path(),
        &packet(&msg, b"a@example.org", &[b"b@example.net", b"c@example.net"]),
        &[],
        &[("QMAILQUEUE", rig.queue.to_str().unwrap()), ("QQ_DIR", rig.queue_dir.path().to_str().unwrap())],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_kok(&r.answer);
    let q = rig.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].envelope, envelope("a@example.org", &["b@example.net", "c@example.net"]));
    assert_eq!(q[0].body(), &msg[..]);
    assert!(q[0].received().starts_with("Received: from unknown (192.0.2.7)\n  by gw.picoq.test with QMQP; "));
    // The answer names the queue program's pid.
    let qp: u32 = r.answer.trim_end_matches(',').rsplit(' ').next().unwrap().parse().unwrap();
    assert!(qp > 1);
}

#[test]
fn queue_failures_become_d_and_z_answers() {
    for (exit, fd6, want) in [
        ("31", "", "Dmail server permanently rejected message (#5.3.0)"),
        ("53", "", "Zqq write error or disk full (#4.3.0)"),
        ("82", "Zgateway busy (#4.3.0)", "Zgateway busy (#4.3.0)"),
    ] {
        let rig = queue_rig();
        let r = qmqpd(
            rig.home.path(),
            &packet(b"Subject: x\n\nhi\n", b"a@x", &[b"b@y"]),
            &[],
            &[
                ("QMAILQUEUE", rig.queue.to_str().unwrap()),
                ("QQ_DIR", rig.queue_dir.path().to_str().unwrap()),
                ("QQ_EXIT", exit),
                ("QQ_FD6", fd6),
            ],
        );
        assert_eq!(r.code, Some(0), "{r:?}");
        assert_eq!(r.answer, format!("{}:{want},", want.len()), "queue exit {exit}");
    }
}

#[test]
fn bad_addresses_get_a_d_answer_and_reach_no_queue() {
    let rig = queue_rig();
    let long = vec![b'a'; 1000];
    for rcpts in [vec![&long[..]], vec![&b"nul\0here"[..]], vec![&b"ok@x"[..], &long[..]]] {
        let r = qmqpd(
            rig.home.path(),
            &packet(b"hi\n", b"a@x", &rcpts),
            &[],
            &[("QMAILQUEUE", rig.queue.to_str().unwrap()), ("QQ_DIR", rig.queue_dir.path().to_str().unwrap())],
        );
        assert_eq!(r.code, Some(0));
        assert_eq!(r.answer, "51:Dsorry, I can't accept addresses like that (#5.1.3),");
    }
    // 999 bytes is still an address.
    let ok = vec![b'a'; 999];
    let r = qmqpd(
        rig.home.path(),
        &packet(b"hi\n", b"a@x", &[&ok[..]]),
        &[],
        &[("QMAILQUEUE", rig.queue.to_str().unwrap()), ("QQ_DIR", rig.queue_dir.path().to_str().unwrap())],
    );
    assert_kok(&r.answer);
    assert_eq!(rig.queued().len(), 1, "only the good packet was queued");
}

#[test]
fn databytes_limits_the_message() {
    let rig = queue_rig();
    rig.home.control("databytes", "1000\n");
    let qenv = [("QMAILQUEUE", rig.queue.to_str().unwrap()), ("QQ_DIR", rig.queue_dir.path().to_str().unwrap())];
    let r = qmqpd(rig.home.path(), &packet(&vec![b'x'; 1001], b"a@x", &[b"b@y"]), &[], &qenv);
    assert_eq!(r.answer, "61:Dsorry, that message size exceeds my databytes limit (#5.3.4),");
    let r = qmqpd(rig.home.path(), &packet(&vec![b'x'; 1000], b"a@x", &[b"b@y"]), &[], &qenv);
    assert_kok(&r.answer);
    assert_eq!(rig.queued().len(), 1);
}

#[test]
fn bad_syntax_gets_no_answer_and_exit_100() {
    let home = Home::new("qmqpd-syntax");
    let md = maildir("syntax");
    for bad in [
        &b"45:0:,17:jason@example.net,17:jason@example.net;,"[..], // missing comma
        b"46:0:,17:jason@example.net,17:jason@example.net,,",      // lengths disagree
        b"01:x,",                                                  // leading zero
        b"x:",                                                     // not a number
        b"9:5:hello,,",                                            // no sender
        b"20:30:aaaaaaaaaaaaaaa,",                                 // inner longer than outer
    ] {
        let r = qmqpd(home.path(), bad, &[md.path()], &[]);
        assert_eq!(r.code, Some(100), "{:?}: {r:?}", String::from_utf8_lossy(bad));
        assert_eq!(r.answer, "", "no answer for bad syntax");
    }
    assert!(delivered(md.path()).is_empty());
}

#[test]
fn oversized_packet_is_refused_before_reading_it() {
    let home = Home::new("qmqpd-huge");
    let md = maildir("huge");
    // qmail-qmqpd's limit: no length above 200,000,000.
    let r = qmqpd(home.path(), b"200000001:", &[md.path()], &[]);
    assert_eq!(r.code, Some(111), "{r:?}");
    assert_eq!(r.answer, "");
}

#[test]
fn client_that_goes_away_gets_nothing_delivered() {
    let home = Home::new("qmqpd-eof");
    let md = maildir("eof");
    let r = qmqpd(home.path(), b"1000:20:half a message", &[md.path()], &[]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.answer, "");
    assert!(delivered(md.path()).is_empty());
    assert!(std::fs::read_dir(md.path().join("tmp")).unwrap().next().is_none());
}

#[test]
fn missing_maildir_is_a_temporary_failure() {
    let home = Home::new("qmqpd-nomd");
    let dir = TempDir::new("nomd");
    let r = qmqpd(home.path(), &packet(b"hi\n", b"a@x", &[b"b@y"]), &[&dir.path().join("absent")], &[]);
    assert_eq!(r.code, Some(0));
    assert_eq!(r.answer, "42:Zunable to deliver to the maildir (#4.3.0),");
}

// --- interop under the real tcpserver ------------------------------------

/// tcpserver running qmqpd into a fresh Maildir.
struct Gateway {
    port: u16,
    md: TempDir,
    child: std::process::Child,
}

impl Gateway {
    fn start() -> Gateway {
        let md = maildir("gw");
        let home = Home::new("qmqpd-gw");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = Command::new("tcpserver");
        c.env_clear().env("PATH", "/usr/bin:/bin").env("PICOQ_HOME", home.path());
        c.args(["-H", "-R", "-l", "gw.picoq.test", "127.0.0.1", &port.to_string()]);
        if let Ok(runner) = std::env::var("PICOQ_RUNNER") {
            c.args(runner.split_whitespace());
        }
        c.arg(support::bin("qmqpd")).arg(md.path());
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let child = c.spawn().expect("tcpserver (ucspi-tcp) must be installed: tests/deps.sh");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "tcpserver did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::mem::forget(home);
        Gateway { port, md, child }
    }

    /// The one delivery, waiting briefly for it.
    fn only_delivery(&self) -> Vec<u8> {
        let d = delivered(self.md.path());
        assert_eq!(d.len(), 1, "one delivery expected");
        d[0].1.clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The message part of a Maildir file qmqpd wrote: after Return-Path,
/// the Delivered-To lines and the two Received lines.
fn message_part(file: &[u8]) -> (String, Vec<String>, Vec<u8>) {
    let mut rest = file;
    let mut take_line = || {
        let i = rest.iter().position(|&b| b == b'\n').unwrap();
        let l = String::from_utf8_lossy(&rest[..i]).into_owned();
        rest = &rest[i + 1..];
        l
    };
    let sender = take_line().strip_prefix("Return-Path: <").unwrap().strip_suffix('>').unwrap().to_string();
    let mut rcpts = Vec::new();
    loop {
        let l = take_line();
        if let Some(r) = l.strip_prefix("Delivered-To: ") {
            rcpts.push(r.to_string());
            continue;
        }
        assert!(l.starts_with("Received: from "), "{l}");
        break;
    }
    let by = take_line();
    assert!(by.starts_with("  by gw.picoq.test with QMQP; "), "{by}");
    (sender, rcpts, rest.to_vec())
}

#[test]
fn qmqpc_to_qmqpd_and_to_postfix_deliver_the_same_bytes() {
    let gw = Gateway::start();
    let msg = message_of_size("interop", 300_000);
    let rcpt = postfix::unique_address("interop", "example.net");
    let env = envelope("sender@example.org", &[&rcpt, "second@example.net"]);

    let home = Home::new("qmqpc-to-qmqpd");
    home.control("qmqpservers", &format!("127.0.0.1:{}\n", gw.port));
    let out = run_queue("qmqpc", home.path(), Message::Pipe(&msg), &env, false);
    assert_eq!(out.code, Some(0), "{out:?}");
    let (sender, rcpts, body) = message_part(&gw.only_delivery());
    assert_eq!(sender, "sender@example.org");
    assert_eq!(rcpts, [rcpt.clone(), "second@example.net".to_string()]);
    assert!(body == msg, "qmqpd stored other bytes than qmqpc sent");

    let pf = postfix::Postfix::shared();
    let home = Home::new("qmqpc-to-postfix");
    home.control("qmqpservers", &format!("127.0.0.1:{}\n", pf.port()));
    let out = run_queue("qmqpc", home.path(), Message::Pipe(&msg), &env, false);
    assert_eq!(out.code, Some(0), "{out:?}");
    let d = pf.wait_for_rcpt(&rcpt, Duration::from_secs(60));
    assert!(d.message_as_sent() == body, "Postfix and qmqpd received different bytes");
}

/// nullmailer's qmqp protocol module, from the Debian package (extracted,
/// not installed: nullmailer conflicts with postfix). tests/deps.sh puts
/// it in target/peers/nullmailer.
fn nullmailer_qmqp() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/peers/nullmailer/usr/lib/nullmailer/qmqp");
    assert!(p.exists(), "{} is missing: run tests/deps.sh (it extracts Debian's nullmailer)", p.display());
    p
}

#[test]
fn nullmailer_qmqp_module_to_qmqpd() {
    let gw = Gateway::start();
    let dir = TempDir::new("nullmailer");
    let msg = message_of_size("nullmailer", 20_000);
    // nullmailer's queue file: sender, recipients, an empty line, the message.
    let mut mail = b"sender@example.org\nr1@example.net\nr2@example.net\n\n".to_vec();
    mail.extend_from_slice(&msg);
    let file = dir.path().join("mail");
    std::fs::write(&file, &mail).unwrap();
    // Options on stdin, the mail file on fd 3 (the shell places it).
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("printf 'host=127.0.0.1\\nport={}\\n' | exec \"$0\" 3<\"$1\"", gw.port))
        .arg(nullmailer_qmqp())
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let (sender, rcpts, body) = message_part(&gw.only_delivery());
    assert_eq!(sender, "sender@example.org");
    assert_eq!(rcpts, ["r1@example.net", "r2@example.net"]);
    assert!(body == msg, "nullmailer's message changed on its way");
}
