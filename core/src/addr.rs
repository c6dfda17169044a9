//! Server addresses as picoq's control files write them:
//! `IPv4`, `IPv4:port`, `[IPv6]`, `[IPv6]:port`, and a bare IPv6 address
//! (two or more colons, no port). Whitespace after the address starts a
//! comment, so qmail-era lines such as `10.0.0.1 gateway` keep working
//! (qmail's `ip_scan` ignored everything after the address).
//!
//! No DNS: these programs run before or without a resolver, like qmail.

/// A numeric socket address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerAddr {
    V4([u8; 4], u16),
    /// The 16 bytes in network order (`Ipv6Addr::octets`).
    V6([u8; 16], u16),
}

impl ServerAddr {
    pub fn port(&self) -> u16 {
        match *self {
            ServerAddr::V4(_, p) | ServerAddr::V6(_, p) => p,
        }
    }
}

/// Parses a dotted-quad IPv4 address (exactly four decimal parts, 0–255,
/// no leading zeros beyond a single `0`: `010` is ambiguous, refuse it).
pub fn parse_ipv4(s: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut part = 0;
    let mut val: u32 = 0;
    let mut ndig = 0;
    for &b in s {
        match b {
            b'0'..=b'9' => {
                if ndig == 1 && val == 0 {
                    return None;
                }
                val = val * 10 + (b - b'0') as u32;
                ndig += 1;
                if val > 255 {
                    return None;
                }
            }
            b'.' => {
                if ndig == 0 || part == 3 {
                    return None;
                }
                out[part] = val as u8;
                part += 1;
                val = 0;
                ndig = 0;
            }
            _ => return None,
        }
    }
    if part != 3 || ndig == 0 {
        return None;
    }
    out[3] = val as u8;
    Some(out)
}

/// Parses an IPv6 address in RFC 4291 text form (`::` compression and a
/// trailing dotted-quad allowed; no zone id) into its eight groups.
pub fn parse_ipv6(s: &[u8]) -> Option<[u16; 8]> {
    let b = parse_ipv6_octets(s)?;
    Some(core::array::from_fn(|i| u16::from_be_bytes([b[2 * i], b[2 * i + 1]])))
}

/// `parse_ipv6`, giving the address's 16 bytes in network order (what a
/// socket address holds).
pub fn parse_ipv6_octets(s: &[u8]) -> Option<[u8; 16]> {
    let mut g = [0u8; 16];
    match s.windows(2).position(|w| w == b"::") {
        None => (groups(s, &mut g, true)? == 8).then_some(g),
        Some(at) => {
            // The groups before `::` go first, those after it last, and
            // `::` stands for at least one group of zeros between them.
            let head = groups(&s[..at], &mut g, false)?;
            let mut tail = [0u8; 16];
            let n = groups(&s[at + 2..], &mut tail, true)?;
            if head + n > 7 {
                return None;
            }
            g[16 - 2 * n..].copy_from_slice(&tail[..2 * n]);
            Some(g)
        }
    }
}

/// Colon-separated groups of 1–4 hex digits into `out`, two bytes each in
/// network order (a dotted quad as the last two when `quad_ok`); returns
/// how many groups. Empty input has none; an
/// empty group (a stray `:`) is an error.
fn groups(s: &[u8], out: &mut [u8; 16], quad_ok: bool) -> Option<usize> {
    let mut n = 0;
    let mut i = 0;
    if s.is_empty() {
        return Some(0);
    }
    loop {
        let start = i;
        let mut v: u32 = 0;
        while let Some(d) = s.get(i).and_then(|&c| (c as char).to_digit(16)) {
            v = v << 4 | d;
            i += 1;
        }
        if quad_ok && s.get(i) == Some(&b'.') {
            let quad = parse_ipv4(s.get(start..)?)?;
            out.get_mut(2 * n..2 * n + 4)?.copy_from_slice(&quad);
            return Some(n + 2);
        }
        if i == start || i - start > 4 || n == 8 {
            return None;
        }
        out[2 * n..2 * n + 2].copy_from_slice(&(v as u16).to_be_bytes());
        n += 1;
        match s.get(i) {
            None => return Some(n),
            Some(b':') if i + 1 < s.len() => i += 1,
            _ => return None,
        }
    }
}

fn parse_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    let v = crate::num::parse_u64(s)?;
    if v == 0 || v > 65535 { None } else { Some(v as u16) }
}

/// The address part of a server line: up to the first blank (what
/// follows is a comment).
pub fn server_text(line: &[u8]) -> &[u8] {
    line.split(|&b| b == b' ' || b == b'\t').next().unwrap_or(line)
}

/// Parses one server line (see the module doc); `default_port` applies when
/// the line gives none.
pub fn parse_server(line: &[u8], default_port: u16) -> Option<ServerAddr> {
    let s = server_text(line);
    let colon = |s: &[u8]| s.iter().position(|&b| b == b':');
    // The host, what follows it (`:port` or nothing), and the family.
    let (host, rest, v6) = if let Some(inner) = s.strip_prefix(b"[") {
        let close = inner.iter().position(|&b| b == b']')?;
        (&inner[..close], &inner[close + 1..], true)
    } else if s.iter().filter(|&&b| b == b':').count() >= 2 {
        (s, &b""[..], true)
    } else {
        let at = colon(s).unwrap_or(s.len());
        (&s[..at], &s[at..], false)
    };
    let port = match rest {
        [] => default_port,
        [b':', p @ ..] => parse_port(p)?,
        _ => return None,
    };
    Some(if v6 { ServerAddr::V6(parse_ipv6_octets(host)?, port) } else { ServerAddr::V4(parse_ipv4(host)?, port) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_forms() {
        assert_eq!(parse_server(b"10.0.0.1", 628), Some(ServerAddr::V4([10, 0, 0, 1], 628)));
        assert_eq!(parse_server(b"10.0.0.1:629", 628), Some(ServerAddr::V4([10, 0, 0, 1], 629)));
        assert_eq!(parse_server(b"127.0.0.1 internal gateway", 628), Some(ServerAddr::V4([127, 0, 0, 1], 628)));
        assert_eq!(parse_server(b"255.255.255.255:65535", 1), Some(ServerAddr::V4([255; 4], 65535)));
    }

    #[test]
    fn bad_ipv4_is_refused() {
        for bad in [
            &b"10.0.0"[..],
            b"10.0.0.1.5",
            b"256.0.0.1",
            b"10.0.0.01",
            b"10..0.1",
            b"a.b.c.d",
            b"10.0.0.1:",
            b"10.0.0.1:0",
            b"10.0.0.1:65536",
            b"10.0.0.1:x",
            b"10.0.0.1:0628",
            b"",
            b" 10.0.0.1",
            b"gateway.example",
        ] {
            assert_eq!(parse_server(bad, 628), None, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn ipv6_forms() {
        let lo = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse_ipv6_octets(b"2001:db8::1").map(|b| b[..4] == [0x20, 0x01, 0x0d, 0xb8]), Some(true));
        assert_eq!(parse_server(b"[::1]", 628), Some(ServerAddr::V6(lo, 628)));
        assert_eq!(parse_server(b"[::1]:2628", 628), Some(ServerAddr::V6(lo, 2628)));
        assert_eq!(parse_server(b"::1", 628), Some(ServerAddr::V6(lo, 628)));
        assert_eq!(parse_ipv6(b"2001:db8::8:800:200c:417a"), Some([0x2001, 0xdb8, 0, 0, 0x8, 0x800, 0x200c, 0x417a]));
        assert_eq!(parse_ipv6(b"1:2:3:4:5:6:7:8"), Some([1, 2, 3, 4, 5, 6, 7, 8]));
        assert_eq!(parse_ipv6(b"::"), Some([0; 8]));
        assert_eq!(parse_ipv6(b"1::"), Some([1, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(parse_ipv6(b"::ffff:192.0.2.1"), Some([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201]));
        assert_eq!(parse_ipv6(b"1:2:3:4:5:6:1.2.3.4"), Some([1, 2, 3, 4, 5, 6, 0x0102, 0x0304]));
    }

    #[test]
    fn bad_ipv6_is_refused() {
        for bad in [
            &b"1:2:3:4:5:6:7"[..],
            b"1:2:3:4:5:6:7:8:9",
            b"1::2::3",
            b":1:2:3:4:5:6:7",
            b"1:2:3:4:5:6:7:",
            b"12345::",
            b"g::",
            b"1:2:3:4:5:6:7:1.2.3.4",
            b"::1.2.3",
            b"",
        ] {
            assert_eq!(parse_ipv6(bad), None, "{:?}", core::str::from_utf8(bad));
        }
        assert_eq!(parse_server(b"[::1", 628), None);
        assert_eq!(parse_server(b"[::1]x", 628), None);
        assert_eq!(parse_server(b"[fe80::1%eth0]", 628), None);
    }
}
