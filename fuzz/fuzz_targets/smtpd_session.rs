//! A whole smtpd-front session in process: `picoq_core::smtpd::Session`,
//! the code smtpd-front runs, with the fuzz input as the client's bytes and
//! the replies gathered in memory. Its control files are fixed (a private
//! directory: rcpthosts, badmailfrom, maxrcpt); the queue is a stub that
//! takes every message. The first input byte picks the rest of the set-up:
//! RELAYCLIENT, $DATABYTES, a timeout instead of the end of input, and
//! whether the client sends one byte per read (then each reply can be
//! matched with the command line that caused it) or as much as is asked.
//!
//! Properties: no panic; the session ends; every reply line is
//! `DDD[ -]text\r\n` with a code from 2xx to 5xx; the output is bounded by
//! the input (no reply amplification); without RELAYCLIENT no recipient
//! outside rcpthosts is accepted, neither with `250 ok` to its RCPT nor in
//! an envelope handed to the queue.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::control::ControlDir;
use picoq_core::io::{IoError, IoResult, Read};
use picoq_core::queue::{EnvelopeBuf, TEXT_MAX};
use picoq_core::rustix::fd::{AsFd, OwnedFd};
use picoq_core::rustix::fs::{Mode, OFlags, open};
use picoq_core::smtp::{IpLiteral, LINE_MAX, Verb, last_at, parse_address, split_command};
use picoq_core::smtpd::{ENV_MEM, End, Peers, Queue, Session, Transport};
use picoq_core::spill::Handoff;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The set-up byte's flags.
const RELAYCLIENT: u8 = 1;
const DATABYTES: u8 = 2;
const TIMEOUT_AT_END: u8 = 4;
const BIG_READS: u8 = 8;
/// Reply bytes allowed per input byte (the worst is `\n`, 27 bytes of
/// `502 unimplemented`) and in all (the greeting, a final 451).
const OUT_PER_BYTE: usize = 32;
const OUT_FIXED: usize = 256;

/// The control directory, written once per process.
fn home() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("picoq-fuzz-smtpd-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        for (name, text) in [
            ("me", "fuzz.example\n"),
            ("rcpthosts", "example.org\n.example.net\n"),
            ("badmailfrom", "bad@bad.test\n@spam.test\n"),
            ("maxrcpt", "5\n"),
        ] {
            std::fs::write(d.join(name), text).unwrap();
        }
        d
    })
}

/// What rcpthosts above allows (qmail's rules, written again here): no
/// domain, the domain itself, or a subdomain of a `.suffix` line; never a
/// relay hack in the local part.
fn allowed(addr: &[u8]) -> bool {
    let Some(at) = last_at(addr) else { return true };
    if addr[..at].iter().any(|&b| b == b'%' || b == b'!' || b == b'@') {
        return false;
    }
    let dom = addr[at + 1..].to_ascii_lowercase();
    dom == b"example.org" || dom.ends_with(b".example.net")
}

/// The client: input handed out `chunk` bytes per read, replies kept.
struct Mem<'a> {
    input: &'a [u8],
    pos: usize,
    chunk: usize,
    timeout_at_end: bool,
    out: Vec<u8>,
    /// (input bytes read, output length) at each read.
    marks: Vec<(usize, usize)>,
}

impl Read for Mem<'_> {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        self.marks.push((self.pos, self.out.len()));
        let n = buf.len().min(self.chunk).min(self.input.len() - self.pos);
        if n == 0 && self.timeout_at_end {
            return Err(IoError::Timeout);
        }
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Transport for Mem<'_> {
    fn put(&mut self, s: &[u8]) {
        self.out.extend_from_slice(s);
    }
    fn flush(&mut self) {}
    fn set_timeout(&mut self, _: u32) {}
    fn log(&mut self, line: &[u8]) {
        assert!(line.ends_with(b"\n"));
    }
}

/// The queue: takes every message, after checking its envelope.
struct Stub {
    relay: bool,
}

impl Queue for Stub {
    fn enqueue<'t>(
        &mut self,
        _file: &OwnedFd,
        env: &mut EnvelopeBuf<'_, ENV_MEM>,
        _text: &'t mut [u8; TEXT_MAX],
    ) -> Result<u32, &'t [u8]> {
        let bytes = match env.finish().unwrap() {
            Handoff::Memory(b) => b.to_vec(),
            Handoff::File(fd) => {
                let mut v = Vec::new();
                let mut b = [0u8; 4096];
                loop {
                    let n = picoq_core::rustix::io::read(fd.as_fd(), &mut b).unwrap();
                    if n == 0 {
                        break;
                    }
                    v.extend_from_slice(&b[..n]);
                }
                v
            }
        };
        assert!(bytes.starts_with(b"F") && bytes.ends_with(b"\0\0"));
        let items: Vec<&[u8]> = bytes[..bytes.len() - 2].split(|&b| b == 0).collect();
        assert!(items.len() >= 2, "no recipient: {bytes:?}");
        for t in &items[1..] {
            assert_eq!(t[0], b'T');
            assert!(self.relay || allowed(&t[1..]), "queued for {:?}", String::from_utf8_lossy(t));
        }
        Ok(4242)
    }
}

fn check_replies(out: &[u8]) {
    assert!(out.is_empty() || out.ends_with(b"\r\n"), "unterminated reply");
    for l in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let text = l.strip_suffix(b"\r").expect("bare LF in a reply");
        assert!(!text.contains(&b'\r'), "bare CR in a reply");
        assert!(
            text.len() >= 4
                && (b'2'..=b'5').contains(&text[0])
                && text[1..3].iter().all(u8::is_ascii_digit)
                && (text[3] == b' ' || text[3] == b'-'),
            "bad reply line {:?}",
            String::from_utf8_lossy(l)
        );
    }
}

/// With one byte per read, the replies written between two reads answer
/// the line that ended at the first of them.
fn check_rcpt_replies(input: &[u8], m: &Mem<'_>) {
    for w in m.marks.windows(2) {
        let ((p, o0), (_, o1)) = (w[0], w[1]);
        if &m.out[o0..o1] != b"250 ok\r\n" {
            continue;
        }
        assert_eq!(input[p], b'\n');
        let start = input[..p].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let line = &input[start..p];
        if line.len() > LINE_MAX {
            continue;
        }
        if let (Verb::Rcpt, arg) = split_command(line) {
            let mut a = [0u8; 4096];
            let (n, _) = parse_address(arg, &mut a).expect("250 to an unparsable RCPT");
            assert!(allowed(&a[..n]), "250 to RCPT {:?}", String::from_utf8_lossy(line));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, input)) = data.split_first() else { return };
    let relay = setup & RELAYCLIENT != 0;
    let c = CString::new(home().to_str().unwrap()).unwrap();
    let dir = open(c.as_c_str(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
    let peers = Peers {
        remote_ip: b"192.0.2.1",
        remote_host: b"client.example",
        remote_info: None,
        local: b"fuzz.example",
        relayclient: if relay { Some(b"") } else { None },
        local_ip: Some(IpLiteral::V4([192, 0, 2, 25])),
    };
    let mem = Mem {
        input,
        pos: 0,
        chunk: if setup & BIG_READS != 0 { usize::MAX } else { 1 },
        timeout_at_end: setup & TIMEOUT_AT_END != 0,
        out: Vec::new(),
        marks: Vec::new(),
    };
    let mut s = Box::new(Session::new(ControlDir::from_dir(dir), peers, c"/tmp", mem, Stub { relay }));
    let databytes = if setup & DATABYTES != 0 { Some(c"100") } else { None };
    s.read_config(databytes).unwrap();
    let end = s.run();
    let m = s.client();
    assert!(end == End(0) || end == End(1));
    assert!(m.out.starts_with(b"220 fuzz.example ESMTP\r\n"));
    assert!(m.out.len() <= OUT_FIXED + OUT_PER_BYTE * input.len(), "{} reply bytes for {}", m.out.len(), input.len());
    check_replies(&m.out);
    if !relay && m.chunk == 1 {
        check_rcpt_replies(input, m);
    }
});
