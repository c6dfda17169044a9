//! Short human texts for errno values (qmail's `error_str`), without
//! strerror's locale machinery or core::fmt.

use crate::num::{U64_DIGITS, put_dec};
use rustix::io::Errno;

/// Room for the longest unknown-errno text, `error N`.
pub type ErrBuf = [u8; U64_DIGITS + 6];

/// Errnos with a text, in the order of `TEXTS`.
const KNOWN: [Errno; 28] = [
    Errno::NOENT,
    Errno::ACCESS,
    Errno::PERM,
    Errno::NOTDIR,
    Errno::ISDIR,
    Errno::LOOP,
    Errno::NAMETOOLONG,
    Errno::NOSPC,
    Errno::DQUOT,
    Errno::FBIG,
    Errno::ROFS,
    Errno::IO,
    Errno::NOMEM,
    Errno::MFILE,
    Errno::BADF,
    Errno::INVAL,
    Errno::PIPE,
    Errno::CONNREFUSED,
    Errno::CONNRESET,
    Errno::TIMEDOUT,
    Errno::NETUNREACH,
    Errno::HOSTUNREACH,
    Errno::ADDRNOTAVAIL,
    Errno::AFNOSUPPORT,
    Errno::NOSYS,
    Errno::AGAIN,
    Errno::INTR,
    Errno::EXIST,
];

/// The texts of `KNOWN`, NUL-separated: one string instead of 28 pointers
/// (each of which would need a relocation in a static PIE).
const TEXTS: &[u8] = b"file does not exist\0access denied\0permission denied\0not a directory\0\
is a directory\0symbolic link loop\0file name too long\0out of disk space\0disk quota exceeded\0\
file too big\0read-only file system\0input/output error\0out of memory\0too many open files\0\
file descriptor not open\0invalid argument\0broken pipe\0connection refused\0connection reset\0\
timed out\0network unreachable\0host unreachable\0address not available\0\
address family not supported\0function not implemented\0temporary failure\0\
interrupted system call\0file already exists";

/// Where each text of `TEXTS` starts (and, one further, where it ends),
/// computed at compile time so a lookup is two loads.
const STARTS: [u16; KNOWN.len() + 1] = text_starts(TEXTS);

/// Where each text of NUL-separated `texts` starts, and one more entry
/// where the last one ends (plus one, as if a NUL followed it), for
/// `nth_text`. Compile time only: `N` must be the number of texts plus one.
pub const fn text_starts<const N: usize>(texts: &[u8]) -> [u16; N] {
    let mut starts = [0u16; N];
    let mut i = 0;
    let mut n = 1;
    while i < texts.len() {
        if texts[i] == 0 {
            starts[n] = i as u16 + 1;
            n += 1;
        }
        i += 1;
    }
    // The last text has no NUL after it: pretend it has.
    starts[n] = texts.len() as u16 + 1;
    assert!(n == N - 1, "wrong number of texts");
    starts
}

/// Text `i` of NUL-separated `texts` whose `text_starts` are `starts`
/// (one string and a table of offsets instead of a pointer per text,
/// each of which would need a relocation in a static PIE). Out of line:
/// errno texts and queue texts both use it.
#[inline(never)]
pub fn nth_text<'t>(texts: &'t [u8], starts: &[u16], i: usize) -> &'t [u8] {
    match (starts.get(i), starts.get(i + 1)) {
        (Some(&a), Some(&b)) => texts.get(a as usize..(b as usize).saturating_sub(1)).unwrap_or_default(),
        _ => b"",
    }
}

/// A text for `e`; unknown values give `error N` written into `buf`.
pub fn errno_text(e: Errno, buf: &mut ErrBuf) -> &[u8] {
    if let Some(i) = KNOWN.iter().position(|&k| k == e) {
        return nth_text(TEXTS, &STARTS, i);
    }
    // The digits at the end of `buf`, "error " just before them.
    // (`start` is at most U64_DIGITS: `get` only spares the code of
    // bounds-check panics.)
    let start = put_dec(e.raw_os_error() as u64, &mut buf[6..]);
    if let Some(label) = buf.get_mut(start..start + 6) {
        label.copy_from_slice(b"error ");
    }
    buf.get(start..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_errno_has_its_own_text() {
        assert_eq!(TEXTS.split(|&b| b == 0).count(), KNOWN.len());
        let mut b = [0u8; U64_DIGITS + 6];
        for e in KNOWN {
            assert!(!errno_text(e, &mut b).starts_with(b"error "));
        }
    }

    #[test]
    fn known_and_unknown_errnos() {
        let mut b = [0u8; U64_DIGITS + 6];
        assert_eq!(errno_text(Errno::CONNREFUSED, &mut b), b"connection refused");
        assert_eq!(errno_text(Errno::NOENT, &mut b), b"file does not exist");
        assert_eq!(errno_text(Errno::EXIST, &mut b), b"file already exists");
        assert_eq!(errno_text(Errno::from_raw_os_error(4000), &mut b), b"error 4000");
    }
}
