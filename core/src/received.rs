//! The `Received:` trace line qmail-smtpd (and qmail-qmqpd) put above a
//! message, and qmail's RFC 822 date, from unix time in UTC.
//!
//! Kept byte for byte as qmail's received.c writes it, because log
//! parsers and spam filters match on it:
//! `Received: from HOST (HELO helo) (INFO@IP)` NL `  by LOCAL with PROTO; DATE`.
//! Every byte of the variable parts outside `A-Za-z0-9.@%+/=:-[]` becomes
//! `?` so a client cannot inject header lines or odd bytes (received.c's
//! `safeput`; picoq also lets `[` and `]` of address literals through).
//!
//! The date is date822fmt's `D Mon YYYY HH:MM:SS -0000`: UTC, day without
//! leading zero, no weekday. No libc time functions: the civil date comes
//! from the day count, by whole 400-year Gregorian cycles and then year by
//! year and month by month (a test checks it against Howard Hinnant's
//! closed-form `civil_from_days`, which takes more code), valid for any
//! u64 seconds.

/// Longest date text: `31 Dec 999999999999 23:59:59 -0000`.
pub const DATE_MAX: usize = 40;

const MONTHS: &[u8; 36] = b"JanFebMarAprMayJunJulAugSepOctNovDec";

/// Days in each month of a common year.
const MONTH_DAYS: &[u8; 12] = &[31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/// Writes the date822fmt text for `unix` seconds (without newline).
pub fn date822(unix: u64, buf: &mut [u8; DATE_MAX]) -> &[u8] {
    // Whole 400-year cycles (146,097 days each: the Gregorian calendar
    // repeats) first, then years and months one at a time: loops are a
    // fraction of the code of the closed-form civil_from_days.
    // 86,400 = 128 * 675 and 146,097 = 3 * 48,699: divisors below 2^16
    // (num::div_small: no 64-bit division routine on 32-bit targets).
    let (mut days, _) = crate::num::div_small(unix >> 7, 675);
    let secs = (unix - days * 86400) as u32;
    let (cycles, _) = crate::num::div_small(crate::num::div_small(days, 3).0, 48_699);
    let mut year = 1970 + 400 * cycles;
    days -= cycles * 146_097;
    let mut leap;
    loop {
        leap = year & 3 == 0 && (crate::num::div_small(year, 100).1 != 0 || crate::num::div_small(year, 400).1 == 0);
        let len = 365 + leap as u64;
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let mut month = 0;
    while month < 11 {
        let len = MONTH_DAYS[month] as u64 + (month == 1 && leap) as u64;
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    // " HH:MM:SS -0000" from the digits of 1HHMMSS (the leading 1 keeps
    // the zeros), then, right to left before it, the year, the month and
    // the day (put_dec writes at the end of the space it is given).
    let mut hms = [0u8; 7];
    crate::num::put_dec(1_000_000 + (secs / 3600 * 10_000 + secs / 60 % 60 * 100 + secs % 60) as u64, &mut hms);
    let [_, h1, h2, m1, m2, s1, s2] = hms;
    let mut at = DATE_MAX - 15;
    buf[at..].copy_from_slice(&[b' ', h1, h2, b':', m1, m2, b':', s1, s2, b' ', b'-', b'0', b'0', b'0', b'0']);
    let year_at = crate::num::put_dec(year, &mut buf[..at]);
    // A year has at least four digits: room for " Mon " before them.
    at = year_at - 5;
    let m = &MONTHS[month * 3..month * 3 + 3];
    // The ranges are always within `buf` (DATE_MAX fits any date): `get`
    // only spares the code of bounds-check panics.
    if let Some(mon) = buf.get_mut(at..year_at) {
        mon.copy_from_slice(&[b' ', m[0], m[1], m[2], b' ']);
    }
    at = crate::num::put_dec(days + 1, buf.get_mut(..at).unwrap_or_default());
    buf.get(at..).unwrap_or_default()
}

/// received.c's `issafe` (plus `[` and `]`).
/// A `match`, not `b"...".contains(&b)`: that is core's generic memchr
/// (~300 B) called once per byte.
fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'[' | b']' | b'.' | b'@' | b'%' | b'+' | b'/' | b'=' | b':' | b'-')
}

/// Passes `s` to `out` with every unsafe byte replaced by `?`, in chunks.
pub fn put_safe(out: &mut impl FnMut(&[u8]), s: &[u8]) {
    let mut chunk = [0u8; 64];
    for part in s.chunks(chunk.len()) {
        for (c, &b) in chunk.iter_mut().zip(part) {
            *c = if is_safe(b) { b } else { b'?' };
        }
        out(&chunk[..part.len()]);
    }
}

/// The parties named in a Received line.
pub struct Trace<'a> {
    /// `TCPLOCALHOST`, else `TCPLOCALIP`, else `unknown`.
    pub local: &'a [u8],
    pub remote_ip: &'a [u8],
    pub remote_host: &'a [u8],
    /// `TCPREMOTEINFO`, omitted when unset.
    pub remote_info: Option<&'a [u8]>,
    /// The HELO argument, when it differs from `remote_host`.
    pub helo: Option<&'a [u8]>,
}

/// Writes the whole Received line, ending in a newline, for protocol
/// `proto` (`SMTP`, `QMQP`) at `unix` seconds.
pub fn write_received(out: &mut impl FnMut(&[u8]), t: &Trace<'_>, proto: &[u8], unix: u64) {
    out(b"Received: from ");
    put_safe(out, t.remote_host);
    if let Some(h) = t.helo {
        out(b" (HELO ");
        put_safe(out, h);
        out(b")");
    }
    out(b" (");
    if let Some(i) = t.remote_info {
        put_safe(out, i);
        out(b"@");
    }
    put_safe(out, t.remote_ip);
    out(b")\n  by ");
    put_safe(out, t.local);
    out(b" with ");
    out(proto);
    out(b"; ");
    let mut d = [0u8; DATE_MAX];
    out(date822(unix, &mut d));
    out(b"\n");
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn date(unix: u64) -> std::string::String {
        let mut b = [0u8; DATE_MAX];
        std::string::String::from_utf8(date822(unix, &mut b).to_vec()).unwrap()
    }

    #[test]
    fn dates_like_date822fmt() {
        assert_eq!(date(0), "1 Jan 1970 00:00:00 -0000");
        assert_eq!(date(951_782_400), "29 Feb 2000 00:00:00 -0000");
        assert_eq!(date(1_700_000_000), "14 Nov 2023 22:13:20 -0000");
        assert_eq!(date(4_133_980_799), "31 Dec 2100 23:59:59 -0000");
        assert_eq!(date(4_107_542_399), "28 Feb 2100 23:59:59 -0000");
        assert_eq!(date(1_709_251_199), "29 Feb 2024 23:59:59 -0000");
        assert!(date(u64::MAX).len() <= DATE_MAX);
    }

    /// The loop agrees with Howard Hinnant's civil_from_days on every day
    /// from 1970 to 2500 and around the 400-year cycle edges.
    #[test]
    fn dates_agree_with_civil_from_days() {
        let civil = |days: i64| {
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z.rem_euclid(146_097);
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5 + 1;
            let m = if mp < 10 { mp + 3 } else { mp - 9 };
            (yoe + era * 400 + (m <= 2) as i64, m, d)
        };
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let days = (0..193_000i64).chain(146_000..146_200).chain(292_100..292_300).chain(1_000_000_000..1_000_000_100);
        for day in days {
            let (y, m, d) = civil(day);
            let want = std::format!("{d} {} {y} 00:00:07 -0000", months[(m - 1) as usize]);
            assert_eq!(date(day as u64 * 86400 + 7), want, "day {day}");
        }
    }

    #[test]
    fn received_line_like_qmail() {
        let mut v = Vec::new();
        let t = Trace {
            local: b"mx.example",
            remote_ip: b"192.0.2.7",
            remote_host: b"client.example",
            remote_info: Some(b"joe"),
            helo: Some(b"bad\r\nX-Injected: 1"),
        };
        write_received(&mut |s: &[u8]| v.extend_from_slice(s), &t, b"SMTP", 1_700_000_000);
        assert_eq!(
            std::str::from_utf8(&v).unwrap(),
            "Received: from client.example (HELO bad??X-Injected:?1) (joe@192.0.2.7)\n  by mx.example with SMTP; 14 Nov 2023 22:13:20 -0000\n"
        );
        let mut v = Vec::new();
        let t =
            Trace { local: b"unknown", remote_ip: b"unknown", remote_host: b"unknown", remote_info: None, helo: None };
        write_received(&mut |s: &[u8]| v.extend_from_slice(s), &t, b"SMTP", 0);
        assert_eq!(v, b"Received: from unknown (unknown)\n  by unknown with SMTP; 1 Jan 1970 00:00:00 -0000\n");
    }

    #[test]
    fn long_values_are_filtered_in_chunks() {
        let mut v = Vec::new();
        let long: Vec<u8> = (0..200u8).collect();
        put_safe(&mut |s: &[u8]| v.extend_from_slice(s), &long);
        assert_eq!(v.len(), 200);
        assert!(v.iter().all(|&b| is_safe(b) || b == b'?'));
        assert_eq!(v[b'a' as usize], b'a');
        assert_eq!(v[b' ' as usize], b'?');
    }
}
