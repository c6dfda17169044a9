//! Reading and writing descriptors, with timeouts.
//!
//! qmail's `timeoutread`/`timeoutwrite`: each call waits at most `secs`
//! seconds for the descriptor (poll), then does one read or write. EINTR is
//! retried; EAGAIN (non-blocking sockets) waits again. Errors stay errno
//! values so callers can map them to qmail-queue exit codes.

use rustix::event::{PollFd, PollFlags};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;

/// Why an I/O call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// Nothing happened within the timeout.
    Timeout,
    /// The system call failed.
    Os(Errno),
}

impl IoError {
    /// The errno behind the failure; a timeout is `ETIMEDOUT`.
    pub fn errno(self) -> Errno {
        match self {
            IoError::Os(e) => e,
            IoError::Timeout => Errno::TIMEDOUT,
        }
    }
}

impl From<Errno> for IoError {
    fn from(e: Errno) -> IoError {
        IoError::Os(e)
    }
}

pub type IoResult<T> = Result<T, IoError>;

/// A byte source: `read` returns 0 at end of input.
pub trait Read {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize>;
}

/// A byte sink: `write` may write fewer bytes than given, never 0 on success
/// for a non-empty buffer.
pub trait Write {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize>;

    fn write_all(&mut self, mut buf: &[u8]) -> IoResult<()> {
        while !buf.is_empty() {
            let n = self.write(buf)?;
            if n == 0 {
                return Err(IoError::Os(Errno::PIPE));
            }
            // n <= buf.len() (write's contract): `get` only spares the
            // code of a bounds-check panic.
            buf = buf.get(n..).unwrap_or_default();
        }
        Ok(())
    }
}

impl Read for &[u8] {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        Ok(n)
    }
}

/// Waits until `fd` is ready for `flags`, at most `secs` seconds.
pub fn wait(fd: BorrowedFd<'_>, flags: PollFlags, secs: u32) -> IoResult<()> {
    loop {
        let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
        match crate::sys::poll_secs(&mut fds, secs) {
            Ok(0) => return Err(IoError::Timeout),
            // Ready, or an error/hang-up condition that the next read or
            // write will report precisely.
            Ok(_) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(IoError::Os(e)),
        }
    }
}

/// One `read(2)` of at most `buf.len()` bytes after waiting at most `secs`.
pub fn read_timeout(fd: BorrowedFd<'_>, buf: &mut [u8], secs: u32) -> IoResult<usize> {
    loop {
        wait(fd, PollFlags::IN, secs)?;
        match rustix::io::read(fd, &mut *buf) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            Err(e) => return Err(IoError::Os(e)),
        }
    }
}

/// One `write(2)` after waiting at most `secs` for room.
pub fn write_timeout(fd: BorrowedFd<'_>, buf: &[u8], secs: u32) -> IoResult<usize> {
    loop {
        wait(fd, PollFlags::OUT, secs)?;
        match rustix::io::write(fd, buf) {
            Ok(n) => return Ok(n),
            Err(Errno::INTR) | Err(Errno::AGAIN) => continue,
            Err(e) => return Err(IoError::Os(e)),
        }
    }
}

/// Writes all of `buf` to a blocking descriptor, retrying EINTR; no timeout
/// (for local files and fd 2).
pub fn write_all_nointr(fd: BorrowedFd<'_>, mut buf: &[u8]) -> IoResult<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return Err(IoError::Os(Errno::IO)),
            // n <= buf.len(): `get` only spares a bounds-check panic.
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(IoError::Os(e)),
        }
    }
    Ok(())
}

/// A descriptor read without timeout (fds 0 and 1 of the qmail-queue
/// interface: the caller decides how long it takes).
pub struct FdReader<'a>(pub BorrowedFd<'a>);

impl Read for FdReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        loop {
            match rustix::io::read(self.0, &mut *buf) {
                Ok(n) => return Ok(n),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(IoError::Os(e)),
            }
        }
    }
}

/// A socket read and written with a per-call timeout.
pub struct Timed<'a> {
    pub fd: BorrowedFd<'a>,
    pub secs: u32,
}

impl Read for Timed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        read_timeout(self.fd, buf, self.secs)
    }
}

impl Write for Timed<'_> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        write_timeout(self.fd, buf, self.secs)
    }
}

/// The usual `BufReader` size: a control line (`control::LINE_MAX`) or an
/// envelope item (`envelope::ITEM_MAX`) and its delimiter fit. Readers of
/// the same type and size share one copy of the generic code, so prefer
/// this one.
pub const STD_BUF: usize = 1040;

/// A buffered reader over any `Read`, with a fixed buffer of `N` bytes,
/// that hands out delimited pieces in place.
///
/// `repr(C)`, the buffer last: `pos` and `end` at small offsets, which
/// take fewer bytes of code to reach.
#[repr(C)]
pub struct BufReader<R, const N: usize> {
    inner: R,
    pos: usize,
    end: usize,
    buf: [u8; N],
}

impl<R: Read, const N: usize> BufReader<R, N> {
    pub const fn new(inner: R) -> Self {
        BufReader { inner, pos: 0, end: 0, buf: [0; N] }
    }

    /// The next piece ending in `delim`, consumed, at most `max` bytes
    /// (`max < N`). Returns its place in the buffer (for `buffered`; the
    /// delimiter excluded) and whether `delim` ended it: `false` when input
    /// ended first (the piece is what was left; empty at a clean end).
    /// `Err(Overflow)` when more than `max` bytes come without `delim`.
    ///
    /// A piece cut by the end of the buffer is moved to the front before
    /// the next read, so it is always whole in the buffer: one copy at
    /// most per refill, never one per piece.
    pub fn read_piece(&mut self, delim: u8, max: usize) -> Result<(core::ops::Range<usize>, bool), LineError> {
        // A full buffer without `delim` is then always an overflow.
        let max = max.min(N - 1);
        let mut scanned = self.pos;
        loop {
            let start = self.pos;
            let found = self.buf.get(scanned..self.end).and_then(|b| crate::bytes::memchr(delim, b));
            let stop = found.map_or(self.end, |i| scanned + i);
            if stop - start > max {
                return Err(LineError::Overflow);
            }
            if found.is_some() {
                self.pos = stop + 1;
                return Ok((start..stop, true));
            }
            self.buf.copy_within(start..self.end, 0);
            self.end -= start;
            self.pos = 0;
            scanned = self.end;
            let n = self.inner.read(self.buf.get_mut(self.end..).unwrap_or_default()).map_err(LineError::Io)?;
            if n == 0 {
                self.pos = self.end;
                return Ok((0..self.end, false));
            }
            self.end += n;
        }
    }

    /// Bytes of the buffer, at a place `read_piece` returned (valid until
    /// the next read).
    pub fn buffered(&self, at: core::ops::Range<usize>) -> &[u8] {
        self.buf.get(at).unwrap_or_default()
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Why `read_piece` stopped without a piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineError {
    Io(IoError),
    Overflow,
}

/// Writes all of `buf` to `fd` with a per-call timeout.
pub fn write_all_timeout(fd: BorrowedFd<'_>, buf: &[u8], secs: u32) -> IoResult<()> {
    Timed { fd, secs }.write_all(buf)
}

/// Which side of a copy failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyError {
    Read(IoError),
    Write(IoError),
}

/// Copies everything from `from` (read without timeout) to `to` (a local
/// file), returning the byte count. The caller's buffer carries the bytes,
/// so the caller decides how much memory a copy may use.
pub fn copy_to_end<F: AsFd, T: AsFd>(from: F, to: T, buf: &mut [u8]) -> Result<u64, CopyError> {
    let mut total = 0u64;
    let mut r = FdReader(from.as_fd());
    loop {
        let n = r.read(buf).map_err(CopyError::Read)?;
        if n == 0 {
            return Ok(total);
        }
        write_all_nointr(to.as_fd(), &buf[..n]).map_err(CopyError::Write)?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces<const N: usize>(input: &[u8], max: usize) -> std::vec::Vec<Result<(std::vec::Vec<u8>, bool), LineError>> {
        extern crate std;
        let mut r: BufReader<&[u8], N> = BufReader::new(input);
        let mut v = std::vec::Vec::new();
        loop {
            let p = r.read_piece(0, max).map(|(at, found)| (r.buffered(at).to_vec(), found));
            let last = !matches!(p, Ok((_, true)));
            v.push(p);
            if last {
                return v;
            }
        }
    }

    #[test]
    fn read_piece_splits_on_delimiter_across_refills() {
        extern crate std;
        use std::vec;
        // A 6-byte buffer forces several refills and moves per piece.
        let got = pieces::<6>(b"Fab@c\0Tx\0\0", 5);
        assert_eq!(
            got,
            vec![Ok((b"Fab@c".to_vec(), true)), Ok((b"Tx".to_vec(), true)), Ok((vec![], true)), Ok((vec![], false))]
        );
    }

    #[test]
    fn read_piece_reports_overflow_and_eof() {
        extern crate std;
        use std::vec;
        assert_eq!(pieces::<8>(b"0123456789\0", 4), vec![Err(LineError::Overflow)]);
        assert_eq!(pieces::<8>(b"abc", 4), vec![Ok((b"abc".to_vec(), false))]);
        // Exactly `max` bytes fit, one more does not.
        assert_eq!(pieces::<8>(b"abcd\0", 4), vec![Ok((b"abcd".to_vec(), true)), Ok((vec![], false))]);
        assert_eq!(pieces::<8>(b"abcde\0", 4), vec![Err(LineError::Overflow)]);
        assert_eq!(pieces::<5>(b"abcd\0ef", 4), vec![Ok((b"abcd".to_vec(), true)), Ok((b"ef".to_vec(), false))]);
    }

    #[test]
    fn read_timeout_times_out_on_a_silent_pipe() {
        let (rd, _wr) = rustix::pipe::pipe().unwrap();
        let mut b = [0u8; 4];
        assert_eq!(read_timeout(rd.as_fd(), &mut b, 0), Err(IoError::Timeout));
    }

    #[test]
    fn read_timeout_reads_available_bytes_and_eof() {
        let (rd, wr) = rustix::pipe::pipe().unwrap();
        write_all_nointr(wr.as_fd(), b"hi").unwrap();
        drop(wr);
        let mut b = [0u8; 4];
        assert_eq!(read_timeout(rd.as_fd(), &mut b, 1), Ok(2));
        assert_eq!(read_timeout(rd.as_fd(), &mut b, 1), Ok(0));
    }
}
