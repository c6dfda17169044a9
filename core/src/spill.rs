//! A byte buffer of fixed size that overflows into an anonymous temporary
//! file: small data stays in memory, large data costs no memory at all.

use crate::io::{IoError, write_all_nointr, write_all_timeout};
use crate::net::{SendError, send_file_range};
use crate::sys::ByteBuf;
use crate::tmpfile;
use core::ffi::CStr;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

/// A finished spill, ready to be read.
pub enum Handoff<'a> {
    /// Small: the bytes.
    Memory(&'a [u8]),
    /// Large: an unlinked file positioned at its start.
    File(BorrowedFd<'a>),
}

/// `repr(C)`, the buffer last: the other fields at small offsets, which
/// take fewer bytes of code to reach.
#[repr(C)]
pub struct Spill<'d, const N: usize> {
    file: Option<OwnedFd>,
    in_file: u64,
    tmpdir: &'d CStr,
    /// Never zeroed, filled with memcpy (see `sys::ByteBuf`).
    buf: ByteBuf<N>,
}

impl<'d, const N: usize> Spill<'d, N> {
    /// An empty spill whose overflow file goes into `tmpdir`.
    pub const fn new(tmpdir: &'d CStr) -> Self {
        Spill { file: None, in_file: 0, tmpdir, buf: ByteBuf::new() }
    }

    /// Appends `data`; fails only when the overflow file can't be created
    /// or written.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Errno> {
        if self.buf.extend(data) {
            return Ok(());
        }
        self.push_slow(data)
    }

    /// `push` once the memory part is full: kept apart so that the common
    /// case is a check and a copy, without the register saves this needs.
    #[inline(never)]
    fn push_slow(&mut self, data: &[u8]) -> Result<(), Errno> {
        self.flush()?;
        if !self.buf.extend(data) {
            if let Some(file) = &self.file {
                write_all_nointr(file.as_fd(), data).map_err(IoError::errno)?;
            }
            self.in_file += data.len() as u64;
        }
        Ok(())
    }

    /// Room for `n` more bytes in memory, moving what is there to the file
    /// first if needed; `None` when `n` exceeds the memory part (use `push`).
    /// Lets a caller write small pieces without a `push` per piece.
    pub fn reserve(&mut self, n: usize) -> Result<Option<&mut ByteBuf<N>>, Errno> {
        if n > N {
            return Ok(None);
        }
        if self.buf.room() < n {
            self.flush()?;
        }
        Ok(Some(&mut self.buf))
    }

    /// Moves the memory part to the file (created on first use).
    fn flush(&mut self) -> Result<(), Errno> {
        let file = match &self.file {
            Some(f) => f,
            None => self.file.insert(tmpfile::anonymous(self.tmpdir)?),
        };
        write_all_nointr(file.as_fd(), self.buf.as_slice()).map_err(IoError::errno)?;
        self.in_file += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Empties it for reuse (a file in use is closed).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.file = None;
        self.in_file = 0;
    }

    /// Everything pushed, for a reader: the memory part, or, once the data
    /// overflowed, the whole of it in the file, positioned at its start.
    pub fn finish(&mut self) -> Result<Handoff<'_>, Errno> {
        if self.file.is_none() {
            return Ok(Handoff::Memory(self.buf.as_slice()));
        }
        self.flush()?;
        let Some(file) = &self.file else { return Err(Errno::BADF) };
        rustix::fs::seek(file, rustix::fs::SeekFrom::Start(0))?;
        Ok(Handoff::File(file.as_fd()))
    }

    /// Bytes pushed so far.
    pub fn len(&self) -> u64 {
        self.in_file + self.buf.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the data overflowed into a file.
    pub fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Sends everything pushed to `sock` (file part first, then memory).
    pub fn send(&self, sock: BorrowedFd<'_>, secs: u32) -> Result<(), SendError> {
        if let Some(file) = &self.file {
            send_file_range(sock, file.as_fd(), 0, self.in_file, secs)?;
        }
        write_all_timeout(sock, self.buf.as_slice(), secs).map_err(SendError::Net)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::testutil::{pair, read_to_end};

    fn roundtrip(pieces: &[&[u8]]) -> (bool, std::vec::Vec<u8>) {
        let tmp = std::ffi::CString::new(std::env::temp_dir().to_str().unwrap()).unwrap();
        let mut s: Spill<'_, 8> = Spill::new(&tmp);
        for p in pieces {
            s.push(p).unwrap();
        }
        let (a, b) = pair();
        s.send(b.as_fd(), 5).unwrap();
        drop(b);
        let out = read_to_end(&a);
        assert_eq!(out.len() as u64, s.len());
        (s.spilled(), out)
    }

    #[test]
    fn finish_hands_over_memory_or_the_whole_file() {
        let tmp = std::ffi::CString::new(std::env::temp_dir().to_str().unwrap()).unwrap();
        let mut s: Spill<'_, 8> = Spill::new(&tmp);
        s.push(b"abc").unwrap();
        assert!(matches!(s.finish().unwrap(), Handoff::Memory(b"abc")));
        s.clear();
        for p in [&b"12345"[..], b"6789", b"abcdefghij", b"k"] {
            s.push(p).unwrap();
        }
        match s.finish().unwrap() {
            Handoff::File(f) => {
                let mut out = std::vec::Vec::new();
                let mut b = [0u8; 64];
                loop {
                    let n = rustix::io::read(f, &mut b).unwrap();
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&b[..n]);
                }
                assert_eq!(out, b"123456789abcdefghijk");
            }
            Handoff::Memory(_) => panic!("did not spill"),
        }
    }

    #[test]
    fn small_data_stays_in_memory() {
        assert_eq!(roundtrip(&[b"ab", b"cd"]), (false, b"abcd".to_vec()));
    }

    #[test]
    fn large_data_overflows_to_a_file_in_order() {
        let (spilled, out) = roundtrip(&[b"12345", b"6789", b"abcdefghijklmnop", b"q"]);
        assert!(spilled);
        assert_eq!(out, b"123456789abcdefghijklmnopq");
    }
}
