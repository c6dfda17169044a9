//! smtpd-front as it is deployed: under the real tcpserver (ucspi-tcp),
//! talked to by real, independently written clients: swaks (with and
//! without PIPELINING) and Python's smtplib. The queue is the recording
//! script of support/smtpd.rs; the whole firewall pipeline (qmqpc to
//! Postfix's qmqpd) is in smtpd_pipeline.rs.

#[path = "support/smtpd.rs"]
mod smtpd;
mod support;

use smtpd::{Rig, Tcpserver, python, swaks};

const BODY: &str = "From: a@b.test\nTo: u@example.org\nSubject: swaks\n\nline one\n.leading dot\n";

#[test]
fn swaks_message_arrives_with_tcpservers_environment() {
    let r = Rig::new("swaks");
    let t = Tcpserver::start(&r, None);
    let (code, tr) = swaks(&t.addr(), &["--from", "a@b.test", "--to", "u@example.org", "--data", BODY]);
    assert_eq!(code, Some(0), "{tr}");
    assert!(tr.contains("<-  250 ok "), "{tr}");
    let q = r.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].parsed_envelope(), ("a@b.test".into(), vec!["u@example.org".into()]));
    // swaks dot-stuffs (smtpd-front unstuffs) and ends --data with one
    // more CRLF before the final dot.
    assert_eq!(q[0].body(), format!("{BODY}\n").as_bytes());
    // tcpserver -H -R: no names, so TCPREMOTEHOST is unset ("unknown").
    let rl = q[0].received();
    assert!(
        rl.starts_with("Received: from unknown (HELO client.test) (127.0.0.1)\n  by picoq.test with SMTP; "),
        "{rl}"
    );
    let err = t.stop();
    assert!(err.contains("127.0.0.1 helo=client.test from=<a@b.test> rcpts=1"), "{err}");
}

#[test]
fn swaks_pipelining_with_a_refused_recipient() {
    let r = Rig::new("swakspipe");
    let t = Tcpserver::start(&r, None);
    let (code, tr) = swaks(
        &t.addr(),
        &["--pipeline", "--from", "a@b.test", "--to", "u@example.org,v@elsewhere.test,w@example.org", "--data", BODY],
    );
    // swaks exits 0 when at least one recipient was accepted... or 24 when
    // some were refused: either way the message must go through.
    assert!(matches!(code, Some(0) | Some(24)), "{code:?}\n{tr}");
    assert!(tr.contains("553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"), "{tr}");
    assert!(tr.contains("250 ok "), "{tr}");
    let q = r.queued();
    assert_eq!(q[0].parsed_envelope().1, ["u@example.org", "w@example.org"]);
}

#[test]
fn tcprules_relayclient_lets_trusted_clients_relay() {
    let r = Rig::new("rules");
    let t = Tcpserver::start(&r, Some("127.0.0.1:allow,RELAYCLIENT=\"\"\n:deny\n"));
    let (code, tr) = swaks(&t.addr(), &["--from", "a@b.test", "--to", "u@far.test", "--data", BODY]);
    assert_eq!(code, Some(0), "{tr}");
    assert_eq!(r.queued()[0].parsed_envelope().1, ["u@far.test"]);
    // Without the rule the same recipient is refused.
    let r2 = Rig::new("norules");
    let t2 = Tcpserver::start(&r2, None);
    let (_, tr) = swaks(&t2.addr(), &["--from", "a@b.test", "--to", "u@far.test", "--data", BODY]);
    assert!(tr.contains("<** 553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)"), "{tr}");
    assert!(r2.queued().is_empty());
}

const SMTPLIB: &str = r#"
import smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
s = smtplib.SMTP(host, port, local_hostname='py.test', timeout=30)
code, text = s.ehlo()
assert code == 250, (code, text)
assert s.has_extn('pipelining'), s.esmtp_features
assert s.has_extn('8bitmime'), s.esmtp_features
print('SIZE', s.esmtp_features.get('size'))
msg = b'From: a@b.test\r\nTo: u@example.org\r\nSubject: py\r\n\r\n.dot\r\n' + b'x' * 5000 + b'\r\n'
try:
    refused = s.sendmail('a@b.test', ['u@example.org', 'v@nope.test'], msg)
    print('REFUSED', sorted(refused.items()))
except smtplib.SMTPDataError as e:
    print('DATAERR', e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPSenderRefused as e:
    print('SENDERREFUSED', e.smtp_code, e.smtp_error.decode())
s.quit()
"#;

#[test]
fn python_smtplib_sends_and_sees_the_extensions() {
    let r = Rig::new("smtplib");
    r.control("databytes", "1000000\n");
    let t = Tcpserver::start(&r, None);
    let (code, out) = python(SMTPLIB, &["127.0.0.1", &t.port.to_string()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("SIZE 1000000"), "{out}");
    assert!(
        out.contains(
            "REFUSED [('v@nope.test', (553, b\"sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\"))]"
        ),
        "{out}"
    );
    let q = r.queued();
    assert_eq!(q[0].parsed_envelope(), ("a@b.test".into(), vec!["u@example.org".into()]));
    let mut want = b"From: a@b.test\nTo: u@example.org\nSubject: py\n\n.dot\n".to_vec();
    want.extend(std::iter::repeat_n(b'x', 5000));
    want.push(b'\n');
    assert_eq!(q[0].body(), want);
}

#[test]
fn python_smtplib_sees_databytes_and_queue_refusals() {
    let mut r = Rig::new("smtplib552");
    r.control("databytes", "100\n");
    let t = Tcpserver::start(&r, None);
    let (_, out) = python(SMTPLIB, &["127.0.0.1", &t.port.to_string()]);
    // smtplib sends SIZE=: refused at MAIL.
    assert!(out.contains("SENDERREFUSED 552 sorry, that message size exceeds my databytes limit (#5.3.4)"), "{out}");
    drop(t);
    r.control("databytes", "0\n");
    r.set_env("QQ_EXIT", Some("82")).set_env("QQ_FD6", Some("Zthe gateway says: try later (#4.3.0)"));
    let t = Tcpserver::start(&r, None);
    let (_, out) = python(SMTPLIB, &["127.0.0.1", &t.port.to_string()]);
    assert!(out.contains("DATAERR 451 the gateway says: try later (#4.3.0)"), "{out}");
}
