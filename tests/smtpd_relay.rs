//! The open-relay suite (issue 6, SECURITY.md invariant 9): the classic
//! relay-test address forms against smtpd-front with a real rcpthosts
//! (exact names and a `.suffix`) and a morercpthosts.cdb written by
//! tinycdb, without and with RELAYCLIENT; over a pipe and over TCP under
//! the real tcpserver, whose tcprules set RELAYCLIENT for trusted clients,
//! with Python's smtplib sending the raw commands.
//!
//! The rule: without RELAYCLIENT no recipient whose mail would leave for a
//! foreign domain is accepted — neither a foreign domain after the last
//! `@` nor a relay hack in the local part (`%`, `!`, `@`, quoted or
//! escaped). Each case also records what qmail-smtpd 1.03 answers
//! (qmail-smtpd.c `addrparse`/`addrallowed`, rcpthosts.c): qmail checks
//! only the domain after the last `@` (an address without `@` is always
//! allowed) and leaves `%` and `!` to the delivery side — the documented
//! difference of SPEC §5.

#[path = "support/smtpd.rs"]
mod smtpd;
mod support;

use smtpd::{Rig, Tcpserver, crlf, python, write_cdb};

/// What a case must get without RELAYCLIENT.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Want {
    /// `250 ok`: a local recipient.
    Accept,
    /// Any 5xx: a foreign domain or a relay hack.
    Refuse,
}

use Want::*;

/// `RCPT TO:` argument, what picoq must answer without RELAYCLIENT, and
/// qmail-smtpd 1.03's answer for the record.
const CASES: &[(&[u8], Want, &str)] = &[
    // Plain forms.
    (b"<u@example.org>", Accept, "250"),
    (b"<u@far.test>", Refuse, "553"),
    (b"u@far.test", Refuse, "553"),
    (b" <u@far.test>", Refuse, "553"),
    (b"<u@sub.example.net>", Accept, "250 (.example.net)"),
    (b"<u@example.net>", Refuse, "553 (.suffix does not match the bare domain)"),
    (b"<u@more.test>", Accept, "250 (morercpthosts.cdb)"),
    (b"<u@x.more.test>", Refuse, "553"),
    // Percent hack and bang paths.
    (b"<u%far.test@example.org>", Refuse, "250: relays if the delivery side honours %"),
    (b"<u%far.test%example.org@example.org>", Refuse, "250"),
    (b"<far.test!u@example.org>", Refuse, "250: relays via a UUCP-style gateway"),
    (b"<u%far.test>", Refuse, "250: no @, always allowed"),
    (b"<far.test!u>", Refuse, "250: no @, always allowed"),
    (b"<u%far.test@more.test>", Refuse, "250"),
    // Source routes: stripped, the final address alone decides.
    (b"<@example.org:u@far.test>", Refuse, "553"),
    (b"<@example.org,@example.org:u@far.test>", Refuse, "553"),
    (b"<@far.test:u@example.org>", Accept, "250 (route stripped)"),
    (b"<@a.far.test,@b.far.test:u@example.org>", Accept, "250 (route stripped)"),
    // Quoted and escaped local parts hiding an @.
    (b"<\"u@far.test\"@example.org>", Refuse, "250"),
    (b"<\"u%far.test\"@example.org>", Refuse, "250"),
    (b"<\"u@far.test\">", Refuse, "553 (quotes removed: last @ is far.test)"),
    (b"<u\\@far.test@example.org>", Refuse, "250"),
    (b"<u@far.test@example.org>", Refuse, "250"),
    (b"<u@example.org@far.test>", Refuse, "553"),
    (b"<u@far.test,u@example.org>", Refuse, "250"),
    (b"<\"u@example.org\"@far.test>", Refuse, "553"),
    // IP literals: not local, refused; the local IP becomes localiphost.
    (b"<u@[198.51.100.7]>", Refuse, "553"),
    (b"<u@[IPv6:2001:db8::7]>", Refuse, "553"),
    (b"<u%far.test@[198.51.100.7]>", Refuse, "553"),
    (b"<u@[127.0.0.1]>", Accept, "250 (local IP -> localiphost, listed)"),
    // Trailing dots, case, look-alikes.
    (b"<u@example.org.>", Refuse, "553 (exact match only)"),
    (b"<u@example.org..>", Refuse, "553"),
    (b"<u@EXAMPLE.ORG>", Accept, "250"),
    (b"<u@ExAmPlE.oRg>", Accept, "250"),
    (b"<u@FAR.TEST>", Refuse, "553"),
    (b"<u@example.org.far.test>", Refuse, "553"),
    (b"<u@far-example.org>", Refuse, "553"),
    (b"<u@example.org >", Refuse, "553 (the space is part of the domain)"),
    // 8-bit bytes.
    (b"<u@example.org\xff>", Refuse, "553"),
    (b"<u@ex\xe4mple.org>", Refuse, "553"),
    (b"<u@\xc3\xa9xample.org>", Refuse, "553"),
    (b"<u\xe4@example.org>", Accept, "250 (8-bit local part, local domain)"),
    // Unqualified local names stay local (qmail: no @ is always allowed).
    (b"<postmaster>", Accept, "250"),
];

/// rcpthosts and morercpthosts.cdb as in a real install.
fn rig(tag: &str) -> Rig {
    let mut r = Rig::new(tag);
    // The local address, as tcpserver on loopback sets it.
    r.set_env("TCPLOCALIP", Some("127.0.0.1"));
    r.control("rcpthosts", "example.org\n.example.net\n");
    r.control("localiphost", "example.org\n");
    write_cdb(&r.home.path().join("control/morercpthosts.cdb"), &["more.test"]);
    r
}

fn session_input() -> Vec<u8> {
    let mut input = crlf(&["EHLO client.test", "MAIL FROM:<a@b.test>"]);
    for (addr, _, _) in CASES {
        input.extend_from_slice(b"RCPT TO:");
        input.extend_from_slice(addr);
        input.extend_from_slice(b"\r\n");
    }
    input.extend(crlf(&["QUIT"]));
    input
}

fn show(a: &[u8]) -> String {
    a.escape_ascii().to_string()
}

/// The replies to the RCPTs of `session_input` (after the EHLO lines, the
/// greeting and MAIL's 250).
fn rcpt_replies(lines: &[&str]) -> Vec<String> {
    let ehlo_end = lines.iter().position(|l| l.starts_with("250 ")).unwrap();
    // greeting, EHLO block, MAIL.
    lines[ehlo_end + 2..ehlo_end + 2 + CASES.len()].iter().map(|s| s.to_string()).collect()
}

fn check_without_relayclient(replies: &[String], how: &str) {
    assert_eq!(replies.len(), CASES.len());
    let mut table = String::new();
    for ((addr, want, qmail), got) in CASES.iter().zip(replies) {
        table.push_str(&format!("{:<44} picoq {:<70} qmail-smtpd {qmail}\n", show(addr), got));
        match want {
            Accept => assert_eq!(got, "250 ok", "{how}: {} must be accepted", show(addr)),
            Refuse => {
                assert!(got.starts_with('5'), "{how}: OPEN RELAY: {} got {got}", show(addr));
            }
        }
    }
    eprintln!("{how}, RELAYCLIENT unset:\n{table}");
    let refused = CASES.iter().filter(|c| c.1 == Refuse).count();
    eprintln!(
        "{how}: {} cases, {refused} relay attempts refused, {} local accepted",
        CASES.len(),
        CASES.len() - refused
    );
}

fn check_with_relayclient(replies: &[String], how: &str) {
    // A trusted client may relay anything well-formed: every case but the
    // ones whose syntax is refused for everyone gets 250.
    for ((addr, _, _), got) in CASES.iter().zip(replies) {
        assert_eq!(got, "250 ok", "{how} with RELAYCLIENT: {}", show(addr));
    }
}

/// Over a pipe, as tcpserver would run it, RELAYCLIENT unset and set; the
/// refused recipients never reach the queue's envelope.
#[test]
fn relay_forms_over_a_pipe() {
    let r = rig("relay-pipe");
    let s = r.run(&session_input());
    check_without_relayclient(&rcpt_replies(&s.lines()), "pipe");
    assert!(!s.err.contains("rcpthosts is missing"));

    let mut r = rig("relay-pipe-rc");
    r.set_env("RELAYCLIENT", Some(""));
    let s = r.run(&session_input());
    check_with_relayclient(&rcpt_replies(&s.lines()), "pipe");

    // A whole transaction: only the local recipients are in the envelope.
    let r = rig("relay-pipe-data");
    let mut input = crlf(&["MAIL FROM:<a@b.test>"]);
    for (addr, _, _) in CASES {
        input.extend_from_slice(b"RCPT TO:");
        input.extend_from_slice(addr);
        input.extend_from_slice(b"\r\n");
    }
    input.extend(crlf(&["DATA", "Subject: relay", "", "x", ".", "QUIT"]));
    let s = r.run(&input);
    let l = s.lines();
    assert!(l[l.len() - 2].starts_with("250 ok "), "{l:?}");
    let (_, rcpts) = r.queued()[0].parsed_envelope();
    let foreign: Vec<&String> = rcpts
        .iter()
        .filter(|a| {
            let domain = a.rsplit('@').next().unwrap().to_ascii_lowercase();
            let local = if a.contains('@') { &a[..a.rfind('@').unwrap()] } else { a.as_str() };
            let ok_domain = !a.contains('@')
                || domain == "example.org"
                || domain.ends_with(".example.net")
                || domain == "more.test";
            !ok_domain || local.contains(['%', '!', '@'])
        })
        .collect();
    assert!(foreign.is_empty(), "foreign recipients queued: {foreign:?}");
    let want = CASES.iter().filter(|c| c.1 == Accept).count();
    assert_eq!(rcpts.len(), want, "{rcpts:?}");
}

/// Python smtplib sends every form as a raw command through the real
/// tcpserver; tcprules give 127.0.0.1 RELAYCLIENT in one server, nothing
/// in the other. Same answers as over the pipe.
#[test]
fn relay_forms_through_tcpserver_and_tcprules() {
    const CLIENT: &str = r#"
import smtplib, sys
host, port = sys.argv[1], int(sys.argv[2])
cases = [bytes.fromhex(h) for h in sys.argv[3:]]
s = smtplib.SMTP(host, port, local_hostname='client.test', timeout=30)
s.ehlo()
code, _ = s.mail('a@b.test')
assert code == 250
for c in cases:
    s.send(b'RCPT TO:' + c + b'\r\n')
    code, text = s.getreply()
    print('%d %s' % (code, text.decode('latin-1')))
s.quit()
"#;
    let hex: Vec<String> = CASES.iter().map(|(a, _, _)| a.iter().map(|b| format!("{b:02x}")).collect()).collect();
    for (tag, rules) in [("relay-tcp", ":allow\n"), ("relay-tcp-rc", "127.0.0.1:allow,RELAYCLIENT=\"\"\n:deny\n")] {
        let r = rig(tag);
        let t = Tcpserver::start(&r, Some(rules));
        let port = t.port.to_string();
        let mut args = vec!["127.0.0.1", port.as_str()];
        args.extend(hex.iter().map(String::as_str));
        let (code, out) = python(CLIENT, &args);
        assert_eq!(code, Some(0), "{out}");
        let replies: Vec<String> = out.lines().map(str::to_string).collect();
        if tag == "relay-tcp" {
            check_without_relayclient(&replies, "tcpserver");
        } else {
            check_with_relayclient(&replies, "tcpserver+tcprules");
        }
        drop(t);
    }
}
