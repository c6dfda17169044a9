//! QMQP, client side (cr.yp.to/proto/qmqp.html).
//!
//! A packet is one netstring whose content is netstring(message) ‖
//! netstring(sender) ‖ netstring(recipient)…; the server answers with one
//! netstring starting with `K` (accepted), `Z` (temporary failure) or `D`
//! (permanent failure), the rest being text for humans.
//!
//! The packet is streamed: its length header, the message straight from a
//! file (sendfile), then the envelope netstrings from a `Spill`. Nothing
//! holds the whole message in memory.

use crate::bytes::memchr;
use crate::io::{IoError, read_timeout, write_all_timeout};
use crate::net::{SendError, send_file_range};
use crate::netstring::{self, HEADER_MAX};
use crate::num::parse_u64;
use crate::spill::Spill;
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// The QMQP TCP port.
pub const PORT: u16 = 628;
/// Bytes of a server reply picoq reads; the text beyond is not needed.
pub const REPLY_MAX: usize = 512;
/// Longest reply text passed on (it may end up in an SMTP reply line,
/// which RFC 5321 caps at 512 bytes with the code).
pub const REPLY_TEXT_MAX: usize = 400;
static_assertions::const_assert!(REPLY_TEXT_MAX + 8 <= REPLY_MAX);

/// The message part of a packet: a byte range of a readable file.
#[derive(Clone, Copy)]
pub struct MessageFile<'a> {
    pub fd: BorrowedFd<'a>,
    pub offset: u64,
    pub len: u64,
}

/// Appends `addr` as a netstring to the envelope part. Three pushes: per
/// recipient a few instructions more than reserving room for the whole
/// netstring first, and ~250 B less code (qmqpc's 20 KiB budget).
pub fn push_address<const N: usize>(tail: &mut Spill<'_, N>, addr: &[u8]) -> Result<(), Errno> {
    let mut h = [0u8; HEADER_MAX];
    tail.push(netstring::header(addr.len() as u64, &mut h))?;
    tail.push(addr)?;
    tail.push(b",")
}

/// Starts the envelope part: the comma that closes the message netstring.
pub fn start_tail<const N: usize>(tail: &mut Spill<'_, N>) -> Result<(), Errno> {
    tail.push(b",")
}

/// Ends the envelope part: the comma that closes the packet.
pub fn finish_tail<const N: usize>(tail: &mut Spill<'_, N>) -> Result<(), Errno> {
    tail.push(b",")
}

/// Sends the whole packet. `Ok` means the last byte was written: from then
/// on the server may have accepted the message.
pub fn send_packet<const N: usize>(
    sock: BorrowedFd<'_>,
    message: &MessageFile<'_>,
    tail: &Spill<'_, N>,
    secs: u32,
) -> Result<(), SendError> {
    // The two headers, the packet's then the message's, end to end.
    let mut head = [0u8; 2 * HEADER_MAX];
    let inner = netstring::header_at(message.len, &mut head);
    // The tail holds the message's closing comma and the packet's closing
    // comma; only the first belongs to the packet's content.
    let content = (head.len() - inner) as u64 + message.len + tail.len() - 1;
    let outer = netstring::header_at(content, head.get_mut(..inner).unwrap_or_default());
    write_all_timeout(sock, head.get(outer..).unwrap_or_default(), secs).map_err(SendError::Net)?;
    send_file_range(sock, message.fd, message.offset, message.len, secs)?;
    tail.send(sock, secs)
}

/// The server's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `K`: accepted for all recipients.
    Accepted(&'a [u8]),
    /// `Z`: temporary failure.
    Temporary(&'a [u8]),
    /// `D`: permanent failure.
    Permanent(&'a [u8]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyError {
    Io(IoError),
    /// The server closed the connection before a complete reply.
    Eof,
    /// Not a netstring starting with K, Z or D.
    Malformed,
}

/// Reads the server's reply within `secs` seconds per read.
pub fn read_reply<'b>(sock: BorrowedFd<'_>, secs: u32, buf: &'b mut [u8; REPLY_MAX]) -> Result<Reply<'b>, ReplyError> {
    let mut have = 0;
    // Read until the reply netstring is complete, or the buffer is full
    // (a long text is cut: the kind letter is what matters).
    let (start, end) = loop {
        let n = read_timeout(sock, &mut buf[have..], secs).map_err(ReplyError::Io)?;
        if n == 0 {
            return Err(ReplyError::Eof);
        }
        have += n;
        let data = &buf[..have];
        let colon = memchr(b':', data);
        // Refuse garbage at once rather than wait for a colon that may
        // never come.
        let digits = &data[..colon.unwrap_or(have)];
        if digits.len() > netstring::MAX_LEN_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
            return Err(ReplyError::Malformed);
        }
        let Some(colon) = colon else { continue };
        // A length without leading zeros; a reply is never empty.
        let len = match parse_u64(&data[..colon]) {
            Some(len) if len > 0 && data[0] != b'0' => len,
            _ => return Err(ReplyError::Malformed),
        };
        let start = colon + 1;
        let end = (start as u64).saturating_add(len);
        if end < have as u64 {
            if data[end as usize] != b',' {
                return Err(ReplyError::Malformed);
            }
            break (start, end as usize);
        }
        if have == REPLY_MAX {
            break (start, have);
        }
    };
    let text = &buf[start + 1..end];
    match buf[start] {
        b'K' => Ok(Reply::Accepted(text)),
        b'Z' => Ok(Reply::Temporary(text)),
        b'D' => Ok(Reply::Permanent(text)),
        _ => Err(ReplyError::Malformed),
    }
}

/// Copies `text` into `out` for use in logs and SMTP replies: at most
/// `REPLY_TEXT_MAX` bytes, every byte outside printable ASCII replaced by
/// `?` so a server cannot inject line breaks into a client's reply.
pub fn sanitize_text<'o>(text: &[u8], out: &'o mut [u8]) -> &'o [u8] {
    let mut n = 0;
    for (o, &b) in out.iter_mut().zip(text).take(REPLY_TEXT_MAX) {
        *o = if (0x20..0x7f).contains(&b) { b } else { b'?' };
        n += 1;
    }
    &out[..n]
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::io::write_all_nointr;
    use crate::testutil::{open, pair, read_to_end};
    use rustix::fd::AsFd;

    fn reply_of(wire: &[u8]) -> Result<(u8, std::vec::Vec<u8>), ReplyError> {
        let (a, b) = pair();
        write_all_nointr(a.as_fd(), wire).unwrap();
        drop(a);
        let mut buf = [0u8; REPLY_MAX];
        read_reply(b.as_fd(), 5, &mut buf).map(|r| match r {
            Reply::Accepted(t) => (b'K', t.to_vec()),
            Reply::Temporary(t) => (b'Z', t.to_vec()),
            Reply::Permanent(t) => (b'D', t.to_vec()),
        })
    }

    #[test]
    fn parses_the_three_kinds() {
        assert_eq!(reply_of(b"22:Kok 1234567890 qp 4242,"), Ok((b'K', b"ok 1234567890 qp 4242".to_vec())));
        assert_eq!(reply_of(b"5:Zbusy,"), Ok((b'Z', b"busy".to_vec())));
        assert_eq!(reply_of(b"1:D,"), Ok((b'D', b"".to_vec())));
    }

    #[test]
    fn refuses_bad_replies() {
        assert_eq!(reply_of(b"5:Xbusy,"), Err(ReplyError::Malformed));
        assert_eq!(reply_of(b"0:,"), Err(ReplyError::Malformed));
        assert_eq!(reply_of(b"5:Zbusy;"), Err(ReplyError::Malformed));
        assert_eq!(reply_of(b"hello"), Err(ReplyError::Malformed));
        assert_eq!(reply_of(b"5:Zbu"), Err(ReplyError::Eof));
        assert_eq!(reply_of(b""), Err(ReplyError::Eof));
    }

    #[test]
    fn long_reply_is_cut_not_refused() {
        let mut wire = std::vec::Vec::from(&b"2000:D"[..]);
        wire.extend(std::iter::repeat_n(b'x', 1999));
        wire.push(b',');
        let (k, t) = reply_of(&wire).unwrap();
        assert_eq!(k, b'D');
        assert_eq!(t.len(), REPLY_MAX - 6);
    }

    #[test]
    fn silent_server_times_out() {
        let (_a, b) = pair();
        let mut buf = [0u8; REPLY_MAX];
        assert_eq!(read_reply(b.as_fd(), 0, &mut buf), Err(ReplyError::Io(IoError::Timeout)));
    }

    #[test]
    fn sanitizes_control_bytes() {
        let mut out = [0u8; REPLY_TEXT_MAX];
        assert_eq!(sanitize_text(b"bad\r\n250 ok\x00\xff", &mut out), b"bad??250 ok??");
    }

    #[test]
    fn packet_matches_the_seed_example() {
        // seeds/003: `45:0:,17:jason@example.net,17:jason@example.net,,`
        let tmp = std::ffi::CString::new(std::env::temp_dir().to_str().unwrap()).unwrap();
        let mut tail: Spill<'_, 64> = Spill::new(&tmp);
        start_tail(&mut tail).unwrap();
        push_address(&mut tail, b"jason@example.net").unwrap();
        push_address(&mut tail, b"jason@example.net").unwrap();
        finish_tail(&mut tail).unwrap();
        let empty = open(c"/dev/null");
        let msg = MessageFile { fd: empty.as_fd(), offset: 0, len: 0 };
        let (a, b) = pair();
        send_packet(b.as_fd(), &msg, &tail, 5).unwrap();
        drop(b);
        let out = read_to_end(&a);
        assert_eq!(out, b"45:0:,17:jason@example.net,17:jason@example.net,,");
    }
}
