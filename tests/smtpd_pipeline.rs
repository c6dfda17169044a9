//! The whole firewall pipeline (SPEC §1, seed 004): a real SMTP client
//! (swaks, Python smtplib) → tcpserver → smtpd-front → qmqpc (as
//! QMAILQUEUE) → Postfix's qmqpd on the "gateway". What Postfix delivers
//! must be the client's envelope and bytes, below smtpd-front's Received
//! line; a gateway that is down or refuses gives the client a 4xx with the
//! gateway's own words when it said any.

#[path = "support/postfix.rs"]
mod postfix;
#[path = "support/smtpd.rs"]
mod smtpd;
mod support;

use postfix::{Postfix, unique_address};
use smtpd::{Rig, Tcpserver, python, swaks};
use std::time::Duration;
use support::qmqp_script::{Script, ScriptedServer};

/// A rig whose queue program is the real qmqpc, pointed at `servers`.
fn firewall(tag: &str, servers: &str) -> Rig {
    let mut r = Rig::new(tag);
    r.control("rcpthosts", "example.net\n").control("qmqpservers", servers).control("timeoutremote", "20\n");
    r.queue = support::bin("qmqpc");
    r
}

const SEND_FILE: &str = r#"
import smtplib, sys
port, path, sender = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rcpts = sys.argv[4:]
msg = open(path, 'rb').read().replace(b'\n', b'\r\n')
s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.test', timeout=60)
try:
    refused = s.sendmail(sender, rcpts, msg)
    print('REFUSED', sorted(refused))
except smtplib.SMTPDataError as e:
    print('DATAERR', e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    print('ALLREFUSED', e.recipients)
s.quit()
"#;

/// Sends the LF-terminated `msg` with smtplib (which sends CRLF).
fn send_with_smtplib(port: u16, msg: &[u8], sender: &str, rcpts: &[&str]) -> String {
    let dir = support::TempDir::new("msg");
    let path = dir.path().join("m");
    std::fs::write(&path, msg).unwrap();
    let mut args = vec![port.to_string(), path.to_str().unwrap().to_string(), sender.to_string()];
    args.extend(rcpts.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out) = python(SEND_FILE, &refs);
    assert_eq!(code, Some(0), "{out}");
    out
}

/// Splits smtpd-front's Received line off a delivered message.
fn split_received(m: &[u8]) -> (String, Vec<u8>) {
    assert!(m.starts_with(b"Received: from "), "{}", String::from_utf8_lossy(&m[..m.len().min(300)]));
    let first = m.iter().position(|&b| b == b'\n').unwrap();
    let second = first + 1 + m[first + 1..].iter().position(|&b| b == b'\n').unwrap();
    (String::from_utf8_lossy(&m[..second + 1]).into_owned(), m[second + 1..].to_vec())
}

#[test]
fn smtplib_to_postfix_envelope_and_bytes_arrive() {
    let pf = Postfix::shared();
    let r = firewall("pipe", &format!("{}\n", pf.addr()));
    let t = Tcpserver::start(&r, None);
    let a = unique_address("pipe-a", "example.net");
    let b = unique_address("pipe-b", "example.net");
    let msg = support::message_of_size("pipe", 100 * 1024);
    let out = send_with_smtplib(t.port, &msg, "sender@example.org", &[&a, "x@refused.test", &b]);
    assert!(out.contains("REFUSED ['x@refused.test']"), "{out}");
    let d = pf.wait_for_rcpt(&a, Duration::from_secs(60));
    assert_eq!(d.sender, "sender@example.org");
    let mut got = d.recipients.clone();
    got.sort();
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(got, want);
    let (received, body) = split_received(&d.message_as_sent());
    assert!(
        received.starts_with("Received: from unknown (HELO client.test) (127.0.0.1)\n  by picoq.test with SMTP; "),
        "{received}"
    );
    assert!(body == msg, "the message changed on its way through smtpd-front, qmqpc and Postfix");
    let log = t.stop();
    assert!(log.contains("rcpts=2 bytes=102400 qp="), "{log}");
}

#[test]
fn swaks_to_postfix_with_pipelining_and_dot_lines() {
    let pf = Postfix::shared();
    let r = firewall("pipeswaks", &format!("{}\n", pf.addr()));
    let t = Tcpserver::start(&r, None);
    let rcpt = unique_address("swaks", "example.net");
    let data = "Date: 21 Nov 2026 05:43:00 -0000\nMessage-Id: <swaks@test.picoq>\nFrom: a@example.org\nTo: b@example.net\nSubject: dots\n\n.\n..\n.x\nend\n";
    let (code, tr) = swaks(&t.addr(), &["--pipeline", "--from", "a@example.org", "--to", &rcpt, "--data", data]);
    assert_eq!(code, Some(0), "{tr}");
    let d = pf.wait_for_rcpt(&rcpt, Duration::from_secs(60));
    let (_, body) = split_received(&d.message_as_sent());
    assert_eq!(String::from_utf8_lossy(&body), format!("{data}\n"));
}

#[test]
fn ten_mib_message_through_the_pipeline() {
    let pf = Postfix::shared();
    let r = firewall("pipebig", &format!("{}\n", pf.addr()));
    let t = Tcpserver::start(&r, None);
    let rcpt = unique_address("big", "example.net");
    let msg = support::message_of_size("big", 10 << 20);
    send_with_smtplib(t.port, &msg, "sender@example.org", &[&rcpt]);
    let d = pf.wait_for_rcpt(&rcpt, Duration::from_secs(120));
    let (_, body) = split_received(&d.message_as_sent());
    assert!(body == msg, "10 MiB changed on the way");
}

#[test]
fn dead_gateway_gives_the_client_a_4xx() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = firewall("deadgw", &format!("127.0.0.1:{closed}\n"));
    let t = Tcpserver::start(&r, None);
    let msg = support::message_of_size("dead", 2000);
    let out = send_with_smtplib(t.port, &msg, "sender@example.org", &["u@example.net"]);
    assert!(out.contains("DATAERR 451 connection to mail server rejected (#4.4.1)"), "{out}");
}

#[test]
fn gateways_own_words_reach_the_client() {
    for (reply, want) in [
        ("Zgateway spool full, try later (#4.3.1)", "DATAERR 451 gateway spool full, try later (#4.3.1)"),
        ("Dno such user here (#5.1.1)", "DATAERR 554 no such user here (#5.1.1)"),
    ] {
        let gw = ScriptedServer::start(Script::Reply(format!("{}:{},", reply.len(), reply).into_bytes()));
        let r = firewall("words", &format!("127.0.0.1:{}\n", gw.port()));
        let t = Tcpserver::start(&r, None);
        let msg = support::message_of_size("words", 2000);
        let out = send_with_smtplib(t.port, &msg, "sender@example.org", &["u@example.net"]);
        assert!(out.contains(want), "{out}");
    }
}

#[test]
fn refused_messages_never_reach_the_gateway() {
    // databytes exceeded and too many hops: qmqpc is not even run.
    let pf = Postfix::shared();
    let r = firewall("pipe552", &format!("{}\n", pf.addr()));
    r.control("databytes", "1000\n");
    let t = Tcpserver::start(&r, None);
    let rcpt = unique_address("toobig", "example.net");
    let msg = support::message_of_size("toobig", 5000);
    let (_, tr) =
        swaks(&t.addr(), &["--from", "a@example.org", "--to", &rcpt, "--data", std::str::from_utf8(&msg).unwrap()]);
    assert!(tr.contains("552 sorry, that message size exceeds my databytes limit (#5.3.4)"), "{tr}");
    assert!(pf.try_wait_for_rcpt(&rcpt, Duration::from_secs(2)).is_none());
}
