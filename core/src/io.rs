//! Reading and writing descriptors, with timeouts.
//!
//! qmail's `timeoutread`/`timeoutwrite`: each call waits at most `secs`
//! seconds for the descriptor (poll), then does one read or write. EINTR is
//! retried; EAGAIN (non-blocking sockets) waits again. Errors stay errno
//! values so callers can map them to qmail-queue exit codes.

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::io::Errno;
use rustix::time::Timespec;

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
            buf = &buf[n..];
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
    let timeout = Timespec { tv_sec: secs as _, tv_nsec: 0 };
    loop {
        let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
        match poll(&mut fds, Some(&timeout)) {
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
            Ok(n) => buf = &buf[n..],
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

/// A descriptor written without timeout.
pub struct FdWriter<'a>(pub BorrowedFd<'a>);

impl Write for FdWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        loop {
            match rustix::io::write(self.0, buf) {
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

/// The usual `BufReader` size. Readers of the same type and size share one
/// copy of the generic code, so prefer this one.
pub const STD_BUF: usize = 1024;

/// A buffered reader over any `Read`, with a fixed buffer of `N` bytes.
pub struct BufReader<R, const N: usize> {
    inner: R,
    buf: [u8; N],
    pos: usize,
    end: usize,
}

impl<R: Read, const N: usize> BufReader<R, N> {
    pub const fn new(inner: R) -> Self {
        BufReader { inner, buf: [0; N], pos: 0, end: 0 }
    }

    /// The buffered bytes, refilling when empty; empty at end of input.
    pub fn fill(&mut self) -> IoResult<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = self.inner.read(&mut self.buf)?;
        }
        Ok(&self.buf[self.pos..self.end])
    }

    /// The next `delim`-terminated piece, without `delim`, when it lies
    /// wholly in the buffer (refilled first if empty): consumed, and its
    /// place returned for `buffered` (no copy). `None` when the buffer holds
    /// no `delim`: nothing is consumed and `read_until` must assemble it.
    pub fn take_until(&mut self, delim: u8) -> IoResult<Option<core::ops::Range<usize>>> {
        let avail = self.fill()?;
        let Some(i) = crate::bytes::memchr(delim, avail) else { return Ok(None) };
        let start = self.pos;
        self.pos += i + 1;
        Ok(Some(start..start + i))
    }

    /// Bytes of the buffer, at a place `take_until` returned (valid until
    /// the next read).
    pub fn buffered(&self, at: core::ops::Range<usize>) -> &[u8] {
        &self.buf[at]
    }

    /// Marks `n` buffered bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }

    /// The next byte, or `None` at end of input.
    pub fn byte(&mut self) -> IoResult<Option<u8>> {
        let b = self.fill()?.first().copied();
        if b.is_some() {
            self.pos += 1;
        }
        Ok(b)
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Copies bytes from `reader` into `out` up to and including `delim`.
///
/// Returns `Ok((len, true))` with the delimiter excluded from `len`;
/// `Ok((len, false))` when input ended first (`len` bytes before the end,
/// 0 at a clean end); `Err(Overflow)` when `out` fills before `delim`
/// appears (the rest of the line is left unread).
pub fn read_until<R: Read, const N: usize>(
    reader: &mut BufReader<R, N>,
    delim: u8,
    out: &mut [u8],
) -> Result<(usize, bool), LineError> {
    let mut len = 0;
    loop {
        let avail = reader.fill().map_err(LineError::Io)?;
        if avail.is_empty() {
            return Ok((len, false));
        }
        let (take, found) = match crate::bytes::memchr(delim, avail) {
            Some(i) => (i, true),
            None => (avail.len(), false),
        };
        if len + take > out.len() {
            return Err(LineError::Overflow);
        }
        out[len..len + take].copy_from_slice(&avail[..take]);
        len += take;
        reader.consume(take + found as usize);
        if found {
            return Ok((len, true));
        }
    }
}

/// Why `read_until` stopped without a line.
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

    #[test]
    fn read_until_splits_on_delimiter_across_refills() {
        // A 4-byte buffer forces several refills per line.
        let mut r: BufReader<&[u8], 4> = BufReader::new(&b"Fab@c\0Tx\0\0"[..]);
        let mut out = [0u8; 16];
        assert_eq!(read_until(&mut r, 0, &mut out), Ok((5, true)));
        assert_eq!(&out[..5], b"Fab@c");
        assert_eq!(read_until(&mut r, 0, &mut out), Ok((2, true)));
        assert_eq!(&out[..2], b"Tx");
        assert_eq!(read_until(&mut r, 0, &mut out), Ok((0, true)));
        assert_eq!(read_until(&mut r, 0, &mut out), Ok((0, false)));
    }

    #[test]
    fn read_until_reports_overflow_and_eof() {
        let mut r: BufReader<&[u8], 8> = BufReader::new(&b"0123456789\0"[..]);
        let mut out = [0u8; 4];
        assert_eq!(read_until(&mut r, 0, &mut out), Err(LineError::Overflow));
        let mut r: BufReader<&[u8], 8> = BufReader::new(&b"abc"[..]);
        assert_eq!(read_until(&mut r, 0, &mut out), Ok((3, false)));
        assert_eq!(&out[..3], b"abc");
    }

    #[test]
    fn line_exactly_filling_the_output_fits() {
        let mut r: BufReader<&[u8], 8> = BufReader::new(&b"abcd\0"[..]);
        let mut out = [0u8; 4];
        assert_eq!(read_until(&mut r, 0, &mut out), Ok((4, true)));
    }

    #[test]
    fn take_until_hands_out_whole_pieces_in_place() {
        let mut r: BufReader<&[u8], 8> = BufReader::new(&b"ab\0cdefgh\0"[..]);
        let at = r.take_until(0).unwrap().unwrap();
        assert_eq!(r.buffered(at), b"ab");
        // "cdefg" is cut by the 8-byte buffer: not whole, nothing consumed.
        assert_eq!(r.take_until(0), Ok(None));
        let mut out = [0u8; 8];
        assert_eq!(read_until(&mut r, 0, &mut out), Ok((6, true)));
        assert_eq!(&out[..6], b"cdefgh");
    }

    #[test]
    fn byte_reads_one_at_a_time() {
        let mut r: BufReader<&[u8], 2> = BufReader::new(&b"xyz"[..]);
        assert_eq!(r.byte(), Ok(Some(b'x')));
        assert_eq!(r.byte(), Ok(Some(b'y')));
        assert_eq!(r.byte(), Ok(Some(b'z')));
        assert_eq!(r.byte(), Ok(None));
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
