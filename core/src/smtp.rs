//! SMTP server pieces for smtpd-front: command lines, qmail-smtpd's
//! address parser, the DATA transform, and the control lists it checks.
//!
//! qmail quirks kept on purpose (admins and scripts rely on them):
//! - a command line ends at LF, an optional CR before it is dropped
//!   (`nc` users type bare-LF commands); bytes after a NUL are ignored, as
//!   commands.c's C strings did; the verb is matched case-insensitively and
//!   the argument starts after the spaces that follow it;
//! - addresses (addrparse): text between `<` and `>`, else after `:` up to
//!   a space; a source route `@a,@b:` is dropped; quotes are removed and a
//!   backslash escapes the next byte; more than 899 bytes is a syntax error;
//! - DATA (blast): CRLF becomes LF; a bare CR is kept; the message ends at
//!   exactly CRLF `.` CRLF; a leading dot is removed, except that qmail
//!   keeps it when a CR not followed by LF comes next (`.` CR x); header
//!   lines starting with `received` or `delivered` (any case) are hops.
//!
//! picoq adds: a bare LF anywhere in DATA is an error (no SMTP smuggling,
//! RFC 5321 §2.3.8), command lines are bounded (`LINE_MAX`), and the DATA
//! loop scans a word at a time instead of a byte at a time.

use crate::control::{ControlDir, ControlError};
use crate::io::{IoError, Read};
use crate::sys::ByteBuf;

/// Longest command line kept, CRLF excluded: RFC 5321's 512-byte command
/// line plus room for an 899-byte address and parameters. Longer lines are
/// read to their end and refused.
pub const LINE_MAX: usize = 1200;
/// qmail-smtpd's address limit: more bytes is `555 syntax error`.
pub const ADDR_MAX: usize = 899;
static_assertions::const_assert!(ADDR_MAX < LINE_MAX);
/// Bytes looked at the start of each DATA line before the line is
/// streamed: `delivered` plus one.
const LINE_PEEK: usize = 10;

/// An SMTP verb smtpd-front knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Vrfy,
    Help,
    Quit,
    Unknown,
}

/// The verbs, as commands.c's table lists them. Names are held by value:
/// a table of references would cost a run-time relocation per entry in
/// the read-only page (static-pie).
const VERBS: [([u8; 4], Verb); 10] = [
    (*b"rcpt", Verb::Rcpt),
    (*b"mail", Verb::Mail),
    (*b"data", Verb::Data),
    (*b"quit", Verb::Quit),
    (*b"helo", Verb::Helo),
    (*b"ehlo", Verb::Ehlo),
    (*b"rset", Verb::Rset),
    (*b"help", Verb::Help),
    (*b"noop", Verb::Noop),
    (*b"vrfy", Verb::Vrfy),
];

/// Splits a command line (LF removed) into its verb and argument.
pub fn split_command(line: &[u8]) -> (Verb, &[u8]) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = match find_byte(line, 0) {
        Some(i) => &line[..i],
        None => line,
    };
    let sp = find_byte(line, b' ').unwrap_or(line.len());
    let mut arg = &line[sp..];
    while let [b' ', rest @ ..] = arg {
        arg = rest;
    }
    // Every name is four lowercase letters, for which `| 0x20` is an
    // exact case fold: one word compare per table entry.
    let verb = match line[..sp] {
        [a, b, c, d] => {
            let word = u32::from_le_bytes([a, b, c, d]) | 0x2020_2020;
            VERBS.iter().find(|(name, _)| u32::from_le_bytes(*name) == word).map_or(Verb::Unknown, |v| v.1)
        }
        _ => Verb::Unknown,
    };
    (verb, arg)
}

/// qmail-smtpd's addrparse. Writes the address into `out` and returns its
/// length and the text after it (parameters such as `SIZE=`); `None` for
/// an address longer than `ADDR_MAX`.
pub fn parse_address<'a, const N: usize>(arg: &'a [u8], out: &mut [u8; N]) -> Option<(usize, &'a [u8])> {
    const { assert!(N >= ADDR_MAX) };
    let (mut s, term) = match find_byte(arg, b'<') {
        Some(i) => (&arg[i + 1..], b'>'),
        None => {
            // "partner should go read rfc 821": MAIL FROM:a@b
            let mut s = match find_byte(arg, b':') {
                Some(i) => &arg[i + 1..],
                None => &arg[arg.len()..],
            };
            while let [b' ', rest @ ..] = s {
                s = rest;
            }
            (s, b' ')
        }
    };
    if s.first() == Some(&b'@') {
        // Source route: everything up to and including the first ':'.
        s = match find_byte(s, b':') {
            Some(i) => &s[i + 1..],
            None => &s[s.len()..],
        };
    }
    let mut len = 0;
    let mut esc = false;
    let mut quoted = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        i += 1;
        if esc {
            esc = false;
        } else if !quoted && c == term {
            break;
        } else if c == b'\\' {
            esc = true;
            continue;
        } else if c == b'"' {
            quoted = !quoted;
            continue;
        }
        if len == ADDR_MAX {
            return None;
        }
        out[len] = c;
        len += 1;
    }
    Some((len, &s[i..]))
}

/// The value of a `SIZE=` parameter (RFC 1870) among `params`.
pub fn size_param(params: &[u8]) -> Option<u64> {
    for p in params.split(|&b| b == b' ') {
        if starts_ci(p, b"size=")
            && let Some(v) = crate::num::parse_u64(&p[5..])
        {
            return Some(v);
        }
    }
    None
}

/// Position of the last `@` (the domain follows it).
pub fn last_at(addr: &[u8]) -> Option<usize> {
    addr.iter().rposition(|&b| b == b'@')
}

/// picoq's relay-hack refusal: a local part holding `%`, `!` or `@`
/// (`u%far@here`, `far!u@here`, `"u@far"@here`) asks the next hop to
/// relay; qmail accepted these and trusted the gateway to ignore them.
pub fn is_relay_hack(addr: &[u8]) -> bool {
    let local = &addr[..last_at(addr).unwrap_or(addr.len())];
    local.iter().any(|&b| b == b'%' || b == b'!' || b == b'@')
}

/// An address literal domain: `[1.2.3.4]` or `[IPv6:...]` (RFC 5321 §4.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpLiteral {
    V4([u8; 4]),
    /// The 16 bytes in network order.
    V6([u8; 16]),
}

/// Parses the domain `dom` as an address literal.
pub fn ip_literal(dom: &[u8]) -> Option<IpLiteral> {
    let inner = dom.strip_prefix(b"[")?.strip_suffix(b"]")?;
    match inner {
        [i, p, v, b'6', b':', rest @ ..] if [i | 0x20, p | 0x20, v | 0x20] == *b"ipv" => {
            crate::addr::parse_ipv6_octets(rest).map(IpLiteral::V6)
        }
        _ => crate::addr::parse_ipv4(inner).map(IpLiteral::V4),
    }
}

/// Longest `ip_text`: eight groups of four hex digits and seven colons.
pub const IP_TEXT_MAX: usize = 39;

/// An address as text, as tcpserver's `TCPREMOTEIP` has it: dotted quad,
/// or IPv6 groups in hex without `::` compression.
pub fn ip_text(lit: IpLiteral, buf: &mut [u8; IP_TEXT_MAX]) -> &[u8] {
    // One loop for both: (value, base, separator) per part.
    let mut parts = [0u16; 8];
    let (n, base, sep) = match lit {
        IpLiteral::V4(o) => {
            for (p, &b) in parts.iter_mut().zip(&o) {
                *p = b as u16;
            }
            (4, 10, b'.')
        }
        IpLiteral::V6(o) => {
            for (p, b) in parts.iter_mut().zip(o.chunks_exact(2)) {
                *p = u16::from_be_bytes([b[0], b[1]]);
            }
            (8, 16, b':')
        }
    };
    let mut len = 0;
    for (i, &part) in parts[..n].iter().enumerate() {
        if i > 0 {
            buf[len] = sep;
            len += 1;
        }
        let mut d = [0u8; 4];
        let mut k = 4;
        let mut v = part;
        loop {
            k -= 1;
            d[k] = b"0123456789abcdef"[(v % base) as usize];
            v /= base;
            if v == 0 || k == 0 {
                break;
            }
        }
        for &c in &d[k..] {
            buf[len] = c;
            len += 1;
        }
    }
    &buf[..len]
}

/// Case-insensitive prefix test.
fn starts_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Position of the first `needle` in `hay`, a word at a time (this is the
/// DATA hot path: no per-byte branches for ordinary text).
#[inline]
pub fn find_byte(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let rep = LO.wrapping_mul(needle as u64);
    let chunks = hay.chunks_exact(8);
    let tail = chunks.remainder();
    for (k, c) in chunks.enumerate() {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) ^ rep;
        // Classic zero-byte test; a false positive can only sit above a
        // true zero byte, so the lowest flagged byte is the first match.
        let t = w.wrapping_sub(LO) & !w & HI;
        if t != 0 {
            return Some(k * 8 + (t.trailing_zeros() / 8) as usize);
        }
    }
    let base = hay.len() - tail.len();
    tail.iter().position(|&b| b == needle).map(|p| base + p)
}

/// Why reading the client stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    Io(IoError),
    /// The client closed the connection.
    Eof,
    /// A LF without CR before it inside DATA.
    BareLf,
}

impl From<IoError> for ReadError {
    fn from(e: IoError) -> ReadError {
        ReadError::Io(e)
    }
}

/// The client's input: a fixed buffer that can also be topped up without
/// being emptied (needed to look at the start of a DATA line).
pub struct Input<R, const N: usize> {
    inner: R,
    buf: [u8; N],
    pos: usize,
    end: usize,
}

/// A command line as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// Its length in the caller's buffer (LF removed, CR kept).
    Ok(usize),
    /// Longer than the buffer; read to its end and dropped.
    TooLong,
}

impl<R: Read, const N: usize> Input<R, N> {
    pub const fn new(inner: R) -> Self {
        Input { inner, buf: [0; N], pos: 0, end: 0 }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Whether unread input is buffered (PIPELINING: more commands wait).
    pub fn has_buffered(&self) -> bool {
        self.pos < self.end
    }

    /// Moves the unread bytes to the front and reads more after them.
    fn fill_more(&mut self) -> Result<(), ReadError> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        let n = self.inner.read(&mut self.buf[self.end..])?;
        self.end += n;
        if n == 0 { Err(ReadError::Eof) } else { Ok(()) }
    }

    /// Reads one command line into `out`.
    pub fn read_line(&mut self, out: &mut [u8]) -> Result<Line, ReadError> {
        let mut len = 0;
        let mut too_long = false;
        loop {
            if self.pos == self.end {
                self.fill_more()?;
            }
            let a = &self.buf[self.pos..self.end];
            let (take, found) = match find_byte(a, b'\n') {
                Some(i) => (i, true),
                None => (a.len(), false),
            };
            if !too_long {
                if len + take <= out.len() {
                    out[len..len + take].copy_from_slice(&a[..take]);
                    len += take;
                } else {
                    too_long = true;
                }
            }
            self.pos += take + found as usize;
            if found {
                return Ok(if too_long { Line::TooLong } else { Line::Ok(len) });
            }
        }
    }

    /// Reads a DATA section up to CRLF `.` CRLF, passing the stored form
    /// (see the module doc) to `sink`.
    pub fn read_data(&mut self, sink: &mut impl FnMut(&[u8]), st: &mut DataStats) -> Result<(), ReadError> {
        const { assert!(N > 2 * LINE_PEEK) };
        let mut put = |s: &[u8]| {
            st.bytes += s.len() as u64;
            sink(s);
        };
        let mut in_header = true;
        loop {
            // Start of a line: have its first bytes, or all of it.
            while self.end - self.pos < LINE_PEEK && find_byte(self.avail(), b'\n').is_none() {
                self.fill_more()?;
            }
            let a = self.avail();
            if in_header {
                if a.starts_with(b"\r\n") {
                    in_header = false;
                } else {
                    st.header_lines = st.header_lines.saturating_add(1);
                    if starts_ci(a, b"received") || starts_ci(a, b"delivered") {
                        st.hops = st.hops.saturating_add(1);
                    }
                }
            }
            if a[0] == b'.' {
                match a[1] {
                    b'\n' => return Err(ReadError::BareLf),
                    b'\r' if a[2] == b'\n' => {
                        self.pos += 3;
                        return Ok(());
                    }
                    // qmail (blast state 3) keeps the dot of `.` CR x.
                    b'\r' => {}
                    _ => self.pos += 1,
                }
            }
            // The rest of the line, streamed. A CR at the end of what is
            // buffered stays there until the byte after it is read: only
            // then is it known whether it ends the line.
            loop {
                let a = self.avail();
                match find_byte(a, b'\n') {
                    Some(i) => {
                        if i == 0 || a[i - 1] != b'\r' {
                            return Err(ReadError::BareLf);
                        }
                        put(&a[..i - 1]);
                        put(b"\n");
                        self.pos += i + 1;
                        break;
                    }
                    None => {
                        let n = a.len() - a.ends_with(b"\r") as usize;
                        put(&a[..n]);
                        self.pos += n;
                        self.fill_more()?;
                    }
                }
            }
        }
    }
}

/// What `read_data` counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataStats {
    /// Bytes stored (after the transform; the Received line not counted).
    pub bytes: u64,
    /// Header lines starting with `received` or `delivered`.
    pub hops: u32,
    /// Header lines (up to the first empty line).
    pub header_lines: u32,
}

/// A control list (rcpthosts, badmailfrom) matched case-insensitively,
/// as qmail's constmap does. Up to `N` bytes of it are kept in memory;
/// a longer file is scanned again at each lookup instead, so memory stays
/// fixed whatever the file's size. Loaded in place: it lives in the
/// session and is never moved (a move copies all `N` bytes).
pub struct ControlList<const N: usize> {
    buf: ByteBuf<N>,
    found: bool,
    in_memory: bool,
}

impl<const N: usize> ControlList<N> {
    /// An empty list, as for a missing file.
    pub const fn new() -> Self {
        ControlList { buf: ByteBuf::new(), found: false, in_memory: true }
    }

    /// Loads `name`; `found()` tells whether the file exists.
    pub fn load(&mut self, dir: &ControlDir, name: &core::ffi::CStr) -> Result<(), ControlError> {
        let (buf, in_memory) = (&mut self.buf, &mut self.in_memory);
        self.found = dir.for_each_line(name, |line| {
            // Each line with its newline, or the whole list is read again
            // at each lookup.
            *in_memory = buf.room() > line.len() && buf.extend(line) && buf.push(b'\n');
            *in_memory
        })?;
        Ok(())
    }

    /// Whether the file existed.
    pub fn found(&self) -> bool {
        self.found
    }

    /// Whether `key` is a line of the list (case-insensitively). Out of
    /// line: it is called for the sender and for each recipient domain.
    #[inline(never)]
    pub fn contains(&self, dir: &ControlDir, name: &core::ffi::CStr, key: &[u8]) -> Result<bool, ControlError> {
        if !self.found {
            return Ok(false);
        }
        if self.in_memory {
            // Lines are never empty (control_readfile drops those); every
            // one ends in a newline.
            return Ok(self
                .buf
                .as_slice()
                .split(|&b| b == b'\n')
                .any(|l| !l.is_empty() && l.eq_ignore_ascii_case(key)));
        }
        let mut hit = false;
        dir.for_each_line(name, |l| {
            hit = l.eq_ignore_ascii_case(key);
            !hit
        })?;
        Ok(hit)
    }
}

impl<const N: usize> Default for ControlList<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn addr(arg: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut out = [0u8; LINE_MAX];
        parse_address(arg, &mut out).map(|(n, rest)| (out[..n].to_vec(), rest.to_vec()))
    }

    #[test]
    fn commands_split_like_commands_c() {
        assert_eq!(split_command(b"HELO x.y\r"), (Verb::Helo, &b"x.y"[..]));
        assert_eq!(split_command(b"mail   FROM:<a@b>"), (Verb::Mail, &b"FROM:<a@b>"[..]));
        assert_eq!(split_command(b"QuIt"), (Verb::Quit, &b""[..]));
        assert_eq!(split_command(b"DATA\0junk"), (Verb::Data, &b""[..]));
        assert_eq!(split_command(b"RCPT TO:<a\0b>"), (Verb::Rcpt, &b"TO:<a"[..]));
        assert_eq!(split_command(b"STARTTLS").0, Verb::Unknown);
        assert_eq!(split_command(b"H\x05LO x").0, Verb::Unknown);
        assert_eq!(split_command(b"").0, Verb::Unknown);
        assert_eq!(split_command(b" HELO").0, Verb::Unknown);
        // `| 0x20` folds only letters onto the names: `@`, `[` and the
        // like never match.
        assert_eq!(split_command(b"H@LO").0, Verb::Unknown);
        assert_eq!(split_command(b"RCP\x14").0, Verb::Unknown);
        assert_eq!(split_command(b"\xc4ATA").0, Verb::Unknown);
        assert_eq!(split_command(b"vRfY x").0, Verb::Vrfy);
    }

    #[test]
    fn addresses_like_addrparse() {
        assert_eq!(addr(b"FROM:<a@b.c>").unwrap().0, b"a@b.c");
        assert_eq!(addr(b"FROM:<>").unwrap().0, b"");
        assert_eq!(addr(b"TO:<@r1,@r2:u@d>").unwrap().0, b"u@d");
        assert_eq!(addr(b"TO:<\"a b\"@d>").unwrap().0, b"a b@d");
        assert_eq!(addr(b"TO:<\"x>y\"@d>").unwrap().0, b"x>y@d");
        assert_eq!(addr(b"TO:<a\\>b@d>").unwrap().0, b"a>b@d");
        assert_eq!(addr(b"FROM: a@b SIZE=5").unwrap().0, b"a@b");
        assert_eq!(addr(b"FROM:a@b").unwrap().0, b"a@b");
        assert_eq!(
            addr(b"x <a@b> SIZE=100 BODY=8BITMIME").unwrap(),
            (b"a@b".to_vec(), b" SIZE=100 BODY=8BITMIME".to_vec())
        );
        assert_eq!(addr(b"<unterminated").unwrap().0, b"unterminated");
    }

    #[test]
    fn address_length_limit_is_899() {
        let mut ok = b"<".to_vec();
        ok.extend([b'a'; ADDR_MAX]);
        ok.push(b'>');
        assert_eq!(addr(&ok).unwrap().0.len(), ADDR_MAX);
        let mut long = b"<".to_vec();
        long.extend([b'a'; ADDR_MAX + 1]);
        long.push(b'>');
        assert!(addr(&long).is_none());
    }

    #[test]
    fn size_parameter() {
        assert_eq!(size_param(b" SIZE=1000"), Some(1000));
        assert_eq!(size_param(b" BODY=8BITMIME size=7"), Some(7));
        assert_eq!(size_param(b" SIZE=x"), None);
        assert_eq!(size_param(b""), None);
        assert_eq!(size_param(b" SIZE= SIZE=9"), Some(9));
        assert_eq!(size_param(b" SIZE"), None);
    }

    #[test]
    fn relay_hacks() {
        assert!(is_relay_hack(b"u%far.test@local"));
        assert!(is_relay_hack(b"far!u@local"));
        assert!(is_relay_hack(b"u@far.test@local"));
        assert!(is_relay_hack(b"u%far"));
        assert!(!is_relay_hack(b"u@local"));
        assert!(!is_relay_hack(b"postmaster"));
        assert!(!is_relay_hack(b""));
    }

    #[test]
    fn ip_texts() {
        let mut b = [0u8; IP_TEXT_MAX];
        assert_eq!(ip_text(IpLiteral::V4([192, 0, 2, 10]), &mut b), b"192.0.2.10");
        assert_eq!(
            ip_text(IpLiteral::V6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), &mut b),
            b"2001:db8:0:0:0:0:0:1"
        );
        assert_eq!(ip_text(IpLiteral::V6([0xff; 16]), &mut b).len(), IP_TEXT_MAX);
    }

    #[test]
    fn literals() {
        assert_eq!(ip_literal(b"[192.0.2.1]"), Some(IpLiteral::V4([192, 0, 2, 1])));
        assert_eq!(ip_literal(b"[IPv6:::1]"), Some(IpLiteral::V6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])));
        assert_eq!(
            ip_literal(b"[ipv6:2001:db8::2]"),
            Some(IpLiteral::V6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]))
        );
        assert_eq!(ip_literal(b"example.org"), None);
        assert_eq!(ip_literal(b"[1.2.3]"), None);
    }

    #[test]
    fn find_byte_agrees_with_position() {
        let hay: Vec<u8> = (0..200u32).map(|i| (i * 7 % 251) as u8).collect();
        for start in 0..20 {
            for needle in [0u8, 10, 13, 0x80, 0xff, 0x01] {
                let h = &hay[start..];
                assert_eq!(find_byte(h, needle), h.iter().position(|&b| b == needle), "{start} {needle}");
            }
        }
        assert_eq!(find_byte(b"\x0b\x0a", b'\n'), Some(1));
        assert_eq!(find_byte(b"\x01\x00\x0a", b'\n'), Some(2));
    }

    /// A reader handing out its input in pieces of `step` bytes.
    struct Pieces<'a>(&'a [u8], usize);
    impl Read for Pieces<'_> {
        fn read(&mut self, buf: &mut [u8]) -> crate::io::IoResult<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn data(input: &[u8]) -> (Result<(), ReadError>, Vec<u8>, DataStats, Vec<u8>) {
        let mut outs = Vec::new();
        for step in [1, 2, 3, 7, 4096] {
            let mut inp: Input<Pieces<'_>, 64> = Input::new(Pieces(input, step));
            let mut out = Vec::new();
            let mut st = DataStats::default();
            let r = inp.read_data(&mut |s: &[u8]| out.extend_from_slice(s), &mut st);
            let mut rest = Vec::new();
            let mut line = [0u8; 64];
            if r.is_ok() {
                while let Ok(Line::Ok(n)) = inp.read_line(&mut line) {
                    rest.extend_from_slice(&line[..n]);
                    rest.push(b'|');
                }
            }
            outs.push((r, out, st, rest));
        }
        for o in &outs[1..] {
            assert_eq!(o.0, outs[0].0);
            if o.0.is_ok() {
                assert_eq!(o.1, outs[0].1);
                assert_eq!(o.2, outs[0].2);
                assert_eq!(o.3, outs[0].3);
            }
        }
        outs.swap_remove(0)
    }

    #[test]
    fn data_transform_like_blast() {
        let (r, out, st, rest) = data(b"Subject: x\r\n\r\n..dot\r\n.x\r\nbare\rcr\r\n\r\r\n.\r\nQUIT\r\n");
        assert_eq!(r, Ok(()));
        assert_eq!(out, b"Subject: x\n\n.dot\nx\nbare\rcr\n\r\n");
        assert_eq!(st.bytes, out.len() as u64);
        assert_eq!(st.header_lines, 1);
        assert_eq!(rest, b"QUIT\r|");
    }

    #[test]
    fn dot_cr_quirk_keeps_the_dot() {
        let (r, out, _, _) = data(b".\rx\r\n.\r\r\n.\r\n");
        assert_eq!(r, Ok(()));
        assert_eq!(out, b".\rx\n.\r\n");
    }

    #[test]
    fn empty_message_and_long_lines() {
        assert_eq!(data(b".\r\n").1, b"");
        let mut long = std::vec![b'x'; 1000];
        long.extend(b"\r\n.\r\n");
        let (r, out, _, _) = data(&long);
        assert_eq!(r, Ok(()));
        assert_eq!(out.len(), 1001);
    }

    #[test]
    fn bare_lf_anywhere_is_refused() {
        for bad in [&b"a\nb\r\n.\r\n"[..], b"\n.\r\n", b".\n", b"x\r\n.\n", b"ok\r\n\r\nbody\n.\r\n", b"x\r\r\n\n"] {
            assert_eq!(data(bad).0, Err(ReadError::BareLf), "{:?}", std::string::String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn eof_inside_data_is_eof() {
        assert_eq!(data(b"abc\r\n").0, Err(ReadError::Eof));
        assert_eq!(data(b"abc\r\n.\r").0, Err(ReadError::Eof));
    }

    #[test]
    fn hops_count_received_and_delivered_header_lines_only() {
        let (r, _, st, _) = data(
            b"Received: a\r\nRECEIVED b\r\nDelivered-To: c\r\nreceive\r\nX: y\r\n received\r\n\r\nReceived: body\r\n.\r\n",
        );
        assert_eq!(r, Ok(()));
        assert_eq!(st.hops, 3);
        assert_eq!(st.header_lines, 6);
    }

    #[test]
    fn command_lines_are_bounded() {
        let mut input = std::vec![b'A'; 5000];
        input.extend(b"\r\nNOOP\r\n");
        let mut inp: Input<Pieces<'_>, 64> = Input::new(Pieces(&input, 100));
        let mut line = [0u8; LINE_MAX];
        assert_eq!(inp.read_line(&mut line), Ok(Line::TooLong));
        assert_eq!(inp.read_line(&mut line), Ok(Line::Ok(5)));
        assert_eq!(&line[..5], b"NOOP\r");
        assert_eq!(inp.read_line(&mut line), Err(ReadError::Eof));
    }
}
