//! Byte memory without waste: a fixed buffer whose unused part is never
//! zeroed.
//!
//! Why here: zeroing a buffer at opt-level "z" is `rep stosb`, one
//! instruction per byte, and heapless's `extend_from_slice` copies element
//! by element (~10 instructions per byte under callgrind). A buffer that
//! tracks how much of it is initialised needs `unsafe` to hand out the
//! initialised part; that belongs in this module and nowhere else.

use core::mem::MaybeUninit;
use rustix::fd::BorrowedFd;

/// `N` bytes of storage of which the first `len()` are in use; appending
/// copies with memcpy, and nothing is ever zeroed.
///
/// `repr(C)` with the length first: Rust's own layout puts the array
/// first, and every access to `len` then encodes an offset of `N`, in
/// more bytes of code.
#[repr(C)]
pub struct ByteBuf<const N: usize> {
    /// Invariant: `bytes[..len]` are initialised, and `len <= N`.
    len: usize,
    bytes: [MaybeUninit<u8>; N],
}

impl<const N: usize> ByteBuf<N> {
    pub const fn new() -> Self {
        ByteBuf { len: 0, bytes: [MaybeUninit::uninit(); N] }
    }

    /// The bytes in use.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `bytes[..len]` are initialised (the invariant), and
        // MaybeUninit<u8> has the layout of u8.
        unsafe { core::slice::from_raw_parts(self.bytes.as_ptr().cast::<u8>(), self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that can still be appended.
    pub fn room(&self) -> usize {
        N - self.len
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends one byte if it fits.
    pub fn push(&mut self, byte: u8) -> bool {
        match self.bytes.get_mut(self.len) {
            Some(slot) => {
                slot.write(byte);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Appends `data` if it fits; returns false (and appends nothing) if not.
    pub fn extend(&mut self, data: &[u8]) -> bool {
        if data.len() > N - self.len {
            return false;
        }
        // SAFETY: the destination `bytes[len..len + data.len()]` is within
        // the array (just checked) and cannot overlap `data`, which is
        // borrowed immutably while `self` is borrowed mutably.
        unsafe {
            core::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.bytes.as_mut_ptr().add(self.len).cast::<u8>(),
                data.len(),
            );
        }
        // The copied bytes are now initialised: the invariant holds.
        self.len += data.len();
        true
    }

    /// One `read(2)` from `fd` into the unused part; returns the count
    /// (0 at end of input, or when the buffer is full).
    pub fn read_from(&mut self, fd: BorrowedFd<'_>) -> rustix::io::Result<usize> {
        let (filled, _) = rustix::io::read(fd, &mut self.bytes[self.len..])?;
        // rustix returns the initialised prefix of the spare part.
        self.len += filled.len();
        Ok(filled.len())
    }
}

impl<const N: usize> Default for ByteBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytebuf_appends_until_full() {
        let mut b: ByteBuf<8> = ByteBuf::new();
        assert!(b.is_empty());
        assert!(b.extend(b"abc"));
        assert!(b.extend(b"defgh"));
        assert_eq!(b.as_slice(), b"abcdefgh");
        assert_eq!(b.room(), 0);
        assert!(!b.extend(b"i"));
        assert_eq!(b.as_slice(), b"abcdefgh");
        b.clear();
        assert!(b.extend(b"xy"));
        assert_eq!(b.as_slice(), b"xy");
    }

    #[test]
    fn bytebuf_reads_into_its_spare_part() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::write(&w, b"hello world").unwrap();
        let mut b: ByteBuf<8> = ByteBuf::new();
        assert!(b.extend(b"<"));
        assert_eq!(b.read_from(rustix::fd::AsFd::as_fd(&r)).unwrap(), 7);
        assert_eq!(b.as_slice(), b"<hello w");
        assert_eq!(b.read_from(rustix::fd::AsFd::as_fd(&r)).unwrap(), 0);
    }
}
