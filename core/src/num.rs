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
#[inline(never)]
pub fn put_dec(mut n: u64, buf: &mut [u8]) -> usize {
    let mut start = buf.len();
    for b in buf.iter_mut().rev() {
        let (q, r) = div10(n);
        *b = b'0' + r as u8;
        n = q;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    start
}

/// `n / 10` and `n % 10`.
fn div10(n: u64) -> (u64, u32) {
    div_small(n, 10)
}

/// `n / d` and `n % d` for a divisor below 2^16.
#[cfg(target_pointer_width = "64")]
pub fn div_small(n: u64, d: u16) -> (u64, u32) {
    (n / d as u64, (n % d as u64) as u32)
}

/// On 32-bit targets a u64 division is a call into compiler_builtins'
/// generic `u64_div_rem` (~800 B on MIPS); a divisor below 2^16 needs
/// only long division in 16-bit steps, each of which fits a 32-bit divide.
#[cfg(not(target_pointer_width = "64"))]
pub fn div_small(n: u64, d: u16) -> (u64, u32) {
    div_by_limbs(n, d)
}

#[cfg(any(test, not(target_pointer_width = "64")))]
fn div_by_limbs(n: u64, d: u16) -> (u64, u32) {
    let d = d as u32;
    let mut q = 0u64;
    let mut r = 0u32;
    for shift in [48, 32, 16, 0] {
        // r < d < 2^16, so the partial dividend fits in 32 bits.
        let x = (r << 16) | ((n >> shift) as u32 & 0xffff);
        q = (q << 16) | (x / d) as u64;
        r = x % d;
    }
    (q, r)
}

/// Number of decimal digits of `n`.
pub fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n = div10(n).0;
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
    fn division_by_ten_in_limbs_is_exact() {
        let mut n = 1u64;
        for _ in 0..2000 {
            for v in [n, n - 1, n + 7, u64::MAX - n, n.wrapping_mul(0x9e37_79b9_7f4a_7c15)] {
                for d in [10u16, 1, 3, 128, 675, 48699, u16::MAX] {
                    assert_eq!(div_by_limbs(v, d), (v / d as u64, (v % d as u64) as u32), "{v} / {d}");
                }
            }
            n = n.wrapping_mul(3).wrapping_add(1);
        }
        assert_eq!(div_by_limbs(u64::MAX, 10), (u64::MAX / 10, 5));
        assert_eq!(div_by_limbs(0, 10), (0, 0));
    }

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
