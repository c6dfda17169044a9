//! Running a qmail-queue program (qmail's qmail.c, caller side).
//!
//! The program gets the message on fd 0 and the envelope on fd 1 (SPEC
//! §3), and fd 6 open for writing: notqmail's custom-error convention, by
//! which a queue program that exits 82 after writing `Dtext` or `Ztext`
//! there has that text reported instead of the table's. qmqpc uses it to
//! pass the gateway's own words to the SMTP client.
//!
//! Generic on purpose: the caller chooses what fd 0 and fd 1 are (an
//! unlinked file, a pipe) and which program runs (`$QMAILQUEUE` or
//! `bin/qmail-queue`); this module places the descriptors, waits, and maps
//! the outcome to qmail_close's text (`qq::exit_text`).

use crate::qq;
pub use crate::spill::Handoff;
use crate::spill::Spill;
use crate::sys::{self, Start};
use core::ffi::CStr;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::process::{Pid, WaitOptions, waitpid};

/// Longest custom error text kept (the rest is read and dropped); it ends
/// up in an SMTP reply line, which RFC 5321 caps at 512 bytes.
pub const TEXT_MAX: usize = 400;
static_assertions::const_assert!(TEXT_MAX + 8 <= 512);

/// The custom-error descriptor number.
pub const ERROR_FD: i32 = 6;

/// A running queue program.
pub struct QueueRun {
    pid: Pid,
    errors: OwnedFd,
}

/// `qmail_open`: runs `program` with `message` on fd 0, `envelope` on fd 1
/// and a pipe on fd 6.
pub fn start_queue(
    start: &Start,
    program: &CStr,
    message: BorrowedFd<'_>,
    envelope: BorrowedFd<'_>,
) -> Result<QueueRun, Errno> {
    let (errors, err_w) = sys::pipe_cloexec()?;
    let pid = sys::spawn(start, program, &[(message, 0), (envelope, 1), (err_w.as_fd(), ERROR_FD)]);
    // Our copy of the write end goes whether or not the program runs (one
    // close in the code, not one per outcome).
    drop(err_w);
    Ok(QueueRun { pid: pid?, errors })
}

/// What the queue program said.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Accepted,
    /// qmail_close's text: `D...` (permanent) or `Z...` (temporary).
    Refused(&'a [u8]),
}

impl QueueRun {
    /// The queue program's pid (qmail-smtpd's `qp`).
    pub fn pid(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    /// `qmail_close`: the caller has closed its ends of fds 0 and 1. Reads
    /// fd 6 to its end, waits for the program and maps its exit.
    #[inline(never)]
    pub fn finish(self, text: &mut [u8; TEXT_MAX]) -> Outcome<'_> {
        let mut len = 0;
        let mut sink = [0u8; 256];
        loop {
            // len <= TEXT_MAX; a full text reads into the sink.
            let room = text.get_mut(len..).unwrap_or_default();
            let buf: &mut [u8] = if room.is_empty() { &mut sink } else { room };
            match rustix::io::read(&self.errors, buf) {
                Ok(0) => break,
                Ok(n) => {
                    if len < TEXT_MAX {
                        len += n;
                    }
                }
                Err(Errno::INTR) => {}
                Err(_) => break,
            }
        }
        let status = loop {
            match waitpid(Some(self.pid), WaitOptions::empty()) {
                Ok(Some((_, st))) => break Some(st),
                Ok(None) => {}
                Err(Errno::INTR) => {}
                Err(_) => break None,
            }
        };
        let Some(status) = status else { return Outcome::Refused(b"Zqq waitpid surprise (#4.3.0)") };
        let code = match status.exit_status() {
            Some(c) => c,
            None => return Outcome::Refused(qq::CRASHED_TEXT),
        };
        if code == qq::OK {
            return Outcome::Accepted;
        }
        if code == qq::CUSTOM_ERROR {
            let t = clean(&mut text[..len]);
            if t.len() > 1 && (t[0] == b'D' || t[0] == b'Z') {
                return Outcome::Refused(t);
            }
        }
        Outcome::Refused(qq::exit_text(code))
    }
}

/// Makes custom text safe for one SMTP reply line: a trailing newline is
/// dropped, other control bytes become `?`.
fn clean(t: &mut [u8]) -> &[u8] {
    let mut t = t;
    while let [rest @ .., b'\n' | b'\r'] = t {
        t = rest;
    }
    for b in t.iter_mut() {
        if *b < 0x20 || *b == 0x7f {
            *b = b'?';
        }
    }
    t
}

/// qmail's text when the queue program cannot be started.
pub const QQT_FAILURE: &[u8] = b"Zqqt failure (#4.3.0)";

/// `qmail_open` + `qmail_close` for a message already complete in `file`
/// (rewound here) and the envelope in `env`: runs `program`, returns its
/// pid when it exited 0, else the `D`/`Z` text to report.
///
/// Starting the queue only once the whole message is in hand means a
/// refused or broken transaction never starts it, and a regular file on
/// fd 0 lets qmqpc send with sendfile instead of copying.
pub fn enqueue<'t, const N: usize>(
    start: &Start,
    program: &CStr,
    file: &OwnedFd,
    env: &mut EnvelopeBuf<'_, N>,
    text: &'t mut [u8; TEXT_MAX],
) -> Result<u32, &'t [u8]> {
    if rustix::fs::seek(file, rustix::fs::SeekFrom::Start(0)).is_err() {
        return Err(QQT_FAILURE);
    }
    let Ok(handoff) = env.finish() else { return Err(QQT_FAILURE) };
    // A small envelope goes through a pipe, written once the program runs
    // (it reads fd 0 to its end first); a large one is already a file.
    let (pipe, bytes, fd1) = match handoff {
        Handoff::Memory(b) => {
            let Ok((r, w)) = sys::pipe_cloexec() else { return Err(QQT_FAILURE) };
            (Some((r, w)), b, None)
        }
        Handoff::File(f) => (None, &[][..], Some(f)),
    };
    let fd1 = match (&pipe, fd1) {
        (Some((r, _)), _) => r.as_fd(),
        (None, Some(f)) => f,
        (None, None) => return Err(QQT_FAILURE),
    };
    let run = start_queue(start, program, file.as_fd(), fd1);
    // The pipe is closed at one place whatever the outcome (one copy of
    // the closes in the code).
    if let Some((r, w)) = pipe {
        drop(r);
        if run.is_ok() {
            // A queue program that dies early gives EPIPE: its exit
            // status says what went wrong.
            let _ = crate::io::write_all_nointr(w.as_fd(), bytes);
        }
    }
    let Ok(run) = run else { return Err(QQT_FAILURE) };
    let pid = run.pid();
    match run.finish(text) {
        Outcome::Accepted => Ok(pid),
        Outcome::Refused(why) => Err(why),
    }
}

/// An envelope under construction (`F` sender NUL, `T` recipient NUL…):
/// the first `N` bytes stay in memory, a bigger one moves to an unlinked
/// file in `tmpdir` (a `Spill`), so a 100,000-recipient envelope costs no
/// memory.
pub struct EnvelopeBuf<'d, const N: usize>(Spill<'d, N>);

impl<'d, const N: usize> EnvelopeBuf<'d, N> {
    pub const fn new(tmpdir: &'d CStr) -> Self {
        EnvelopeBuf(Spill::new(tmpdir))
    }

    /// The byte store itself, for a caller that keeps other bytes in it
    /// when the message is not queued (qmqpd keeps a Maildir's header
    /// lines there: one store instead of two, ~50 B less code). What it
    /// holds is then no envelope for `enqueue`.
    pub fn store(&mut self) -> &mut Spill<'d, N> {
        &mut self.0
    }

    /// Empties it for the next transaction.
    pub fn reset(&mut self) {
        self.0.clear();
    }

    /// Appends one item: `kind` (`F` or `T`), the address, NUL. Three
    /// pushes: per item that costs a few instructions more than reserving
    /// room first, and half the code.
    pub fn push(&mut self, kind: u8, addr: &[u8]) -> Result<(), Errno> {
        self.0.push(&[kind])?;
        self.0.push(addr)?;
        self.0.push(b"\0")
    }

    /// Adds the final NUL and hands the envelope over.
    pub fn finish(&mut self) -> Result<Handoff<'_>, Errno> {
        self.0.push(b"\0")?;
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_bytes(fd: BorrowedFd<'_>) -> std::vec::Vec<u8> {
        let mut v = std::vec::Vec::new();
        let mut b = [0u8; 64];
        loop {
            let n = rustix::io::read(fd, &mut b).unwrap();
            if n == 0 {
                return v;
            }
            v.extend_from_slice(&b[..n]);
        }
    }

    #[test]
    fn small_envelope_stays_in_memory_and_large_one_spills() {
        extern crate std;
        let tmp = std::ffi::CString::new(std::env::temp_dir().to_str().unwrap()).unwrap();
        let mut e: EnvelopeBuf<'_, 16> = EnvelopeBuf::new(&tmp);
        e.push(b'F', b"a@b").unwrap();
        e.push(b'T', b"c@d").unwrap();
        match e.finish().unwrap() {
            Handoff::Memory(m) => assert_eq!(m, b"Fa@b\0Tc@d\0\0"),
            Handoff::File(_) => panic!("spilled"),
        }
        e.reset();
        e.push(b'F', b"").unwrap();
        for _ in 0..10 {
            e.push(b'T', b"user@example.org").unwrap();
        }
        let mut want = std::vec::Vec::from(&b"F\0"[..]);
        for _ in 0..10 {
            want.extend_from_slice(b"Tuser@example.org\0");
        }
        want.push(0);
        match e.finish().unwrap() {
            Handoff::File(f) => assert_eq!(file_bytes(f), want),
            Handoff::Memory(_) => panic!("not spilled"),
        }
    }

    #[test]
    fn custom_text_is_one_safe_line() {
        let mut t = *b"Zgateway\r\n250 ok\n";
        assert_eq!(clean(&mut t), b"Zgateway??250 ok");
        let mut t = *b"";
        assert_eq!(clean(&mut t), b"");
    }
}
