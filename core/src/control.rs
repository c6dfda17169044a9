//! Control files, read with qmail's rules (qmail's control.c):
//!
//! - a single-value file uses its first line, trailing blanks (`\n`, space,
//!   tab) stripped; a missing file means "use the default";
//! - a list file yields every line with trailing blanks stripped, skipping
//!   empty lines and lines starting with `#`;
//! - a number is the leading decimal digits of the first line; a line
//!   without digits also means "use the default" (`control_readint`).
//!
//! picoq bounds every line (`LINE_MAX`): an overlong line is a configuration
//! error, not a silent cut.

use crate::io::{BufReader, FdReader, LineError};
use crate::num::scan_u64;
use core::ffi::CStr;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{Mode, OFlags, openat};
use rustix::io::Errno;

/// Longest control-file line, newline excluded.
pub const LINE_MAX: usize = 1024;
/// Read buffer for control files: the same size as the envelope reader's
/// (`io::STD_BUF`), so a program has one copy of the line reader.
const READ_BUF: usize = crate::io::STD_BUF;
static_assertions::const_assert!(READ_BUF > LINE_MAX);
static_assertions::const_assert!(LINE_MAX >= 1003);

/// Why a control file could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlError {
    Os(Errno),
    /// A line longer than `LINE_MAX` bytes.
    LineTooLong,
}

/// The program's home (default `/var/qmail`), holding `control/`.
pub struct ControlDir {
    /// `None` when `HOME/control` does not exist: every file is missing.
    dir: Option<OwnedFd>,
}

/// Opening the home directory failed (qmail-queue exit 61).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HomeError(pub Errno);

impl ControlDir {
    /// Opens `home` (failure is a home error) and `home/control` in it
    /// (a missing one is the same as empty).
    pub fn open(home: &CStr) -> Result<Result<ControlDir, ControlError>, HomeError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let home = openat(rustix::fs::CWD, home, flags, Mode::empty()).map_err(HomeError)?;
        Ok(match openat(&home, c"control", flags, Mode::empty()) {
            Ok(dir) => Ok(ControlDir { dir: Some(dir) }),
            Err(Errno::NOENT) => Ok(ControlDir { dir: None }),
            Err(e) => Err(ControlError::Os(e)),
        })
    }

    /// A control directory given directly (tests, tools).
    pub fn from_dir(dir: OwnedFd) -> ControlDir {
        ControlDir { dir: Some(dir) }
    }

    /// Always inlined into its two callers (`scan`, `first_line`): a
    /// program uses one of them, and an out-of-line copy shared by two made
    /// every program ~60 B larger.
    #[inline(always)]
    fn open_file(&self, name: &CStr) -> Result<Option<OwnedFd>, ControlError> {
        let Some(dir) = &self.dir else { return Ok(None) };
        match openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(ControlError::Os(e)),
        }
    }

    /// Calls `each` with every line of `name`, trailing blanks stripped,
    /// until it returns false; returns false when the file does not exist.
    /// `each` is a trait object: one copy of this loop serves every caller.
    fn scan(&self, name: &CStr, each: &mut dyn FnMut(&[u8]) -> bool) -> Result<bool, ControlError> {
        let Some(fd) = self.open_file(name)? else { return Ok(false) };
        let mut r: BufReader<_, READ_BUF> = BufReader::new(FdReader(fd.as_fd()));
        loop {
            let (at, complete) = match r.read_piece(b'\n', LINE_MAX) {
                Ok(line) => line,
                Err(LineError::Overflow) => return Err(ControlError::LineTooLong),
                Err(LineError::Io(e)) => return Err(ControlError::Os(e.errno())),
            };
            // A last line without newline counts; so does an empty file's
            // single empty line (qmail's control_readline returns "").
            if !each(strip_trailing_blanks(r.buffered(at))) || !complete {
                return Ok(true);
            }
        }
    }

    /// The first line of `name`, trailing blanks stripped; `None` when the
    /// file does not exist. An empty file gives an empty line.
    pub fn read_line<'b>(&self, name: &CStr, buf: &'b mut [u8; LINE_MAX]) -> Result<Option<&'b [u8]>, ControlError> {
        let mut len = 0;
        let found = self.scan(name, &mut |line| {
            // A line is at most LINE_MAX bytes (read_piece's bound).
            len = line.len().min(LINE_MAX);
            buf[..len].copy_from_slice(&line[..len]);
            false
        })?;
        Ok(if found { Some(&buf[..len]) } else { None })
    }

    /// The number at the start of `name`'s first line, or `default` when
    /// the file is missing or the line has no leading digits (qmail's
    /// `control_readint`). Values above u32::MAX saturate.
    pub fn read_u32(&self, name: &CStr, default: u32) -> Result<u32, ControlError> {
        let mut v = default;
        self.scan(name, &mut |line| {
            if let Some((n, _)) = scan_u64(line) {
                v = n.min(u32::MAX as u64) as u32;
            }
            false
        })?;
        Ok(v)
    }

    /// `read_u32` for a program that reads no other control file: the
    /// same value and the same errors, from a plain read up to the first
    /// newline instead of `scan`'s line reader, which such a program would
    /// carry for this one number only (~250 B more code). Programs that
    /// read lines or lists anyway use `read_u32`, which shares that reader.
    pub fn read_u32_unbuffered(&self, name: &CStr, default: u32) -> Result<u32, ControlError> {
        let mut line = [0u8; LINE_MAX + 1];
        Ok(match self.first_line(name, &mut line)?.and_then(scan_u64) {
            Some((n, _)) => n.min(u32::MAX as u64) as u32,
            None => default,
        })
    }

    /// The first line of `name` (newline excluded) in `buf`; `None` when
    /// the file does not exist. `LineTooLong` when `LINE_MAX + 1` bytes
    /// come without a newline: `scan`'s bound for its first line.
    fn first_line<'b>(&self, name: &CStr, buf: &'b mut [u8; LINE_MAX + 1]) -> Result<Option<&'b [u8]>, ControlError> {
        let Some(fd) = self.open_file(name)? else { return Ok(None) };
        let mut len = 0;
        loop {
            // len <= LINE_MAX + 1: the else is never taken (no panic code).
            let Some((line, rest)) = buf.split_at_mut_checked(len) else { return Err(ControlError::LineTooLong) };
            if let Some(end) = line.iter().position(|&b| b == b'\n') {
                return Ok(Some(&buf[..end]));
            }
            if rest.is_empty() {
                return Err(ControlError::LineTooLong);
            }
            match rustix::io::read(&fd, rest) {
                Ok(0) => return Ok(Some(&buf[..len])),
                Ok(n) => len += n,
                Err(Errno::INTR) => {}
                Err(e) => return Err(ControlError::Os(e)),
            }
        }
    }

    /// Calls `each` for every meaningful line of list file `name` (qmail's
    /// `control_readfile`: no empty lines, no `#` lines); returns false when
    /// the file does not exist. `each` returns false to stop early.
    pub fn for_each_line(&self, name: &CStr, mut each: impl FnMut(&[u8]) -> bool) -> Result<bool, ControlError> {
        self.scan(name, &mut |line| line.is_empty() || line[0] == b'#' || each(line))
    }
}

/// Strips trailing `\n`, space and tab, as qmail's control.c does.
pub fn strip_trailing_blanks(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn dir_with(files: &[(&str, &[u8])]) -> (std::path::PathBuf, ControlDir) {
        let base = std::env::temp_dir().join(std::format!(
            "picoq-control-{}-{}",
            std::process::id(),
            files.first().map(|f| f.0).unwrap_or("none")
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("control")).unwrap();
        for (name, body) in files {
            std::fs::write(base.join("control").join(name), body).unwrap();
        }
        let home = std::ffi::CString::new(base.to_str().unwrap()).unwrap();
        let c = ControlDir::open(&home).unwrap().unwrap();
        (base, c)
    }

    fn lines(c: &ControlDir, name: &CStr) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        c.for_each_line(name, |l| {
            v.push(l.to_vec());
            true
        })
        .unwrap();
        v
    }

    #[test]
    fn first_line_strips_trailing_blanks_only() {
        let (base, c) = dir_with(&[("me", b"  host.example \t\nsecond\n")]);
        let mut b = [0u8; LINE_MAX];
        assert_eq!(c.read_line(c"me", &mut b).unwrap(), Some(&b"  host.example"[..]));
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn missing_file_is_none_and_empty_file_is_empty() {
        let (base, c) = dir_with(&[("empty", b"")]);
        let mut b = [0u8; LINE_MAX];
        assert_eq!(c.read_line(c"nothere", &mut b).unwrap(), None);
        assert_eq!(c.read_line(c"empty", &mut b).unwrap(), Some(&b""[..]));
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn list_skips_blank_and_comment_lines() {
        let (base, c) = dir_with(&[("list", b"# gateways\n1.2.3.4  \n\n   \n#x\n[::1]:629\nlast-no-newline")]);
        let want: [&[u8]; 3] = [b"1.2.3.4", b"[::1]:629", b"last-no-newline"];
        assert_eq!(lines(&c, c"list"), want.map(|l| l.to_vec()));
        assert!(!c.for_each_line(c"missing", |_| true).unwrap());
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_line_of_spaces_counts_as_blank() {
        let (base, c) = dir_with(&[("spaces", b"   \t\n")]);
        assert!(lines(&c, c"spaces").is_empty());
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn numbers_follow_control_readint() {
        let (base, c) = dir_with(&[("n1", b"30\n"), ("n2", b"45x\n"), ("n3", b"junk\n"), ("n4", b"99999999999\n")]);
        assert_eq!(c.read_u32(c"n1", 7).unwrap(), 30);
        assert_eq!(c.read_u32(c"n2", 7).unwrap(), 45);
        assert_eq!(c.read_u32(c"n3", 7).unwrap(), 7);
        assert_eq!(c.read_u32(c"n4", 7).unwrap(), u32::MAX);
        assert_eq!(c.read_u32(c"none", 7).unwrap(), 7);
        std::fs::remove_dir_all(base).unwrap();
    }

    /// read_u32_unbuffered agrees with read_u32 everywhere, the line
    /// length bound included.
    #[test]
    fn unbuffered_numbers_agree_with_read_u32() {
        // A first line of exactly LINE_MAX bytes, and one a byte longer.
        let mut exact = [b' '; LINE_MAX + 1];
        exact[0] = b'8';
        exact[LINE_MAX] = b'\n';
        let mut long = [b' '; LINE_MAX + 2];
        long[0] = b'8';
        long[LINE_MAX + 1] = b'\n';
        let files: [(&str, &[u8]); 8] = [
            ("u1", b"30\n"),
            ("u2", b"45x\nmore\n"),
            ("u3", b"junk\n"),
            ("u4", b"99999999999\n"),
            ("u5", b""),
            ("u6", b"12"),
            ("u7", &exact),
            ("u8", &long),
        ];
        let (base, c) = dir_with(&files);
        for name in [c"u1", c"u2", c"u3", c"u4", c"u5", c"u6", c"u7", c"u8", c"missing"] {
            assert_eq!(c.read_u32_unbuffered(name, 7), c.read_u32(name, 7), "{name:?}");
        }
        assert_eq!(c.read_u32_unbuffered(c"u7", 7), Ok(8));
        assert_eq!(c.read_u32_unbuffered(c"u8", 7), Err(ControlError::LineTooLong));
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn overlong_line_is_an_error() {
        let long = [b'a'; LINE_MAX + 1];
        let (base, c) = dir_with(&[("long", &long)]);
        let mut b = [0u8; LINE_MAX];
        assert_eq!(c.read_line(c"long", &mut b), Err(ControlError::LineTooLong));
        assert_eq!(c.for_each_line(c"long", |_| true), Err(ControlError::LineTooLong));
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn missing_home_is_a_home_error_and_missing_control_is_empty() {
        assert!(ControlDir::open(c"/nonexistent/picoq-home").is_err());
        let base = std::env::temp_dir().join(std::format!("picoq-nocontrol-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let home = std::ffi::CString::new(base.to_str().unwrap()).unwrap();
        let c = ControlDir::open(&home).unwrap().unwrap();
        assert!(!c.for_each_line(c"qmqpservers", |_| true).unwrap());
        std::fs::remove_dir_all(base).unwrap();
    }
}
