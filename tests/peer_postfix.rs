//! The Postfix peer itself: raw QMQP packets (built here, sent over a
//! std TcpStream) to a private Postfix qmqpd, and what Postfix delivered.
//! Proves the harness in support/postfix.rs before other tests rely on it.

#[path = "support/postfix.rs"]
mod postfix;

use postfix::{DISCARD_DOMAIN, Delivery, Postfix};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn netstring(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
    out.push(b',');
}

/// netstring(netstring(message) netstring(sender) netstring(recipient)...)
fn qmqp_packet(message: &[u8], sender: &str, recipients: &[&str]) -> Vec<u8> {
    let mut inner = Vec::with_capacity(message.len() + 64);
    netstring(&mut inner, message);
    netstring(&mut inner, sender.as_bytes());
    for r in recipients {
        netstring(&mut inner, r.as_bytes());
    }
    let mut packet = Vec::with_capacity(inner.len() + 16);
    netstring(&mut packet, &inner);
    packet
}

/// Send one packet, return the server's reply: (K/Z/D, text after it).
fn send_qmqp(port: u16, packet: &[u8]) -> (u8, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Postfix qmqpd");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    s.write_all(packet).expect("send QMQP packet");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("read QMQP reply");
    let text = String::from_utf8_lossy(&reply).into_owned();
    let (len, rest) = text.split_once(':').unwrap_or_else(|| panic!("bad QMQP reply {text:?}"));
    let len: usize = len.parse().unwrap_or_else(|_| panic!("bad QMQP reply {text:?}"));
    assert_eq!(rest.len(), len + 1, "QMQP reply is not one netstring: {text:?}");
    assert!(rest.ends_with(','), "QMQP reply is not one netstring: {text:?}");
    assert!(len >= 1, "empty QMQP reply");
    (rest.as_bytes()[0], rest[1..len].to_string())
}

/// Send and expect K; returns the queue id from "Ok: queued as ID".
fn send_ok(pf: &Postfix, message: &[u8], sender: &str, recipients: &[&str]) -> String {
    let (code, text) = send_qmqp(pf.port(), &qmqp_packet(message, sender, recipients));
    assert_eq!(code, b'K', "qmqpd refused: {}{text}\n{}", code as char, pf.log_tail());
    text.rsplit(' ').next().unwrap().to_string()
}

/// A message with From, Date and Message-Id: Postfix adds nothing to it but
/// its Received header.
fn message(tag: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <a@example.org>\n\
         To: Bob <b@example.net>\n\
         Subject: picoq peer test {tag}\n\
         Date: Thu, 01 Jan 2026 00:00:00 +0000\n\
         Message-Id: <{tag}@picoq.test>\n\
         \n\
         {body}"
    )
    .into_bytes()
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn check(d: &Delivery, queue_id: &str, sender: &str, recipients: &[&str], sent: &[u8]) {
    assert_eq!(d.queue_id, queue_id, "queue id from the reply vs. the delivery");
    assert_eq!(d.sender, sender);
    // Postfix delivers the recipients in its own order (by domain, then
    // local part) and without duplicates: compare sorted lists.
    let mut got = d.recipients.clone();
    got.sort();
    let want = sorted(recipients);
    if got != want {
        let missing: Vec<&String> = want.iter().filter(|r| !got.contains(r)).take(10).collect();
        let extra: Vec<&String> = got.iter().filter(|r| !want.contains(r)).take(10).collect();
        panic!(
            "recipient sets differ: {} delivered, {} sent; missing (first 10): {missing:?}; \
             unexpected (first 10): {extra:?}",
            got.len(),
            want.len()
        );
    }
    assert!(d.message.starts_with(b"Received: from "), "delivered message lacks Postfix's Received: {d:?}");
    let got = d.message_as_sent();
    if got != sent {
        let at = got.iter().zip(sent).position(|(a, b)| a != b).unwrap_or(got.len().min(sent.len()));
        let from = at.saturating_sub(200);
        panic!(
            "message changed in transit: {} bytes sent, {} delivered (normalised), first difference at \
             byte {at}\n--- sent from byte {from}:\n{}\n--- delivered from byte {from}:\n{}",
            sent.len(),
            got.len(),
            String::from_utf8_lossy(&sent[from.min(sent.len())..(at + 200).min(sent.len())]),
            String::from_utf8_lossy(&got[from.min(got.len())..(at + 200).min(got.len())])
        );
    }
}

#[test]
fn one_recipient() {
    let pf = Postfix::shared();
    let msg = message("one", "Hello, Postfix.\nSecond line.\n");
    let rcpt = "one-rcpt@peer.example.net";
    let id = send_ok(pf, &msg, "a@example.org", &[rcpt]);
    let d = pf.wait_for_rcpt(rcpt, WAIT);
    check(&d, &id, "a@example.org", &[rcpt], &msg);
}

#[test]
fn three_recipients() {
    let pf = Postfix::shared();
    let msg = message("three", "To three people.\n");
    let rcpts = ["three-c@peer.example.net", "three-a@peer.example.org", "three-b@peer.example.com"];
    let id = send_ok(pf, &msg, "a@example.org", &rcpts);
    let d = pf.wait_for_rcpt(rcpts[1], WAIT);
    check(&d, &id, "a@example.org", &rcpts, &msg);
}

#[test]
fn empty_sender() {
    let pf = Postfix::shared();
    let msg = message("bounce", "A bounce has the null sender <>.\n");
    let rcpt = "bounce-rcpt@peer.example.net";
    let id = send_ok(pf, &msg, "", &[rcpt]);
    let d = pf.wait_for_rcpt(rcpt, WAIT);
    check(&d, &id, "", &[rcpt], &msg);
}

#[test]
fn ten_mib_message() {
    let pf = Postfix::shared();
    // 10 MiB in 80-byte lines, each line different, every byte value but CR
    // (Postfix turns CR into a space) and LF.
    let mut msg = message("big", "");
    let mut i = 0u64;
    let mut b = 0u8;
    while msg.len() < (10 << 20) {
        msg.extend_from_slice(format!("{i:010} ").as_bytes());
        for _ in 0..68 {
            b = b.wrapping_add(1);
            if b == b'\r' || b == b'\n' {
                b += 1;
            }
            msg.push(b);
        }
        msg.push(b'\n');
        i += 1;
    }
    let rcpt = "big-rcpt@peer.example.net";
    let id = send_ok(pf, &msg, "a@example.org", &[rcpt]);
    let d = pf.wait_for_rcpt(rcpt, WAIT);
    check(&d, &id, "a@example.org", &[rcpt], &msg);
}

#[test]
fn thousand_recipients() {
    let pf = Postfix::shared();
    let owned: Vec<String> = (0..1000).rev().map(|i| format!("many-{i:04}@d{}.peer.example.net", i % 7)).collect();
    let rcpts: Vec<&str> = owned.iter().map(|s| s.as_str()).collect();
    let msg = message("thousand", "To a thousand recipients.\n");
    let id = send_ok(pf, &msg, "a@example.org", &rcpts);
    let d = pf.wait_for_rcpt(rcpts[0], WAIT);
    assert_eq!(d.recipients.len(), 1000, "one delivery with every recipient");
    check(&d, &id, "a@example.org", &rcpts, &msg);
}

/// Postfix adds Message-Id, Date and From when they are missing;
/// message_as_sent takes them out again.
#[test]
fn message_as_sent_removes_what_postfix_added() {
    let pf = Postfix::shared();
    let cases: [(&str, &str, &[u8]); 4] = [
        ("added-all@peer.example.net", "a@example.org", b"Subject: no From, Date, Message-Id\n\nbody\n"),
        ("added-null@peer.example.net", "", b"Subject: null sender\nTo: x@y\n\nbody\n"),
        ("added-date@peer.example.net", "a@example.org", b"From: a@example.org\nMessage-Id: <d@x>\n\nbody\n"),
        (
            "added-resent@peer.example.net",
            "a@example.org",
            b"From: a@example.org\nDate: Thu, 01 Jan 2026 00:00:00 +0000\nMessage-Id: <r@x>\nResent-To: z@y\n\nbody\n",
        ),
    ];
    for (rcpt, sender, msg) in cases {
        send_ok(pf, msg, sender, &[rcpt]);
        let d = pf.wait_for_rcpt(rcpt, WAIT);
        assert!(d.message.len() > msg.len(), "Postfix added nothing? {d:?}");
        assert_eq!(
            String::from_utf8_lossy(&d.message_as_sent()),
            String::from_utf8_lossy(msg),
            "raw delivery: {}",
            String::from_utf8_lossy(&d.message)
        );
    }
}

#[test]
fn discard_domain_is_not_captured() {
    let pf = Postfix::shared();
    let dropped = format!("gone@{DISCARD_DOMAIN}");
    let kept = "kept@peer.example.net";
    let msg = message("discard", "Half of this goes nowhere.\n");
    send_ok(pf, &msg, "a@example.org", &[&dropped, kept]);
    let d = pf.wait_for_rcpt(kept, WAIT);
    assert_eq!(d.recipients, [kept]);
    assert!(pf.try_wait_for_rcpt(&dropped, Duration::from_millis(300)).is_none());
}

#[test]
#[should_panic(expected = "no delivery to <nobody-sent-this@peer.example.net>")]
fn wait_for_rcpt_times_out_with_a_report() {
    let pf = Postfix::shared();
    pf.wait_for_rcpt("nobody-sent-this@peer.example.net", Duration::from_millis(100));
}

/// A private instance: its own port and directory, gone after drop.
#[test]
fn private_instance_stops_on_drop() {
    let pf = Postfix::start();
    let dir = pf.dir().to_path_buf();
    let pid: i32 = std::fs::read_to_string(dir.join("queue/pid/master.pid")).unwrap().trim().parse().unwrap();
    let rcpt = "private@peer.example.net";
    let msg = message("private", "Just for this instance.\n");
    let id = send_ok(&pf, &msg, "a@example.org", &[rcpt]);
    check(&pf.wait_for_rcpt(rcpt, WAIT), &id, "a@example.org", &[rcpt], &msg);
    drop(pf);
    if std::env::var_os(postfix::KEEP_ENV).is_none() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    // Gone, or a zombie waiting for pid 1 to reap it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or("").trim_start().chars().next();
    assert!(matches!(state, None | Some('Z')), "master {pid} still running: {stat}");
}
