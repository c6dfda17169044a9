//! A byte buffer of fixed size that overflows into an anonymous temporary
//! file: small data stays in memory, large data costs no memory at all.

use crate::io::{IoError, write_all_nointr, write_all_timeout};
use crate::net::{SendError, send_file_range};
use crate::tmpfile;
use core::ffi::CStr;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

pub struct Spill<'d, const N: usize> {
    buf: [u8; N],
    len: usize,
    file: Option<OwnedFd>,
    in_file: u64,
    tmpdir: &'d CStr,
}

impl<'d, const N: usize> Spill<'d, N> {
    /// An empty spill whose overflow file goes into `tmpdir`.
    pub const fn new(tmpdir: &'d CStr) -> Self {
        Spill { buf: [0; N], len: 0, file: None, in_file: 0, tmpdir }
    }

    /// Appends `data`; fails only when the overflow file can't be created
    /// or written.
    pub fn push(&mut self, data: &[u8]) -> Result<(), Errno> {
        if self.len + data.len() <= N {
            self.buf[self.len..self.len + data.len()].copy_from_slice(data);
            self.len += data.len();
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(tmpfile::anonymous(self.tmpdir)?);
        }
        let Some(file) = &self.file else { return Err(Errno::BADF) };
        write_all_nointr(file.as_fd(), &self.buf[..self.len]).map_err(IoError::errno)?;
        self.in_file += self.len as u64;
        self.len = 0;
        if data.len() > N {
            write_all_nointr(file.as_fd(), data).map_err(IoError::errno)?;
            self.in_file += data.len() as u64;
        } else {
            self.buf[..data.len()].copy_from_slice(data);
            self.len = data.len();
        }
        Ok(())
    }

    /// Bytes pushed so far.
    pub fn len(&self) -> u64 {
        self.in_file + self.len as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the data overflowed into a file.
    pub fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Sends everything pushed to `sock` (file part first, then memory).
    pub fn send(&self, sock: BorrowedFd<'_>, secs: u32, scratch: &mut [u8]) -> Result<(), SendError> {
        if let Some(file) = &self.file {
            send_file_range(sock, file.as_fd(), 0, self.in_file, secs, scratch)?;
        }
        write_all_timeout(sock, &self.buf[..self.len], secs).map_err(SendError::Net)
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
        let mut scratch = [0u8; 3];
        s.send(b.as_fd(), 5, &mut scratch).unwrap();
        drop(b);
        let out = read_to_end(&a);
        assert_eq!(out.len() as u64, s.len());
        (s.spilled(), out)
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
