//! The one error-reporting path: `PROGRAM: fatal: message` on fd 2, then
//! exit with a documented code (skalibs' `strerr_die` shape).
//!
//! Messages are assembled from byte-string parts into one fixed buffer and
//! written with a single `write`, so a line never interleaves with another
//! process's log line and nothing allocates or formats.

use crate::errtext::{ErrBuf, errno_text};
use crate::io::IoError;
use crate::sys::{self, ByteBuf};
use rustix::io::IoSlice;

/// Longest diagnostic line; longer messages are cut (and end in `...`).
pub const LINE_MAX: usize = 512;
static_assertions::const_assert!(LINE_MAX >= 128);

/// The program's name for diagnostics.
#[derive(Clone, Copy)]
pub struct Die {
    name: &'static str,
}

impl Die {
    pub const fn new(name: &'static str) -> Die {
        Die { name }
    }

    /// Writes `NAME: fatal: PARTS...` to fd 2 and exits with `code`.
    pub fn fatal(self, code: i32, parts: &[&[u8]]) -> ! {
        self.line(b"fatal: ", parts);
        sys::exit(code)
    }

    /// Writes `NAME: warning: PARTS...` to fd 2.
    pub fn warn(self, parts: &[&[u8]]) {
        self.line(b"warning: ", parts);
    }

    /// Writes `NAME: PARTS...` to fd 2 (information for the log).
    pub fn info(self, parts: &[&[u8]]) {
        self.line(b"", parts);
    }

    /// `NAME: fatal: WHAT ARG: WHY`, WHY being the text for `e`; exits.
    /// The most common shape, kept out of line so each use is small.
    pub fn fatal_io(self, code: i32, what: &[u8], arg: &[u8], e: IoError) -> ! {
        self.line_io(b"fatal: ", what, arg, e);
        sys::exit(code)
    }

    /// `NAME: warning: WHAT ARG: WHY`, WHY being the text for `e`.
    pub fn warn_io(self, what: &[u8], arg: &[u8], e: IoError) {
        self.line_io(b"warning: ", what, arg, e);
    }

    #[inline(never)]
    fn line_io(self, level: &[u8], what: &[u8], arg: &[u8], e: IoError) {
        let mut eb = ErrBuf::default();
        let why: &[u8] = match e {
            IoError::Timeout => b"timed out",
            IoError::Os(e) => errno_text(e, &mut eb),
        };
        self.line(level, &[what, arg, b": ", why]);
    }

    /// One `writev` of the pieces: a line is never assembled in a buffer,
    /// and is still one write, so it never interleaves with another
    /// process's line (lines are far below PIPE_BUF: parts are bounded
    /// control lines, addresses and texts).
    #[inline(never)]
    fn line(self, level: &[u8], parts: &[&[u8]]) {
        let mut v = [IoSlice::new(b""); PARTS_MAX + 4];
        v[0] = IoSlice::new(self.name.as_bytes());
        v[1] = IoSlice::new(b": ");
        v[2] = IoSlice::new(level);
        let n = parts.len().min(PARTS_MAX);
        for (slot, p) in v[3..].iter_mut().zip(&parts[..n]) {
            *slot = IoSlice::new(p);
        }
        v[3 + n] = IoSlice::new(b"\n");
        // Nothing sensible is left to do when fd 2 fails.
        let _ = rustix::io::writev(sys::std_fd(2), &v[..4 + n]);
    }
}

/// Most parts one diagnostic may have (more are left out).
pub const PARTS_MAX: usize = 8;

pub struct Line {
    buf: ByteBuf<LINE_MAX>,
    cut: bool,
}

impl Line {
    pub const fn new() -> Line {
        Line { buf: ByteBuf::new(), cut: false }
    }

    pub fn push(&mut self, s: &[u8]) {
        // Keep room for "...\n".
        let n = s.len().min(self.buf.room().saturating_sub(4));
        self.cut |= n < s.len();
        self.buf.extend(&s[..n]);
    }

    /// Ends the line with a newline and returns its bytes.
    pub fn finish(&mut self) -> &[u8] {
        if self.cut {
            self.buf.extend(b"...");
        }
        self.buf.push(b'\n');
        self.buf.as_slice()
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_is_assembled_and_newline_terminated() {
        let mut l = Line::new();
        l.push(b"qmqpc: ");
        l.push(b"fatal: x");
        assert_eq!(l.finish(), b"qmqpc: fatal: x\n");
    }

    #[test]
    fn overlong_line_is_cut_with_an_ellipsis() {
        let mut l = Line::new();
        l.push(&[b'a'; 400]);
        l.push(&[b'b'; 400]);
        let out = l.finish();
        assert_eq!(out.len(), LINE_MAX);
        assert!(out.ends_with(b"...\n"));
        assert_eq!(out[0], b'a');
    }
}
