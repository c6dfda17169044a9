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
    V6([u16; 8], u16),
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
/// trailing dotted-quad allowed; no zone id).
pub fn parse_ipv6(s: &[u8]) -> Option<[u16; 8]> {
    let mut g = [0u16; 8];
    let mut n = 0;
    // Where `::` stands, as a count of groups before it.
    let mut gap = None;
    let mut i = 0;
    if s.starts_with(b"::") {
        gap = Some(0);
        i = 2;
    }
    while i < s.len() {
        let start = i;
        let mut v: u32 = 0;
        while i < s.len() && i - start < 5 {
            match (s[i] as char).to_digit(16) {
                Some(d) => v = v << 4 | d,
                None => break,
            }
            i += 1;
        }
        if s.get(i) == Some(&b'.') {
            // A dotted quad fills the last two groups.
            let [a, b, c, d] = parse_ipv4(&s[start..])?;
            if n > 6 {
                return None;
            }
            g[n] = u16::from_be_bytes([a, b]);
            g[n + 1] = u16::from_be_bytes([c, d]);
            n += 2;
            break;
        }
        if i == start || i - start > 4 || n == 8 {
            return None;
        }
        g[n] = v as u16;
        n += 1;
        if i == s.len() {
            break;
        }
        // A separator: `:` then another group, or `::` once.
        if s[i] != b':' || i + 1 == s.len() {
            return None;
        }
        i += 1;
        if s[i] == b':' {
            if gap.is_some() {
                return None;
            }
            gap = Some(n);
            i += 1;
        }
    }
    match gap {
        None if n == 8 => Some(g),
        // `::` stands for at least one group of zeros.
        Some(at) if n < 8 => {
            g.copy_within(at..n, 8 - (n - at));
            g[at..8 - (n - at)].fill(0);
            Some(g)
        }
        _ => None,
    }
}

fn parse_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    let v = crate::num::parse_u64(s)?;
    if v == 0 || v > 65535 { None } else { Some(v as u16) }
}

/// Parses one server line (see the module doc); `default_port` applies when
/// the line gives none.
pub fn parse_server(line: &[u8], default_port: u16) -> Option<ServerAddr> {
    // Whitespace ends the address; what follows is a comment.
    let end = line.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(line.len());
    let s = &line[..end];
    if let Some(inner) = s.strip_prefix(b"[") {
        let close = inner.iter().position(|&b| b == b']')?;
        let ip = parse_ipv6(&inner[..close])?;
        let after = &inner[close + 1..];
        let port = match after {
            [] => default_port,
            [b':', p @ ..] => parse_port(p)?,
            _ => return None,
        };
        return Some(ServerAddr::V6(ip, port));
    }
    let colons = s.iter().filter(|&&b| b == b':').count();
    if colons >= 2 {
        return parse_ipv6(s).map(|ip| ServerAddr::V6(ip, default_port));
    }
    match s.iter().position(|&b| b == b':') {
        Some(i) => Some(ServerAddr::V4(parse_ipv4(&s[..i])?, parse_port(&s[i + 1..])?)),
        None => Some(ServerAddr::V4(parse_ipv4(s)?, default_port)),
    }
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
        let lo = [0, 0, 0, 0, 0, 0, 0, 1];
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
