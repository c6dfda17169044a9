//! The spool: where queue-spool puts each message and queue-send finds it.
//!
//! Layout, under `HOME/queue/` (owned by the spool user, mode 0700, and so
//! is everything in it):
//!
//! - `tmp/`: entries being written, named `SECS.PID` (`SECS.PID.N` after a
//!   collision), created with `O_EXCL|O_NOFOLLOW` through a directory fd;
//! - `new/`: committed entries, named `SECS.INODE` — time and the file's
//!   inode number, never anything from the envelope; the inode of a live
//!   file is unique on its file system, so the name is too;
//! - `failed/`: entries queue-send gave up on (double bounces, malformed
//!   entries, local trouble past the queue lifetime), moved there by
//!   rename; `mv failed/NAME new/` requeues one;
//! - `info/`: queue-send's state of each entry it has tried or parked,
//!   `info/NAME` (see `State`): next retry, delay, tries, last error, one
//!   bit per finished recipient; written to `info/.tmp`, fsynced, renamed
//!   (only the holder of the lock on `queue/` writes there);
//! - `trigger`: a FIFO queue-send reads; a byte written there starts a
//!   delivery run at once.
//!
//! An entry is one file: a fixed header `picoq1 LEN\n` (LEN: the message's
//! length in bytes, 20 decimal digits), the message (the queue's Received
//! line first), then the envelope exactly as qmail-queue reads it on fd 1
//! (`F` sender NUL, `T` recipient NUL ..., NUL), up to the end of the file.
//!
//! The commit protocol (a kill -9 at any instant leaves no visible entry or
//! a complete one): write `tmp/NAME`, fsync it, link it to `new/NAME2` (the
//! commit point), fsync `new/`, unlink `tmp/NAME`. A crash between link and
//! unlink leaves a harmless name in `tmp/`, which queue-send removes after
//! 36 hours.
//!
//! Delivery (queue-send, one runner: `flock` on `queue/`): a recipient is
//! marked finished in `info/NAME` only after the relay's 2xx, or after the
//! bounce for it is committed like any entry; the entry is removed (its
//! state first) when every recipient is finished. A crash can lose a
//! state update or a removal, never an entry: the cost is one repeated
//! delivery, which is why removals and state updates after success are
//! not fsynced for their own sake.

use crate::io::{IoError, write_all_nointr};
use crate::num::{U64_DIGITS, fmt_u64, put_dec};
use crate::sys::ByteBuf;
use core::ffi::CStr;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, linkat, openat, unlinkat};
use rustix::io::Errno;

/// The entry header: magic, then the message length in 20 digits, newline.
pub const MAGIC: &[u8; 7] = b"picoq1 ";
pub const HEADER_LEN: usize = MAGIC.len() + U64_DIGITS + 1;

const PROGRAM_SUFFIX: &[u8] = b"/bin/queue-spool\0";
const PROGRAM_LEN: usize = crate::HOME.to_bytes().len() + PROGRAM_SUFFIX.len();

/// `HOME/bin/queue-spool` and a NUL, built at compile time from the
/// compiled-in home: the shim's target can't come from anywhere else.
const PROGRAM_BYTES: [u8; PROGRAM_LEN] = {
    let home = crate::HOME.to_bytes();
    let mut out = [0u8; PROGRAM_LEN];
    let mut i = 0;
    while i < PROGRAM_LEN {
        out[i] = if i < home.len() { home[i] } else { PROGRAM_SUFFIX[i - home.len()] };
        i += 1;
    }
    out
};
const PROGRAM_PATH: &CStr = match CStr::from_bytes_with_nul(&PROGRAM_BYTES) {
    Ok(p) => p,
    Err(_) => panic!("the home contains a NUL"),
};

/// The absolute path of queue-spool, from the compiled-in home.
pub const fn program_path() -> &'static CStr {
    PROGRAM_PATH
}

/// Longest name in `tmp/` or `new/`, NUL included.
const NAME_MAX: usize = 2 * U64_DIGITS + 8;
type Name = ByteBuf<NAME_MAX>;

/// Names tried in `tmp/` before giving up (each collision is a leftover of
/// a dead process with the same pid in the same second).
const NAME_TRIES: u64 = 16;

/// `A.B` (and `.C` when `c` is nonzero) with a NUL.
fn name(a: u64, b: u64, c: u64) -> Name {
    let mut n = Name::new();
    let mut d = [0u8; U64_DIGITS];
    n.extend(fmt_u64(a, &mut d));
    n.push(b'.');
    n.extend(fmt_u64(b, &mut d));
    if c != 0 {
        n.push(b'.');
        n.extend(fmt_u64(c, &mut d));
    }
    n.push(0);
    n
}

fn c_name(n: &Name) -> &CStr {
    crate::sys::c_str(n.as_slice()).unwrap_or(c"")
}

/// Why the spool can't be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpoolError {
    /// `HOME` or `HOME/queue` can't be opened (qmail-queue exit 61).
    Home(Errno),
    /// `tmp/`, `new/` or the entry file can't be opened or created (62).
    Create(Errno),
    /// Writing, syncing or linking failed: disk full, I/O error (53).
    Write(Errno),
}

impl SpoolError {
    pub fn exit_code(self) -> i32 {
        match self {
            SpoolError::Home(_) => crate::qq::HOME_ERROR,
            SpoolError::Create(_) => crate::qq::QUEUE_CREATE_ERROR,
            SpoolError::Write(_) => crate::qq::WRITE_ERROR,
        }
    }
}

/// The open spool: `queue/`, `tmp/` and `new/`.
pub struct Spool {
    queue: OwnedFd,
    tmp: OwnedFd,
    new: OwnedFd,
}

fn open_dir(at: BorrowedFd<'_>, path: &CStr) -> Result<OwnedFd, Errno> {
    openat(at, path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
}

impl Spool {
    /// Opens `home/queue` and its `tmp/` and `new/`.
    pub fn open(home: &CStr) -> Result<Spool, SpoolError> {
        let home = open_dir(rustix::fs::CWD, home).map_err(SpoolError::Home)?;
        let queue = open_dir(home.as_fd(), c"queue").map_err(SpoolError::Home)?;
        let tmp = open_dir(queue.as_fd(), c"tmp").map_err(SpoolError::Create)?;
        let new = open_dir(queue.as_fd(), c"new").map_err(SpoolError::Create)?;
        Ok(Spool { queue, tmp, new })
    }

    /// Who owns `queue/` (the spool user).
    pub fn owner(&self) -> Result<u32, Errno> {
        crate::sys::fstat(&self.queue).map(|st| st.uid)
    }

    /// Creates `tmp/SECS.PID` with room for the header; the file is the
    /// caller's to fill through `Draft::file`.
    pub fn create(&self, secs: u64, pid: u32) -> Result<Draft, SpoolError> {
        let mut tries = 0;
        loop {
            let n = name(secs, pid as u64, tries);
            match openat(
                &self.tmp,
                c_name(&n),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::RUSR | Mode::WUSR,
            ) {
                Ok(file) => {
                    let d = Draft { file, name: n };
                    // Room for the header, filled in by `finish`.
                    if let Err(e) = write_all_nointr(d.file(), &[b'\n'; HEADER_LEN]) {
                        d.abort(self);
                        return Err(SpoolError::Write(e.errno()));
                    }
                    return Ok(d);
                }
                Err(Errno::EXIST) if tries + 1 < NAME_TRIES => tries += 1,
                Err(e) => return Err(SpoolError::Create(e)),
            }
        }
    }

    /// Writes one byte to the `trigger` FIFO without waiting: queue-send,
    /// when it listens, starts a run. No reader (ENXIO), a full FIFO
    /// (EAGAIN) or no FIFO at all is fine: queue-send also runs on its own.
    pub fn poke(&self) {
        if let Ok(fifo) = openat(
            &self.queue,
            c"trigger",
            OFlags::WRONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            // Only a FIFO: never write into a regular file planted there.
            if crate::sys::fstat(&fifo)
                .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.mode as _) == rustix::fs::FileType::Fifo)
            {
                let _ = rustix::io::write(&fifo, b"x");
            }
        }
    }
}

/// An entry being written in `tmp/`.
pub struct Draft {
    file: OwnedFd,
    name: Name,
}

impl Draft {
    /// Where the message and the envelope go, after the header.
    pub fn file(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Removes the file from `tmp/`.
    pub fn abort(&self, spool: &Spool) {
        let _ = unlinkat(&spool.tmp, c_name(&self.name), AtFlags::empty());
    }

    /// Fills in the header with the message length `message_len`, makes
    /// the file durable and visible in `new/`. On failure nothing is left
    /// visible and the temporary file is removed.
    pub fn commit(self, spool: &Spool, secs: u64, message_len: u64) -> Result<(), SpoolError> {
        let r = self.commit_inner(spool, secs, message_len);
        let _ = unlinkat(&spool.tmp, c_name(&self.name), AtFlags::empty());
        r
    }

    fn commit_inner(&self, spool: &Spool, secs: u64, message_len: u64) -> Result<(), SpoolError> {
        let mut h = [b'0'; HEADER_LEN];
        h[..MAGIC.len()].copy_from_slice(MAGIC);
        put_dec(message_len, &mut h[MAGIC.len()..HEADER_LEN - 1]);
        h[HEADER_LEN - 1] = b'\n';
        let w = |e: Errno| SpoolError::Write(e);
        let n = rustix::io::pwrite(&self.file, &h, 0).map_err(w)?;
        if n != HEADER_LEN {
            return Err(SpoolError::Write(Errno::IO));
        }
        rustix::fs::fsync(&self.file).map_err(w)?;
        let ino = crate::sys::fstat(&self.file).map_err(w)?.ino;
        let visible = name(secs, ino, 0);
        linkat(&spool.tmp, c_name(&self.name), &spool.new, c_name(&visible), AtFlags::empty()).map_err(w)?;
        if let Err(e) = rustix::fs::fsync(&spool.new) {
            // The caller will be told to try again: take the entry back so
            // that the retry is not a duplicate.
            let _ = unlinkat(&spool.new, c_name(&visible), AtFlags::empty());
            return Err(SpoolError::Write(e));
        }
        Ok(())
    }
}

/// A local file written through a buffer, remembering the first error.
pub struct FileWriter<'f, const N: usize> {
    fd: BorrowedFd<'f>,
    buf: ByteBuf<N>,
    pub error: Option<Errno>,
    /// Bytes accepted so far.
    pub written: u64,
}

impl<'f, const N: usize> FileWriter<'f, N> {
    pub const fn new(fd: BorrowedFd<'f>) -> Self {
        FileWriter { fd, buf: ByteBuf::new(), error: None, written: 0 }
    }

    pub fn put(&mut self, b: &[u8]) {
        self.written += b.len() as u64;
        if self.buf.extend(b) {
            return;
        }
        self.flush();
        if !self.buf.extend(b) {
            self.raw(b);
        }
    }

    fn raw(&mut self, b: &[u8]) {
        if self.error.is_none()
            && let Err(e) = write_all_nointr(self.fd, b)
        {
            self.error = Some(e.errno());
        }
    }

    /// Writes out what is buffered; the first error so far, if any.
    pub fn flush(&mut self) -> Option<Errno> {
        let mut b = ByteBuf::<N>::new();
        core::mem::swap(&mut b, &mut self.buf);
        self.raw(b.as_slice());
        self.error
    }
}

/// qmail-queue's own trace line: `Received: (qmail PID invoked by uid
/// UID); DATE`, or `invoked from network` when `uid` is `None` (the
/// submitter is the SMTP daemon's user).
pub fn write_received(out: &mut impl FnMut(&[u8]), pid: u32, uid: Option<u32>, unix: u64) {
    let mut d = [0u8; U64_DIGITS];
    out(b"Received: (qmail ");
    out(fmt_u64(pid as u64, &mut d));
    match uid {
        Some(u) => {
            out(b" invoked by uid ");
            out(fmt_u64(u as u64, &mut d));
        }
        None => out(b" invoked from network"),
    }
    out(b"); ");
    let mut date = [0u8; crate::received::DATE_MAX];
    out(crate::received::date822(unix, &mut date));
    out(b"\n");
}

/// Reads `fd` with `io::read_timeout` until the absolute `deadline` (unix
/// seconds) passes: qmail-queue's `alarm(86400)` without a signal.
pub struct DeadlineReader<'a> {
    pub fd: BorrowedFd<'a>,
    pub deadline: u64,
}

impl crate::io::Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> crate::io::IoResult<usize> {
        let now = crate::sys::unix_time();
        if now >= self.deadline {
            return Err(IoError::Timeout);
        }
        let secs = (self.deadline - now).min(u32::MAX as u64) as u32;
        crate::io::read_timeout(self.fd, buf, secs)
    }
}

// ---- queue-send's side: reading entries, the state file, failed/ ----

/// Most recipients of one entry queue-send tracks (one bit each in the
/// state file); an entry with more is parked in `failed/` as "too many
/// recipients" (queue-send(8)).
pub const RCPTS_MAX: usize = 8192;
/// Bytes of the last error kept in a state file.
pub const STATE_TEXT_MAX: usize = 400;
const STATE_MAGIC: &[u8] = b"picoq-state1 ";
/// Where the local/remote flag is: after the magic and three numbers of
/// `U64_DIGITS` digits, each followed by a space.
const STATE_FLAG: usize = STATE_MAGIC.len() + 3 * (U64_DIGITS + 1);
/// The fixed part: up to the flag, a newline, the bitmap.
const STATE_FIXED: usize = STATE_FLAG + 2 + RCPTS_MAX / 8;
/// A state file's size at most: the fixed part and the error text.
const STATE_MAX: usize = STATE_FIXED + STATE_TEXT_MAX;

/// Opens a directory of the spool (`new`, `failed`, `info`) read-only;
/// `info/` is created when missing (spools installed before it existed).
pub fn open_queue_dir(spool: &Spool, name: &CStr) -> Result<OwnedFd, Errno> {
    match open_dir(spool.queue.as_fd(), name) {
        Err(Errno::NOENT) if name == c"info" => {
            rustix::fs::mkdirat(&spool.queue, name, Mode::RWXU)?;
            open_dir(spool.queue.as_fd(), name)
        }
        r => r,
    }
}

impl Spool {
    /// Takes the runner's lock (`flock` on `queue/`, never waiting):
    /// `EWOULDBLOCK` when another queue-send holds it. The lock goes with
    /// the process, so a killed runner never leaves it behind.
    #[cfg(not(target_os = "solaris"))]
    pub fn lock(&self) -> Result<(), Errno> {
        rustix::fs::flock(&self.queue, rustix::fs::FlockOperation::NonBlockingLockExclusive)
    }

    /// Solaris has no flock (rustix offers none there).
    #[cfg(target_os = "solaris")]
    pub fn lock(&self) -> Result<(), Errno> {
        Err(Errno::NOSYS)
    }

    pub fn queue_dir(&self) -> BorrowedFd<'_> {
        self.queue.as_fd()
    }

    pub fn tmp_dir(&self) -> BorrowedFd<'_> {
        self.tmp.as_fd()
    }
}

/// An entry opened for reading.
pub struct EntryFile {
    pub file: OwnedFd,
    pub message_len: u64,
}

impl EntryFile {
    /// Opens `dir/name` and checks its header.
    pub fn open(dir: BorrowedFd<'_>, name: &CStr) -> Result<EntryFile, Errno> {
        let file = openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
        let mut h = [0u8; HEADER_LEN];
        let n = rustix::io::pread(&file, &mut h, 0)?;
        if n != HEADER_LEN || &h[..MAGIC.len()] != MAGIC || h[HEADER_LEN - 1] != b'\n' {
            return Err(Errno::INVAL);
        }
        let message_len = crate::num::parse_u64(&h[MAGIC.len()..HEADER_LEN - 1]).ok_or(Errno::INVAL)?;
        Ok(EntryFile { file, message_len })
    }

    /// Where the envelope starts.
    pub fn envelope_at(&self) -> u64 {
        HEADER_LEN as u64 + self.message_len
    }

    /// A reader over the file from `offset` to its end.
    pub fn reader(&self, offset: u64) -> PreadReader<'_> {
        PreadReader { fd: self.file.as_fd(), offset, end: u64::MAX }
    }

    /// A reader over the message alone.
    pub fn message(&self) -> PreadReader<'_> {
        PreadReader { fd: self.file.as_fd(), offset: HEADER_LEN as u64, end: self.envelope_at() }
    }
}

/// Reads a file from an offset with pread, up to `end`.
pub struct PreadReader<'a> {
    pub fd: BorrowedFd<'a>,
    pub offset: u64,
    pub end: u64,
}

impl crate::io::Read for PreadReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> crate::io::IoResult<usize> {
        let want = (self.end - self.offset).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        loop {
            match rustix::io::pread(self.fd, &mut buf[..want], self.offset) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(IoError::Os(e)),
            }
        }
    }
}

/// What queue-send remembers about an entry between attempts, in
/// `info/NAME`: when to try next, the current retry delay, the last error
/// (and whether it was local trouble rather than a relay's reply), and
/// which recipients are finished (delivered or bounced).
///
/// Format: `picoq-state1 NEXT DELAY TRIES F` (each number in 20 digits,
/// F `L` for local trouble or `R`), newline, `RCPTS_MAX / 8` bytes of
/// bitmap (bit i: recipient i finished), then the error text to the end.
/// Written to `info/.tmp`, fsynced, renamed over `info/NAME`. A missing
/// or short file means "nothing done yet": at worst a recipient gets a
/// second copy, never none.
pub struct State {
    pub next: u64,
    pub delay: u32,
    pub tries: u32,
    pub local: bool,
    pub error: ByteBuf<STATE_TEXT_MAX>,
    pub done: [u8; RCPTS_MAX / 8],
}

impl Default for State {
    fn default() -> Self {
        State::new()
    }
}

impl State {
    pub const fn new() -> State {
        State { next: 0, delay: 0, tries: 0, local: false, error: ByteBuf::new(), done: [0; RCPTS_MAX / 8] }
    }

    pub fn is_done(&self, i: usize) -> bool {
        i < RCPTS_MAX && self.done[i / 8] & (1 << (i % 8)) != 0
    }

    pub fn set_done(&mut self, i: usize) {
        if i < RCPTS_MAX {
            self.done[i / 8] |= 1 << (i % 8);
        }
    }

    /// Reads `dir/name`; `None` when missing or not a complete state file.
    pub fn read(dir: BorrowedFd<'_>, name: &CStr) -> Option<State> {
        let file = openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()).ok()?;
        let mut buf = [0u8; STATE_MAX];
        let mut have = 0;
        loop {
            match rustix::io::read(&file, &mut buf[have..]) {
                Ok(0) => break,
                Ok(n) => have += n,
                Err(Errno::INTR) => {}
                Err(_) => return None,
            }
            if have == buf.len() {
                break;
            }
        }
        State::parse(&buf[..have])
    }

    fn parse(b: &[u8]) -> Option<State> {
        if b.len() < STATE_FIXED || !b.starts_with(STATE_MAGIC) {
            return None;
        }
        let num = |i: usize| {
            let at = STATE_MAGIC.len() + i * (U64_DIGITS + 1);
            crate::num::parse_u64(&b[at..at + U64_DIGITS])
        };
        let mut s = State::new();
        s.next = num(0)?;
        s.delay = num(1)?.min(u32::MAX as u64) as u32;
        s.tries = num(2)?.min(u32::MAX as u64) as u32;
        s.local = b[STATE_FLAG] == b'L';
        s.done.copy_from_slice(&b[STATE_FLAG + 2..STATE_FIXED]);
        s.error.extend(&b[STATE_FIXED..]);
        Some(s)
    }

    /// Writes the state as `dir/name` crash-safely: `dir/.tmp`, fsync,
    /// rename over `name`. One fixed temporary name is enough: only the
    /// holder of the spool's lock (one queue-send) writes states.
    pub fn write(&self, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
        let tmp_name = c".tmp";
        let final_name = name;
        let mut b = [b'0'; STATE_MAX];
        b[..STATE_MAGIC.len()].copy_from_slice(STATE_MAGIC);
        for (i, n) in [self.next, self.delay as u64, self.tries as u64].into_iter().enumerate() {
            let at = STATE_MAGIC.len() + i * (U64_DIGITS + 1);
            put_dec(n, &mut b[at..at + U64_DIGITS]);
            b[at + U64_DIGITS] = b' ';
        }
        b[STATE_FLAG] = if self.local { b'L' } else { b'R' };
        b[STATE_FLAG + 1] = b'\n';
        b[STATE_FLAG + 2..STATE_FIXED].copy_from_slice(&self.done);
        let end = STATE_FIXED + self.error.len();
        b[STATE_FIXED..end].copy_from_slice(self.error.as_slice());
        let b = &b[..end];
        let file = openat(
            dir,
            tmp_name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )?;
        if let Err(e) = write_all_nointr(file.as_fd(), b).map_err(IoError::errno).and_then(|_| rustix::fs::fsync(&file))
        {
            let _ = unlinkat(dir, tmp_name, AtFlags::empty());
            return Err(e);
        }
        rustix::fs::renameat(dir, tmp_name, dir, final_name)
    }
}

/// Calls `each` with the name of every entry in `dir` (names of the form
/// `DIGITS.DIGITS`: temporary files, state files and anything else are
/// skipped).
pub fn for_each_entry(dir: BorrowedFd<'_>, mut each: impl FnMut(&CStr)) -> Result<(), Errno> {
    for_each_name(dir, |n| {
        if is_entry_name(n.to_bytes()) {
            each(n)
        }
    })
}

/// Calls `each` with every name in `dir` but `.` and `..`, reading the
/// directory from its start (a fresh descriptor) with a fixed buffer.
///
/// Linux only for now (getdents64 through rustix's `RawDir`): elsewhere
/// rustix reads directories only into allocated memory, and a libc
/// `readdir` needs each system's `struct dirent` layout in `sys`. There
/// it fails with ENOSYS, so queue-send says so instead of delivering.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn for_each_name(_dir: BorrowedFd<'_>, _each: impl FnMut(&CStr)) -> Result<(), Errno> {
    Err(Errno::NOSYS)
}

/// Calls `each` with every name in `dir` but `.` and `..`, reading the
/// directory from its start (a fresh descriptor) with a fixed buffer.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn for_each_name(dir: BorrowedFd<'_>, mut each: impl FnMut(&CStr)) -> Result<(), Errno> {
    let fd = open_dir(dir, c".")?;
    let mut buf = [core::mem::MaybeUninit::<u8>::uninit(); DIR_BUF];
    let mut it = rustix::fs::RawDir::new(fd, &mut buf);
    while let Some(e) = it.next() {
        let e = e?;
        let n = e.file_name();
        if n != c"." && n != c".." {
            each(n);
        }
    }
    Ok(())
}

/// Bytes of directory entries read at a time.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIR_BUF: usize = 4096;

/// `SECS.INODE`: digits, one dot, digits.
pub fn is_entry_name(n: &[u8]) -> bool {
    let mut parts = n.split(|&b| b == b'.');
    let ok = |p: Option<&[u8]>| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= U64_DIGITS && p.iter().all(u8::is_ascii_digit))
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// The queue time an entry's name starts with.
pub fn entry_secs(n: &[u8]) -> u64 {
    crate::num::scan_u64(n).map_or(0, |(v, _)| v)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn program_path_is_home_bin_queue_spool() {
        let mut want = Vec::from(crate::HOME.to_bytes());
        want.extend_from_slice(b"/bin/queue-spool");
        assert_eq!(program_path().to_bytes(), &want[..]);
    }

    #[test]
    fn received_line_like_qmail_queue() {
        let mut v = Vec::new();
        write_received(&mut |b: &[u8]| v.extend_from_slice(b), 4242, Some(1000), 1_700_000_000);
        assert_eq!(v, b"Received: (qmail 4242 invoked by uid 1000); 14 Nov 2023 22:13:20 -0000\n");
        v.clear();
        write_received(&mut |b: &[u8]| v.extend_from_slice(b), 7, None, 0);
        assert_eq!(v, b"Received: (qmail 7 invoked from network); 1 Jan 1970 00:00:00 -0000\n");
    }

    #[test]
    fn names_never_carry_addresses() {
        assert_eq!(name(1700000000, 4242, 0).as_slice(), b"1700000000.4242\0");
        assert_eq!(name(1, 2, 3).as_slice(), b"1.2.3\0");
    }

    #[test]
    fn commit_makes_one_complete_entry_in_new() {
        let base = std::env::temp_dir().join(std::format!("picoq-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for d in ["queue/tmp", "queue/new"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        let home = std::ffi::CString::new(base.to_str().unwrap()).unwrap();
        let spool = Spool::open(&home).unwrap();
        let d = spool.create(1700000000, 99).unwrap();
        // A second draft in the same second with the same pid gets `.1`.
        let d2 = spool.create(1700000000, 99).unwrap();
        assert_eq!(d2.name.as_slice(), b"1700000000.99.1\0");
        d2.abort(&spool);
        let mut w: FileWriter<'_, 16> = FileWriter::new(d.file());
        w.put(b"Subject: x\n\nhello\n");
        let len = w.written;
        w.put(b"Fa@b\0Tc@d\0\0");
        assert_eq!(w.flush(), None);
        d.commit(&spool, 1700000000, len).unwrap();
        assert_eq!(std::fs::read_dir(base.join("queue/tmp")).unwrap().count(), 0);
        let entries: Vec<_> = std::fs::read_dir(base.join("queue/new")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(entries.len(), 1);
        let body = std::fs::read(&entries[0]).unwrap();
        assert_eq!(&body[..HEADER_LEN], b"picoq1 00000000000000000018\n");
        assert_eq!(&body[HEADER_LEN..], b"Subject: x\n\nhello\nFa@b\0Tc@d\0\0");
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&entries[0]).unwrap());
        assert_eq!(entries[0].file_name().unwrap().to_str().unwrap(), std::format!("1700000000.{ino}"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn state_round_trips_and_a_short_file_is_no_state() {
        let base = std::env::temp_dir().join(std::format!("picoq-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let dir = crate::testutil::open(&std::ffi::CString::new(base.to_str().unwrap()).unwrap());
        let mut st = State::new();
        st.next = 1_700_000_060;
        st.delay = 120;
        st.tries = 2;
        st.local = true;
        st.error.extend(b"451 4.3.0 later");
        st.set_done(0);
        st.set_done(RCPTS_MAX - 1);
        st.write(dir.as_fd(), c"1.2").unwrap();
        let back = State::read(dir.as_fd(), c"1.2").unwrap();
        assert_eq!((back.next, back.delay, back.tries, back.local), (1_700_000_060, 120, 2, true));
        assert_eq!(back.error.as_slice(), b"451 4.3.0 later");
        assert!(back.is_done(0) && back.is_done(RCPTS_MAX - 1) && !back.is_done(1));
        assert!(!base.join(".tmp").exists());
        // A state cut by a crash (no fsync before a rename is impossible,
        // but a truncated file must still never claim anything).
        let full = std::fs::read(base.join("1.2")).unwrap();
        std::fs::write(base.join("1.2"), &full[..STATE_FIXED - 1]).unwrap();
        assert!(State::read(dir.as_fd(), c"1.2").is_none());
        assert!(State::read(dir.as_fd(), c"9.9").is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
