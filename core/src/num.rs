//! Decimal numbers without core::fmt (which would add kilobytes to every
//! binary).

/// Enough digits for any u64.
pub const U64_DIGITS: usize = 20;

/// Formats `n` in decimal into `buf`, returning the digits.
pub fn fmt_u64(n: u64, buf: &mut [u8; U64_DIGITS]) -> &[u8] {
    let start = put_dec(n, buf);
    &buf[start..]
}

/// Writes `n` in decimal at the end of `buf` (room for `U64_DIGITS`
/// digits covers any `n`), returning where the digits start.
pub fn put_dec(mut n: u64, buf: &mut [u8]) -> usize {
    let mut start = buf.len();
    for b in buf.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    start
}

/// Number of decimal digits of `n`.
pub fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// qmail's `scan_ulong`: the value of the leading decimal digits of `s` and
/// how many bytes they took; `None` when there are none or on overflow.
pub fn scan_u64(s: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add((s[i] - b'0') as u64)?;
        i += 1;
    }
    if i == 0 { None } else { Some((v, i)) }
}

/// The whole of `s` as a decimal number (no sign, no blanks).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    match scan_u64(s) {
        Some((v, n)) if n == s.len() => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_edges() {
        let mut b = [0; U64_DIGITS];
        assert_eq!(fmt_u64(0, &mut b), b"0");
        assert_eq!(fmt_u64(628, &mut b), b"628");
        assert_eq!(fmt_u64(u64::MAX, &mut b), b"18446744073709551615");
    }

    #[test]
    fn digits_matches_formatting() {
        let mut b = [0; U64_DIGITS];
        for n in [0u64, 9, 10, 99, 100, 12345, u64::MAX] {
            assert_eq!(digits(n), fmt_u64(n, &mut b).len());
        }
    }

    #[test]
    fn scans_like_qmail() {
        assert_eq!(scan_u64(b"30x"), Some((30, 2)));
        assert_eq!(scan_u64(b"x30"), None);
        assert_eq!(scan_u64(b""), None);
        assert_eq!(scan_u64(b"99999999999999999999999"), None);
        assert_eq!(parse_u64(b"628"), Some(628));
        assert_eq!(parse_u64(b"62 8"), None);
    }
}
