//! Bounces as RFC 3464 delivery status notifications: a
//! `multipart/report; report-type=delivery-status` message (RFC 6522) of
//! three parts: a text for people, the `message/delivery-status` fields
//! (per message: Reporting-MTA, Arrival-Date; per recipient:
//! Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code), and the
//! original header (`text/rfc822-headers`, RFC 6522 §4).
//!
//! Written in pieces through a byte sink, in the spool's line ends (LF):
//! the caller walks its failed recipients twice, once for the text part
//! and once for the status part, so nothing needs holding in memory.

use crate::num::{U64_DIGITS, fmt_u64};
use crate::received::{DATE_MAX, date822};

/// Most bytes of the original header copied into a bounce.
pub const HEADERS_MAX: u64 = 64 * 1024;

/// What a bounce is about.
pub struct Report<'a> {
    /// This host (`control/me`): Reporting-MTA and the From domain.
    pub me: &'a [u8],
    /// The spool entry's name: boundary and Message-ID.
    pub id: &'a [u8],
    /// When the message was queued, and now (unix seconds).
    pub arrival: u64,
    pub now: u64,
    /// Who gets the bounce: the original envelope sender.
    pub to: &'a [u8],
}

/// An envelope address, with every control byte as `?`: an address may
/// hold any byte but NUL, and a line break in one would add header
/// lines or status fields to the bounce.
fn address(out: &mut dyn FnMut(&[u8]), a: &[u8]) {
    for (i, part) in a.split(|&b| b < 0x20 || b == 0x7f).enumerate() {
        if i > 0 {
            out(b"?");
        }
        out(part);
    }
}

fn boundary(out: &mut dyn FnMut(&[u8]), r: &Report<'_>) {
    out(b"--picoq=_");
    out(r.id);
}

fn date(out: &mut dyn FnMut(&[u8]), unix: u64) {
    let mut d = [0u8; DATE_MAX];
    out(date822(unix, &mut d));
}

/// The bounce's header and the start of its text part.
pub fn start(out: &mut dyn FnMut(&[u8]), r: &Report<'_>) {
    let mut n = [0u8; U64_DIGITS];
    out(b"From: MAILER-DAEMON@");
    out(r.me);
    out(b"\nTo: ");
    address(out, r.to);
    out(b"\nSubject: failure notice\nDate: ");
    date(out, r.now);
    out(b"\nMessage-ID: <");
    out(fmt_u64(r.now, &mut n));
    out(b".");
    out(r.id);
    out(b".bounce@");
    out(r.me);
    out(b">\nAuto-Submitted: auto-replied\nMIME-Version: 1.0\n");
    out(b"Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"picoq=_");
    out(r.id);
    out(b"\"\n\nThis is a MIME-encapsulated message.\n\n");
    boundary(out, r);
    out(b"\nContent-Type: text/plain; charset=us-ascii\n\nThis is queue-send on ");
    out(r.me);
    out(b".\nYour message could not be delivered to the addresses below.\nThe failure is permanent: no further attempts will be made.\n");
}

/// One failed recipient in the text part.
pub fn text_failure(out: &mut dyn FnMut(&[u8]), rcpt: &[u8], diagnostic: &[u8]) {
    out(b"\n<");
    address(out, rcpt);
    out(b">:\n");
    out(diagnostic);
    out(b"\n");
}

/// Ends the text part; starts the delivery-status part with its
/// per-message fields.
pub fn status_start(out: &mut dyn FnMut(&[u8]), r: &Report<'_>) {
    out(b"\n");
    boundary(out, r);
    out(b"\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; ");
    out(r.me);
    out(b"\nArrival-Date: ");
    date(out, r.arrival);
    out(b"\n");
}

/// One failed recipient's fields. `status` is an RFC 3463 code (`5.1.1`),
/// `diagnostic` the relay's reply (`550 5.1.1 no such user`) or picoq's
/// reason, `remote` the relay's address when one answered.
pub fn status_failure(out: &mut dyn FnMut(&[u8]), rcpt: &[u8], status: &[u8], diagnostic: &[u8], remote: &[u8]) {
    out(b"\nFinal-Recipient: rfc822; ");
    address(out, rcpt);
    out(b"\nAction: failed\nStatus: ");
    out(status);
    if !remote.is_empty() {
        out(b"\nRemote-MTA: dns; ");
        out(remote);
    }
    out(b"\nDiagnostic-Code: smtp; ");
    out(diagnostic);
    out(b"\n");
}

/// Ends the status part; starts the part with the original header, which
/// the caller writes next (up to its empty line, at most `HEADERS_MAX`).
pub fn headers_start(out: &mut dyn FnMut(&[u8]), r: &Report<'_>) {
    out(b"\n");
    boundary(out, r);
    out(b"\nContent-Type: text/rfc822-headers\n\n");
}

/// Ends the bounce.
pub fn finish(out: &mut dyn FnMut(&[u8]), r: &Report<'_>, header_ended_with_lf: bool) {
    if !header_ended_with_lf {
        out(b"\n");
    }
    out(b"\n");
    boundary(out, r);
    out(b"--\n");
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn a_report_with_one_failure_has_rfc3464_structure() {
        let mut v = Vec::new();
        let mut o = |b: &[u8]| v.extend_from_slice(b);
        let r = Report {
            me: b"box.example",
            id: b"1700000000.42",
            arrival: 1_700_000_000,
            now: 1_700_000_060,
            to: b"s@x.org",
        };
        start(&mut o, &r);
        text_failure(&mut o, b"u@y.org", b"550 5.1.1 no such user");
        status_start(&mut o, &r);
        status_failure(&mut o, b"u@y.org", b"5.1.1", b"550 5.1.1 no such user", b"10.0.0.1");
        headers_start(&mut o, &r);
        o(b"Subject: hi\n");
        finish(&mut o, &r, true);
        let s = std::string::String::from_utf8(v).unwrap();
        assert!(s.starts_with("From: MAILER-DAEMON@box.example\nTo: s@x.org\n"), "{s}");
        assert!(s.contains(
            "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"picoq=_1700000000.42\"\n"
        ));
        assert!(s.contains("\n--picoq=_1700000000.42\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; box.example\nArrival-Date: 14 Nov 2023 22:13:20 -0000\n\nFinal-Recipient: rfc822; u@y.org\nAction: failed\nStatus: 5.1.1\nRemote-MTA: dns; 10.0.0.1\nDiagnostic-Code: smtp; 550 5.1.1 no such user\n"), "{s}");
        assert!(s.ends_with("Content-Type: text/rfc822-headers\n\nSubject: hi\n\n--picoq=_1700000000.42--\n"), "{s}");
    }

    #[test]
    fn addresses_cannot_add_header_lines_or_fields() {
        let mut v = Vec::new();
        let mut o = |b: &[u8]| v.extend_from_slice(b);
        let r = Report { me: b"m", id: b"1.2", arrival: 0, now: 0, to: b"s@x\nBcc: victim@y" };
        start(&mut o, &r);
        status_failure(&mut o, b"u@y\r\nAction: delivered", b"5.0.0", b"550 no", b"");
        let s = std::string::String::from_utf8(v).unwrap();
        assert!(s.contains("\nTo: s@x?Bcc: victim@y\n"), "{s}");
        assert!(s.contains("\nFinal-Recipient: rfc822; u@y??Action: delivered\nAction: failed\n"), "{s}");
    }
}
