//! The qmail-queue envelope (fd 1): `F` sender NUL, zero or more
//! `T` recipient NUL, then one more NUL.
//!
//! Read in a stream: one address at a time in a fixed buffer, so an
//! envelope with 100,000 recipients costs no more memory than one with one.
//! Errors map to qmail's exit codes: a read error is 54, a malformed or
//! truncated envelope 91 (qmail-qmqpc's `die_format`), an address of more
//! than `ADDR_MAX` bytes 11 (qmail-queue's limit).

use crate::io::{BufReader, IoError, LineError, Read};
use crate::qq;

/// Longest address in bytes, without the kind letter and the NUL
/// (qmail-queue: 1003 bytes including the NUL).
pub const ADDR_MAX: usize = 1002;
/// Buffer for one envelope item: kind letter plus address.
pub const ITEM_MAX: usize = ADDR_MAX + 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeError {
    Read(IoError),
    Format,
    AddressTooLong,
}

impl EnvelopeError {
    /// The qmail-queue exit code for this error.
    pub fn exit_code(self) -> i32 {
        match self {
            EnvelopeError::Read(_) => qq::READ_ERROR,
            EnvelopeError::Format => qq::ENVELOPE_FORMAT,
            EnvelopeError::AddressTooLong => qq::ADDRESS_TOO_LONG,
        }
    }
}

/// Streaming envelope reader; `N` (the read buffer) must exceed `ITEM_MAX`
/// (`io::STD_BUF` does).
pub struct EnvelopeReader<R, const N: usize> {
    input: BufReader<R, N>,
    done: bool,
}

impl<R: Read, const N: usize> EnvelopeReader<R, N> {
    pub const fn new(input: R) -> Self {
        const { assert!(N > ITEM_MAX, "the buffer must hold a whole item") };
        EnvelopeReader { input: BufReader::new(input), done: false }
    }

    /// Reads one NUL-terminated item, in place in the read buffer; `None`
    /// for the empty one that ends the envelope (and `done` is set).
    fn item(&mut self) -> Result<Option<&[u8]>, EnvelopeError> {
        match self.input.read_piece(0, ITEM_MAX) {
            Ok((at, true)) => {
                self.done = at.is_empty();
                Ok(if self.done { None } else { Some(self.input.buffered(at)) })
            }
            // Input ended inside an item, or before the final NUL.
            Ok((_, false)) => Err(EnvelopeError::Format),
            Err(LineError::Overflow) => Err(EnvelopeError::AddressTooLong),
            Err(LineError::Io(e)) => Err(EnvelopeError::Read(e)),
        }
    }

    /// The sender; must be the first call.
    pub fn sender(&mut self) -> Result<&[u8], EnvelopeError> {
        match self.item()? {
            Some([b'F', addr @ ..]) => Ok(addr),
            _ => Err(EnvelopeError::Format),
        }
    }

    /// The next recipient, or `None` after the terminating NUL.
    pub fn recipient(&mut self) -> Result<Option<&[u8]>, EnvelopeError> {
        if self.done {
            return Ok(None);
        }
        match self.item()? {
            None => Ok(None),
            Some([b'T', addr @ ..]) => Ok(Some(addr)),
            Some(_) => Err(EnvelopeError::Format),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn read_all(input: &[u8]) -> Result<(Vec<u8>, Vec<Vec<u8>>), EnvelopeError> {
        let mut r: EnvelopeReader<&[u8], { crate::io::STD_BUF }> = EnvelopeReader::new(input);
        let from = r.sender()?.to_vec();
        let mut to = Vec::new();
        while let Some(t) = r.recipient()? {
            to.push(t.to_vec());
        }
        Ok((from, to))
    }

    #[test]
    fn reads_sender_and_recipients() {
        let (f, t) = read_all(b"Fa@b\0Tc@d\0Te@f\0\0").unwrap();
        assert_eq!(f, b"a@b");
        assert_eq!(t, [b"c@d".to_vec(), b"e@f".to_vec()]);
    }

    #[test]
    fn empty_sender_and_no_recipients_are_valid() {
        let (f, t) = read_all(b"F\0\0").unwrap();
        assert!(f.is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn malformed_envelopes_are_format_errors() {
        // qmail-qmqpc: no F first, a non-T item, truncation: die_format (91).
        for bad in [&b""[..], b"\0", b"Ta@b\0\0", b"Fa@b\0Xc@d\0\0", b"Fa@b", b"Fa@b\0Tc@d\0", b"Fa@b\0Tc@d"] {
            assert_eq!(read_all(bad), Err(EnvelopeError::Format), "{:?}", std::str::from_utf8(bad));
        }
        assert_eq!(EnvelopeError::Format.exit_code(), 91);
    }

    #[test]
    fn addresses_are_bounded_like_qmail_queue() {
        let mut ok = Vec::from(&b"F"[..]);
        ok.extend(std::iter::repeat_n(b'a', ADDR_MAX));
        ok.extend(b"\0\0");
        assert_eq!(read_all(&ok).unwrap().0.len(), ADDR_MAX);
        let mut long = Vec::from(&b"Fx\0T"[..]);
        long.extend(std::iter::repeat_n(b'a', ADDR_MAX + 1));
        long.extend(b"\0\0");
        assert_eq!(read_all(&long), Err(EnvelopeError::AddressTooLong));
        assert_eq!(EnvelopeError::AddressTooLong.exit_code(), 11);
    }

    #[test]
    fn read_errors_map_to_54() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> crate::io::IoResult<usize> {
                Err(IoError::Os(rustix::io::Errno::IO))
            }
        }
        let mut r: EnvelopeReader<Broken, { crate::io::STD_BUF }> = EnvelopeReader::new(Broken);
        let e = r.sender().unwrap_err();
        assert_eq!(e.exit_code(), 54);
    }
}
