//! `control/smtproutes` with qmail-remote's rules: each line is
//! `domain:relay[:port]`; a recipient's host is looked up whole, then as
//! each `.suffix` (from each dot in it), then as the empty domain (the
//! default route); for the same key the first line wins. An empty relay
//! means "no smarthost for this domain" (qmail then looks up MX records;
//! picoq does no DNS, so such a recipient is unroutable unless its host
//! is an address literal `[1.2.3.4]`, which is used directly, port 25).
//!
//! picoq needs numeric relays (`1.2.3.4`, `[1.2.3.4]`, `[::1]`), each with
//! an optional `:port`; a host name is a configuration error.

use crate::addr::{ServerAddr, parse_ipv4, parse_server};
use crate::num::parse_u64;
use crate::sys::ByteBuf;

/// Most smtproutes lines.
pub const ROUTES_MAX: usize = 128;
/// Bytes of all the lines' domains together.
pub const DOMAINS_MAX: usize = 8192;
/// The SMTP port.
pub const SMTP_PORT: u16 = 25;

/// Where a recipient's message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    Smtp(ServerAddr),
    /// The `control/qmqpservers` list.
    Qmqp,
    /// No route (an empty relay for a name that needs DNS).
    Unroutable,
    /// A control byte in the address: it would break the SMTP command
    /// line (`RCPT TO:<a\r\nRCPT TO:<b>`), so it never goes out.
    BadAddress,
}

/// Why smtproutes can't be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// A line that is not `domain:relay[:port]` with a numeric relay.
    Syntax,
    /// More lines or domain bytes than the bounds allow.
    TooMany,
}

pub struct Routes {
    domains: ByteBuf<DOMAINS_MAX>,
    /// End of each line's domain in `domains`, and its relay.
    lines: heapless::Vec<(u16, Option<ServerAddr>), ROUTES_MAX>,
}

static_assertions::const_assert!(DOMAINS_MAX <= u16::MAX as usize);

impl Default for Routes {
    fn default() -> Self {
        Routes::new()
    }
}

/// A relay as smtproutes writes it: `1.2.3.4`, `[1.2.3.4]` or `[v6]`,
/// then an optional `:port`.
fn parse_relay(s: &[u8]) -> Option<ServerAddr> {
    // Blanks would make parse_server read a comment: not allowed here.
    if s.iter().any(|&b| b == b' ' || b == b'\t') {
        return None;
    }
    if let Some(inner) = s.strip_prefix(b"[") {
        let close = inner.iter().position(|&b| b == b']')?;
        if let Some(ip) = parse_ipv4(&inner[..close]) {
            let port = match &inner[close + 1..] {
                [] => SMTP_PORT,
                [b':', p @ ..] => match parse_u64(p) {
                    Some(n @ 1..=65535) => n as u16,
                    _ => return None,
                },
                _ => return None,
            };
            return Some(ServerAddr::V4(ip, port));
        }
    }
    parse_server(s, SMTP_PORT)
}

impl Routes {
    pub const fn new() -> Routes {
        Routes { domains: ByteBuf::new(), lines: heapless::Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Adds one smtproutes line.
    pub fn push_line(&mut self, line: &[u8]) -> Result<(), RouteError> {
        let colon = line.iter().position(|&b| b == b':').ok_or(RouteError::Syntax)?;
        let (domain, relay) = (&line[..colon], &line[colon + 1..]);
        let relay = if relay.is_empty() { None } else { Some(parse_relay(relay).ok_or(RouteError::Syntax)?) };
        if !self.domains.extend(domain) {
            return Err(RouteError::TooMany);
        }
        self.lines.push((self.domains.len() as u16, relay)).map_err(|_| RouteError::TooMany)
    }

    /// The first line whose domain is `key` (ASCII case ignored).
    fn find(&self, key: &[u8]) -> Option<Option<ServerAddr>> {
        let mut start = 0;
        for &(end, relay) in &self.lines {
            let d = &self.domains.as_slice()[start..end as usize];
            if crate::bytes::eq_ignore_case(d, key) {
                return Some(relay);
            }
            start = end as usize;
        }
        None
    }

    /// Where mail for `host` goes: the whole host, then each `.suffix`,
    /// then the default route (qmail-remote's order).
    pub fn lookup(&self, host: &[u8]) -> Dest {
        let mut found = None;
        for i in 0..=host.len() {
            if (i == 0 || i == host.len() || host[i] == b'.')
                && let Some(r) = self.find(&host[i..])
            {
                found = Some(r);
                break;
            }
        }
        match found {
            Some(Some(relay)) => Dest::Smtp(relay),
            _ => match literal(host) {
                Some(ip) => Dest::Smtp(ServerAddr::V4(ip, SMTP_PORT)),
                None => Dest::Unroutable,
            },
        }
    }
}

/// `[1.2.3.4]`, an address literal host.
fn literal(host: &[u8]) -> Option<[u8; 4]> {
    parse_ipv4(host.strip_prefix(b"[")?.strip_suffix(b"]")?)
}

/// The host part of an address: after its last `@` (empty without one).
pub fn host_of(addr: &[u8]) -> &[u8] {
    match addr.iter().rposition(|&b| b == b'@') {
        Some(i) => &addr[i + 1..],
        None => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(lines: &[&[u8]]) -> Routes {
        let mut r = Routes::new();
        for l in lines {
            r.push_line(l).unwrap();
        }
        r
    }

    const A: ServerAddr = ServerAddr::V4([10, 0, 0, 1], 25);
    const B: ServerAddr = ServerAddr::V4([10, 0, 0, 2], 2525);
    const C: ServerAddr = ServerAddr::V4([10, 0, 0, 3], 25);

    #[test]
    fn qmail_remote_lookup_order() {
        let r =
            routes(&[b".example.com:10.0.0.1", b"mail.example.com:10.0.0.2:2525", b":[10.0.0.3]", b"b.example.com:"]);
        // The whole host first, even when a suffix line comes earlier.
        assert_eq!(r.lookup(b"mail.example.com"), Dest::Smtp(B));
        assert_eq!(r.lookup(b"MAIL.Example.COM"), Dest::Smtp(B));
        assert_eq!(r.lookup(b"x.y.example.com"), Dest::Smtp(A));
        // `.example.com` does not match example.com itself.
        assert_eq!(r.lookup(b"example.com"), Dest::Smtp(C));
        assert_eq!(r.lookup(b"other.org"), Dest::Smtp(C));
        // An empty relay: no smarthost, and picoq has no DNS.
        assert_eq!(r.lookup(b"b.example.com"), Dest::Unroutable);
        assert_eq!(host_of(b"a@b@c.d"), b"c.d");
    }

    #[test]
    fn first_line_wins_and_literals_are_direct() {
        let r = routes(&[b"x.org:10.0.0.1", b"x.org:10.0.0.2:2525"]);
        assert_eq!(r.lookup(b"x.org"), Dest::Smtp(A));
        assert_eq!(r.lookup(b"y.org"), Dest::Unroutable);
        assert_eq!(r.lookup(b"[10.0.0.3]"), Dest::Smtp(C));
        let r = routes(&[b":[::1]:26"]);
        assert_eq!(
            r.lookup(b"y.org"),
            Dest::Smtp(ServerAddr::V6(
                parse_server(b"::1", 1)
                    .map(|a| match a {
                        ServerAddr::V6(ip, _) => ip,
                        _ => [0; 16],
                    })
                    .unwrap(),
                26
            ))
        );
        let r = routes(&[b":[10.0.0.2]:2525"]);
        assert_eq!(r.lookup(b"z"), Dest::Smtp(B));
    }

    #[test]
    fn bad_lines_are_refused() {
        let mut r = Routes::new();
        assert_eq!(r.push_line(b"no colon"), Err(RouteError::Syntax));
        assert_eq!(r.push_line(b"x.org:relay.example.net"), Err(RouteError::Syntax));
        assert_eq!(r.push_line(b"x.org:10.0.0.1:0"), Err(RouteError::Syntax));
        assert_eq!(r.push_line(b"x.org:10.0.0.1 comment"), Err(RouteError::Syntax));
        assert_eq!(r.push_line(b"x.org:[10.0.0.1]x"), Err(RouteError::Syntax));
    }
}
