//! qmqpc against a real, independently written QMQP server: Postfix's
//! qmqpd(8) on loopback (support/postfix.rs). What arrives must be what the
//! caller gave qmqpc: the same envelope and the same message bytes.

#[path = "support/postfix.rs"]
mod postfix;
mod support;

use postfix::{Postfix, unique_address};
use std::time::Duration;
use support::{Home, Message, envelope, message_of_size, run_queue};

fn home() -> Home {
    let h = Home::new("qmqpc-postfix");
    h.control("qmqpservers", &format!("127.0.0.1:{}\n", Postfix::shared().port()));
    h
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Sends `msg` to `rcpts` through qmqpc and returns what Postfix delivered.
fn send(msg: Message<'_>, sender: &str, rcpts: &[String]) -> postfix::Delivery {
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    let out = run_queue("qmqpc", home().path(), msg, &envelope(sender, &refs), false);
    assert_eq!(out.code, Some(0), "{out:?}\n{}", Postfix::shared().log_tail());
    Postfix::shared().wait_for_rcpt(&rcpts[0], Duration::from_secs(60))
}

#[test]
fn one_recipient_arrives_with_its_envelope_and_bytes() {
    let rcpt = unique_address("one", "example.net");
    let msg = message_of_size("one", 1024);
    let d = send(Message::Pipe(&msg), "sender@example.org", std::slice::from_ref(&rcpt));
    assert_eq!(d.sender, "sender@example.org");
    assert_eq!(d.recipients, [rcpt]);
    assert_eq!(d.message_as_sent(), msg);
}

#[test]
fn thousand_recipients_arrive_in_one_delivery() {
    let rcpts: Vec<String> = (0..1000).map(|_| unique_address("many", "example.net")).collect();
    let msg = message_of_size("many", 4096);
    let d = send(Message::Pipe(&msg), "sender@example.org", &rcpts);
    assert_eq!(sorted(d.recipients.clone()), sorted(rcpts));
    assert_eq!(d.message_as_sent(), msg);
}

#[test]
fn ten_mib_message_from_a_pipe_and_from_a_file() {
    let msg = message_of_size("big", 10 << 20);
    let rcpt = unique_address("bigpipe", "example.net");
    let d = send(Message::Pipe(&msg), "sender@example.org", std::slice::from_ref(&rcpt));
    assert_eq!(d.message_as_sent().len(), msg.len());
    assert!(d.message_as_sent() == msg, "10 MiB through a pipe changed");

    let dir = support::TempDir::new("big");
    let path = dir.path().join("msg");
    std::fs::write(&path, &msg).unwrap();
    let rcpt = unique_address("bigfile", "example.net");
    let d = send(Message::File(&path), "sender@example.org", std::slice::from_ref(&rcpt));
    assert!(d.message_as_sent() == msg, "10 MiB from a file changed");
}

#[test]
fn null_sender_bounce_style() {
    let rcpt = unique_address("bounce", "example.net");
    let msg = message_of_size("bounce", 600);
    let d = send(Message::Pipe(&msg), "", std::slice::from_ref(&rcpt));
    assert_eq!(d.sender, "");
    assert_eq!(d.message_as_sent(), msg);
}
