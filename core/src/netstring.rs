//! Netstrings (cr.yp.to/proto/netstrings.txt): `LEN:BYTES,` where LEN is
//! decimal without leading zeros (except `0` itself).
//!
//! The decoder is streaming and bounded: `LenParser` takes the header one
//! byte at a time and refuses lengths above the caller's limit before any
//! body byte is read, so a hostile peer cannot make picoq wait for or store
//! more than it allows.

use crate::num::{U64_DIGITS, digits, put_dec};

/// Longest length header accepted (digits); 20 digits hold any u64.
pub const MAX_LEN_DIGITS: usize = 20;

/// Bytes needed to encode a header `LEN:` for any length.
pub const HEADER_MAX: usize = U64_DIGITS + 1;

/// Writes the header `LEN:` into `buf`, returning it.
pub fn header(len: u64, buf: &mut [u8; HEADER_MAX]) -> &[u8] {
    let start = header_at(len, buf);
    &buf[start..]
}

/// Writes the header `LEN:` at the end of `buf` (which must have room for
/// `HEADER_MAX` bytes), returning where it starts: headers can be put one
/// before the other without copying.
pub fn header_at(len: u64, buf: &mut [u8]) -> usize {
    match buf.split_last_mut() {
        Some((colon, digits)) => {
            *colon = b':';
            put_dec(len, digits)
        }
        None => 0,
    }
}

/// Total encoded size of a netstring with a `len`-byte body.
pub fn encoded_len(len: u64) -> u64 {
    digits(len) as u64 + 1 + len + 1
}

/// Encodes `body` as a netstring into `out`; `None` if it does not fit.
pub fn encode<'a>(body: &[u8], out: &'a mut [u8]) -> Option<&'a [u8]> {
    let total = encoded_len(body.len() as u64) as usize;
    if total > out.len() {
        return None;
    }
    let mut h = [0u8; HEADER_MAX];
    let h = header(body.len() as u64, &mut h);
    out[..h.len()].copy_from_slice(h);
    out[h.len()..h.len() + body.len()].copy_from_slice(body);
    out[total - 1] = b',';
    Some(&out[..total])
}

/// What is wrong with a netstring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetstringError {
    /// A byte other than a digit or `:` in the header, an empty length, or
    /// a leading zero.
    BadHeader,
    /// The announced length exceeds the caller's limit.
    TooLong,
    /// The byte after the body is not `,`.
    NoComma,
    /// Input ended inside the netstring.
    Truncated,
}

/// Streaming parser for a netstring's `LEN:` header.
pub struct LenParser {
    len: u64,
    ndigits: usize,
    max: u64,
}

impl LenParser {
    /// A parser that refuses lengths above `max`.
    pub const fn new(max: u64) -> LenParser {
        LenParser { len: 0, ndigits: 0, max }
    }

    /// Feeds one header byte; returns `Ok(Some(len))` at the `:`.
    pub fn push(&mut self, b: u8) -> Result<Option<u64>, NetstringError> {
        match b {
            b'0'..=b'9' => {
                // "0" may only stand alone: "01:" is not a netstring.
                if self.ndigits == 1 && self.len == 0 {
                    return Err(NetstringError::BadHeader);
                }
                self.ndigits += 1;
                if self.ndigits > MAX_LEN_DIGITS {
                    return Err(NetstringError::TooLong);
                }
                self.len = self
                    .len
                    .checked_mul(10)
                    .and_then(|v| v.checked_add((b - b'0') as u64))
                    .ok_or(NetstringError::TooLong)?;
                if self.len > self.max {
                    return Err(NetstringError::TooLong);
                }
                Ok(None)
            }
            b':' if self.ndigits > 0 => Ok(Some(self.len)),
            _ => Err(NetstringError::BadHeader),
        }
    }
}

/// Decodes one netstring at the start of `input` whose body is at most
/// `max` bytes; returns the body and the bytes after the comma.
pub fn decode(input: &[u8], max: u64) -> Result<(&[u8], &[u8]), NetstringError> {
    let mut p = LenParser::new(max);
    for (i, &b) in input.iter().enumerate() {
        if let Some(len) = p.push(b)? {
            let start = i + 1;
            let len = len as usize;
            let rest = &input[start..];
            if rest.len() <= len {
                return Err(NetstringError::Truncated);
            }
            if rest[len] != b',' {
                return Err(NetstringError::NoComma);
            }
            return Ok((&rest[..len], &rest[len + 1..]));
        }
    }
    Err(NetstringError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_the_spec() {
        let mut out = [0u8; 32];
        assert_eq!(encode(b"hello world!", &mut out), Some(&b"12:hello world!,"[..]));
        assert_eq!(encode(b"", &mut out), Some(&b"0:,"[..]));
        assert_eq!(encode(&[b'x'; 40], &mut out), None);
        assert_eq!(encoded_len(12), 16);
        assert_eq!(encoded_len(0), 3);
    }

    #[test]
    fn decodes_the_seed_packet() {
        // seeds/003: an empty message, sender and one recipient.
        let pkt = b"45:0:,17:jason@example.net,17:jason@example.net,,";
        let (body, rest) = decode(pkt, 1000).unwrap();
        assert!(rest.is_empty());
        let (msg, r) = decode(body, 100).unwrap();
        assert_eq!(msg, b"");
        let (from, r) = decode(r, 100).unwrap();
        assert_eq!(from, b"jason@example.net");
        let (to, r) = decode(r, 100).unwrap();
        assert_eq!(to, b"jason@example.net");
        assert!(r.is_empty());
    }

    #[test]
    fn refuses_malformed_headers() {
        assert_eq!(decode(b"01:a,", 10), Err(NetstringError::BadHeader));
        assert_eq!(decode(b":a,", 10), Err(NetstringError::BadHeader));
        assert_eq!(decode(b"-1:a,", 10), Err(NetstringError::BadHeader));
        assert_eq!(decode(b" 1:a,", 10), Err(NetstringError::BadHeader));
        assert_eq!(decode(b"1a,", 10), Err(NetstringError::BadHeader));
    }

    #[test]
    fn refuses_lengths_over_the_limit_before_the_body() {
        assert_eq!(decode(b"11:", 10), Err(NetstringError::TooLong));
        assert_eq!(decode(b"99999999999999999999999:", u64::MAX), Err(NetstringError::TooLong));
        let mut p = LenParser::new(5);
        assert_eq!(p.push(b'6'), Err(NetstringError::TooLong));
    }

    #[test]
    fn refuses_missing_comma_and_truncation() {
        assert_eq!(decode(b"3:abc;", 10), Err(NetstringError::NoComma));
        assert_eq!(decode(b"3:abc", 10), Err(NetstringError::Truncated));
        assert_eq!(decode(b"3:ab", 10), Err(NetstringError::Truncated));
        assert_eq!(decode(b"3", 10), Err(NetstringError::Truncated));
        assert_eq!(decode(b"", 10), Err(NetstringError::Truncated));
    }

    #[test]
    fn zero_alone_is_fine() {
        assert_eq!(decode(b"0:,x", 0), Ok((&b""[..], &b"x"[..])));
    }
}
