//! SMTP, client side (RFC 5321), for queue-send: reply parsing (multiline
//! replies, EHLO keywords), buffered commands with a timeout per read and
//! write (qmail-remote's `timeoutremote`), and the DATA transform
//! (LF → CRLF, dot-stuffing, RFC 5321 §4.5.2).
//!
//! Everything is bounded: a reply line longer than `LINE_MAX` or a reply
//! of more than `REPLY_LINES_MAX` lines is a protocol error; the text kept
//! of a reply (for logs and bounces) is cut to `TEXT_MAX`, printable ASCII
//! only, so a relay can't inject line breaks into a log or a bounce.

use crate::bytes::{eq_ignore_case, memchr};
use crate::io::{IoError, read_timeout, write_all_timeout};
use crate::sys::ByteBuf;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512 with CRLF;
/// real servers exceed it a little).
pub const LINE_MAX: usize = 2048;
/// Most lines in one reply (an EHLO reply has one per extension).
pub const REPLY_LINES_MAX: usize = 100;
/// Reply text kept: code, separator and text of every line, joined by a
/// space, sanitized.
pub const TEXT_MAX: usize = 400;
/// Bytes read from the relay at a time.
const IN_BUF: usize = 4096;
/// Commands and message data are collected here and written in one go
/// (a whole pipelined command group, or a 1 KiB message with its dot).
pub const OUT_BUF: usize = 16 * 1024;
static_assertions::const_assert!(IN_BUF > 512);
static_assertions::const_assert!(OUT_BUF >= 2 * crate::envelope::ADDR_MAX + 64);

/// Why a session failed (the connection is unusable afterwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpError {
    Io(IoError),
    /// The relay closed the connection.
    Eof,
    /// Not an SMTP reply, or over the bounds.
    Malformed,
}

/// One reply: its code and its sanitized text (`250 2.0.0 ok`).
pub struct Reply {
    pub code: u16,
    pub text: ByteBuf<TEXT_MAX>,
}

impl Reply {
    pub fn class(&self) -> u16 {
        self.code / 100
    }
}

/// The EHLO extensions picoq uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    pub pipelining: bool,
    pub size: bool,
}

/// Notes the keyword of one EHLO reply line's text (after `250-`).
fn note_keyword(text: &[u8], ext: &mut Extensions) {
    let word = text.split(|&b| b == b' ').next().unwrap_or(text);
    if eq_ignore_case(word, b"PIPELINING") {
        ext.pipelining = true;
    } else if eq_ignore_case(word, b"SIZE") {
        ext.size = true;
    }
}

/// An SMTP connection to a relay.
pub struct Session {
    sock: OwnedFd,
    secs: u32,
    inbuf: [u8; IN_BUF],
    pos: usize,
    end: usize,
    out: ByteBuf<OUT_BUF>,
    pub ext: Extensions,
}

impl Session {
    /// A session over a connected socket; `secs` bounds every read and
    /// write.
    #[inline(never)]
    pub fn new(sock: OwnedFd, secs: u32) -> Session {
        Session { sock, secs, inbuf: [0; IN_BUF], pos: 0, end: 0, out: ByteBuf::new(), ext: Extensions::default() }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Queues bytes for the relay; writes out what is queued when full.
    #[inline(never)]
    pub fn put(&mut self, b: &[u8]) -> Result<(), SmtpError> {
        if self.out.extend(b) {
            return Ok(());
        }
        self.flush()?;
        if self.out.extend(b) {
            return Ok(());
        }
        write_all_timeout(self.sock.as_fd(), b, self.secs).map_err(SmtpError::Io)
    }

    /// Writes out what is queued.
    #[inline(never)]
    pub fn flush(&mut self) -> Result<(), SmtpError> {
        let r = write_all_timeout(self.sock.as_fd(), self.out.as_slice(), self.secs).map_err(SmtpError::Io);
        self.out.clear();
        r
    }

    /// A command line: the parts, then CRLF.
    #[inline(never)]
    pub fn command(&mut self, parts: &[&[u8]]) -> Result<(), SmtpError> {
        for p in parts {
            self.put(p)?;
        }
        self.put(b"\r\n")
    }

    fn fill(&mut self) -> Result<(), SmtpError> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.pos > 0 {
            self.inbuf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let n = read_timeout(self.sock.as_fd(), &mut self.inbuf[self.end..], self.secs).map_err(SmtpError::Io)?;
        if n == 0 {
            return Err(SmtpError::Eof);
        }
        self.end += n;
        Ok(())
    }

    /// Reads one line into `line` (CRLF or LF stripped); returns its length.
    /// Bytes beyond `line.len()` are counted but dropped.
    fn read_line(&mut self, line: &mut [u8; TEXT_MAX + 8]) -> Result<usize, SmtpError> {
        let mut total = 0;
        loop {
            let avail = &self.inbuf[self.pos..self.end];
            let (take, done) = match memchr(b'\n', avail) {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            let cap = line.len();
            let at = total.min(cap);
            let keep = take.min(cap - at);
            line[at..at + keep].copy_from_slice(&avail[..keep]);
            total += take;
            if total > LINE_MAX {
                return Err(SmtpError::Malformed);
            }
            if done {
                self.pos += take + 1;
                let mut n = total.min(line.len());
                if n > 0 && total <= line.len() && line[n - 1] == b'\r' {
                    n -= 1;
                }
                return Ok(n);
            }
            self.pos = self.end;
            self.fill()?;
        }
    }

    /// Reads one reply, multiline ones included (`250-...` lines until
    /// `250 ...`). With `ext`, notes the EHLO keywords of its lines.
    pub fn read_reply(&mut self, mut ext: Option<&mut Extensions>) -> Result<Reply, SmtpError> {
        let mut reply = Reply { code: 0, text: ByteBuf::new() };
        let mut line = [0u8; TEXT_MAX + 8];
        for n in 0..REPLY_LINES_MAX {
            let len = self.read_line(&mut line)?;
            let l = &line[..len];
            let code = match l {
                [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
                    (a - b'0') as u16 * 100 + (b - b'0') as u16 * 10 + (c - b'0') as u16
                }
                _ => return Err(SmtpError::Malformed),
            };
            if n > 0 && code != reply.code {
                return Err(SmtpError::Malformed);
            }
            reply.code = code;
            let more = l.get(3) == Some(&b'-');
            if n > 0 {
                if let Some(e) = ext.as_deref_mut() {
                    note_keyword(l.get(4..).unwrap_or_default(), e);
                }
                push_sanitized(&mut reply.text, b" ");
            }
            push_sanitized(&mut reply.text, if n == 0 { l } else { l.get(4..).unwrap_or_default() });
            if !more {
                return Ok(reply);
            }
        }
        Err(SmtpError::Malformed)
    }

    /// Sends the message `read` yields, transformed for DATA, and the
    /// final dot. `read` fills the buffer and returns the byte count, 0 at
    /// the end.
    pub fn send_data<E>(
        &mut self,
        mut read: impl FnMut(&mut [u8]) -> Result<usize, E>,
    ) -> Result<Result<(), E>, SmtpError> {
        let mut t = DataTransform::new();
        let mut buf = [0u8; IN_BUF];
        loop {
            let n = match read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return Ok(Err(e)),
            };
            let mut err = Ok(());
            t.push(&buf[..n], &mut |b| {
                if err.is_ok() {
                    err = self.put(b);
                }
            });
            err?;
        }
        let mut err = Ok(());
        t.finish(&mut |b| {
            if err.is_ok() {
                err = self.put(b);
            }
        });
        err?;
        self.flush()?;
        Ok(Ok(()))
    }
}

/// Appends `s` to `out` with every byte outside printable ASCII as `?`,
/// silently stopping when `out` is full.
#[inline(never)]
pub fn push_sanitized<const N: usize>(out: &mut ByteBuf<N>, s: &[u8]) {
    for &b in s {
        if !out.push(if (0x20..0x7f).contains(&b) { b } else { b'?' }) {
            return;
        }
    }
}

/// The DATA transform, streaming: every LF becomes CRLF (a CRLF already
/// there stays one CRLF), a line starting with `.` gets another `.`
/// (RFC 5321 §4.5.2), a last line without LF is ended, then `.` CRLF.
pub struct DataTransform {
    line_start: bool,
    last_cr: bool,
}

impl Default for DataTransform {
    fn default() -> Self {
        DataTransform::new()
    }
}

impl DataTransform {
    pub const fn new() -> Self {
        DataTransform { line_start: true, last_cr: false }
    }

    pub fn push(&mut self, mut data: &[u8], out: &mut impl FnMut(&[u8])) {
        while !data.is_empty() {
            if self.line_start && data[0] == b'.' {
                out(b".");
            }
            match memchr(b'\n', data) {
                Some(i) => {
                    let seg = &data[..i];
                    let cr = if i > 0 { seg[i - 1] == b'\r' } else { self.last_cr };
                    out(seg);
                    out(if cr { b"\n" } else { b"\r\n" });
                    self.line_start = true;
                    self.last_cr = false;
                    data = &data[i + 1..];
                }
                None => {
                    out(data);
                    self.line_start = false;
                    self.last_cr = data[data.len() - 1] == b'\r';
                    return;
                }
            }
        }
    }

    pub fn finish(&mut self, out: &mut impl FnMut(&[u8])) {
        if !self.line_start {
            out(if self.last_cr { b"\n" } else { b"\r\n" });
        }
        out(b".\r\n");
        *self = DataTransform::new();
    }
}

/// The enhanced status code (RFC 3463) a reply text starts with after its
/// code (`550 5.1.1 ...` gives `5.1.1`), if any.
pub fn enhanced_status(text: &[u8]) -> Option<&[u8]> {
    let rest = text.get(4..)?;
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let s = &rest[..end];
    let mut parts = 0;
    for p in s.split(|&b| b == b'.') {
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        parts += 1;
    }
    (parts == 3 && matches!(s[0], b'2' | b'4' | b'5') && s[1] == b'.').then_some(s)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::testutil::pair;
    use std::vec::Vec;

    fn transform(chunks: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        let mut t = DataTransform::new();
        for c in chunks {
            t.push(c, &mut |b: &[u8]| v.extend_from_slice(b));
        }
        t.finish(&mut |b: &[u8]| v.extend_from_slice(b));
        v
    }

    #[test]
    fn data_lf_becomes_crlf_and_dots_are_stuffed() {
        assert_eq!(transform(&[b"a\n.b\n..\n"]), b"a\r\n..b\r\n...\r\n.\r\n");
        // RFC 5321 4.5.2: a line of one dot must not end the data.
        assert_eq!(transform(&[b".\n"]), b"..\r\n.\r\n");
        // No final LF: the line is ended before the dot.
        assert_eq!(transform(&[b"x"]), b"x\r\n.\r\n");
        assert_eq!(transform(&[b""]), b".\r\n");
        // An existing CRLF is not doubled, even across chunks.
        assert_eq!(transform(&[b"a\r", b"\n.", b"b\r\n"]), b"a\r\n..b\r\n.\r\n");
        // Dots in the middle of a line, split chunks.
        assert_eq!(transform(&[b"a.", b".b\n", b".", b"c"]), b"a..b\r\n..c\r\n.\r\n");
    }

    fn replies(input: &[u8]) -> Session {
        let (a, b) = pair();
        rustix::io::write(&b, input).unwrap();
        drop(b);
        Session::new(a, 5)
    }

    #[test]
    fn multiline_reply_and_ehlo_keywords() {
        let mut s =
            replies(b"250-relay.example hello\r\n250-SIZE 1000\r\n250-pipelining\r\n250 8BITMIME\r\n550 5.1.1 no\r\n");
        let mut ext = Extensions::default();
        let r = s.read_reply(Some(&mut ext)).unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(ext, Extensions { pipelining: true, size: true });
        assert_eq!(r.text.as_slice(), b"250-relay.example hello SIZE 1000 pipelining 8BITMIME");
        let r = s.read_reply(None).unwrap();
        assert_eq!((r.code, r.class()), (550, 5));
        assert_eq!(enhanced_status(r.text.as_slice()), Some(&b"5.1.1"[..]));
        assert_eq!(s.read_reply(None).err(), Some(SmtpError::Eof));
    }

    #[test]
    fn bad_replies_are_refused() {
        assert_eq!(replies(b"hello\r\n").read_reply(None).err(), Some(SmtpError::Malformed));
        // Codes of one reply must agree.
        assert_eq!(replies(b"250-a\r\n451 b\r\n").read_reply(None).err(), Some(SmtpError::Malformed));
        let mut long = Vec::from(&b"250 "[..]);
        long.resize(LINE_MAX + 10, b'x');
        long.extend_from_slice(b"\r\n");
        assert_eq!(replies(&long).read_reply(None).err(), Some(SmtpError::Malformed));
        // Control characters never reach a log.
        let r = replies(b"451 a\x1bb\r\n").read_reply(None).unwrap();
        assert_eq!(r.text.as_slice(), b"451 a?b");
        assert_eq!(enhanced_status(b"250 ok"), None);
    }
}
