//! qmqpd — the gateway side of QMQP (a drop-in qmail-qmqpd): reads one
//! packet on fd 0, prepends a Received line, and hands the message to
//! `$QMAILQUEUE` or `HOME/bin/qmail-queue` — or, given a Maildir as its
//! argument, delivers it there. Answers `Kok <time> qp <pid>` or the
//! queue's D/Z text on fd 1. See qmqpd(8).
//!
//! Flow: the packet header, the message (copied once into an unlinked
//! file, the Received line first), the envelope (each address bounded;
//! a bad one is read past and makes the answer a D), the closing comma,
//! then the hand-off. Bad syntax gets no answer at all and exit 100, as in
//! qmail: the client reports a temporary failure.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::ffi::CStr;
use core::mem::ManuallyDrop;
use picoq_core::control::{ControlDir, ControlError};
use picoq_core::die::Die;
use picoq_core::io::{IoError, copy_to_end, read_timeout, write_all_nointr, write_all_timeout};
use picoq_core::maildir::Maildir;
use picoq_core::num::{U64_DIGITS, fmt_u64};
use picoq_core::queue::{self, EnvelopeBuf};
use picoq_core::received::{Trace, write_received};
use picoq_core::rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use picoq_core::rustix::io::Errno;
use picoq_core::spill::{Handoff, Spill};
use picoq_core::sys::{self, ByteBuf, Start};
use picoq_core::{netstring, qq, tmpfile};

const DIE: Die = Die::new("qmqpd");
/// qmail-qmqpd's hard limit on any length: a bigger packet is refused as
/// a resource problem (exit 111) before anything is read.
const LEN_MAX: u64 = 200_000_000;
/// An address of this many bytes or more is refused (qmail-qmqpd).
const ADDR_LIMIT: usize = 1000;
/// The whole conversation must end within this many seconds (qmail's
/// `alarm(3600)`).
const DEADLINE: u64 = 3600;
/// Bytes read from the client at a time.
const READ_BUF: usize = 8192;
/// Envelope bytes kept in memory before they spill to a file.
const ENV_MEM: usize = 2048;
/// Exit codes: qmail-qmqpd's.
const EXIT_SYNTAX: i32 = 100;
const EXIT_RESOURCES: i32 = 111;

const D_ADDRESS: &[u8] = b"Dsorry, I can't accept addresses like that (#5.1.3)";
const D_DATABYTES: &[u8] = b"Dsorry, that message size exceeds my databytes limit (#5.3.4)";

picoq_core::entry!("qmqpd", run);

fn run(start: Start) -> ! {
    sys::block_sigpipe();
    let home = start.env(b"PICOQ_HOME").unwrap_or(picoq_core::HOME);
    let maildir = start.arg(1);
    let databytes = read_databytes(home);
    let tmpdir = match start.env(b"TMPDIR") {
        Some(t) if !t.is_empty() => t,
        _ => c"/tmp",
    };
    let mut client = Client { pos: 0, end: 0, left: 0, deadline: sys::unix_time() + DEADLINE, buf: [0; READ_BUF] };

    // The packet: LEN ':' then LEN bytes (message, sender, recipients) ','.
    client.left = u64::MAX;
    let packet = client.length();
    // The content and the comma that closes it.
    client.left = packet + 1;
    let len = client.length();
    let too_big = databytes > 0 && len > databytes;

    let file =
        tmpfile::anonymous(tmpdir).unwrap_or_else(|e| resources(b"unable to create a temporary file", IoError::Os(e)));
    let mut out = Writer { fd: file.as_fd(), failed: false };
    let trace = Trace {
        local: start.env(b"TCPLOCALHOST").map_or_else(|| env_or_unknown(&start, b"TCPLOCALIP"), CStr::to_bytes),
        remote_ip: env_or_unknown(&start, b"TCPREMOTEIP"),
        remote_host: env_or_unknown(&start, b"TCPREMOTEHOST"),
        remote_info: start.env(b"TCPREMOTEINFO").map(CStr::to_bytes),
        helo: None,
    };
    if !too_big {
        write_received(&mut |b: &[u8]| out.write(b), &trace, b"QMQP", sys::unix_time());
    }
    client.copy(len, if too_big { None } else { Some(&mut out) });
    client.comma();
    if out.failed {
        resources(b"unable to write a temporary file", IoError::Os(Errno::IO));
    }

    // The envelope: the sender, then recipients until the packet ends. For
    // a Maildir it becomes the header lines at once (`Return-Path`, one
    // `Delivered-To` per recipient), kept in the envelope's store, so it is
    // never read back.
    let mut env: EnvelopeBuf<'_, ENV_MEM> = EnvelopeBuf::new(tmpdir);
    let mut bad = false;
    let mut kind = b'F';
    let mut rcpts = 0u64;
    // A block: the address buffer's stack space is free for what follows.
    {
        let mut addr = [0u8; ADDR_LIMIT];
        while kind == b'F' || client.left > 1 {
            match client.address(&mut addr) {
                Some(a) => {
                    let pushed = match maildir {
                        None => env.push(kind, a),
                        Some(_) => push_header(env.store(), kind, a),
                    };
                    if pushed.is_err() {
                        resources(b"unable to write a temporary file", IoError::Os(Errno::IO));
                    }
                }
                None => bad = true,
            }
            rcpts += (kind == b'T') as u64;
            kind = b'T';
        }
    }
    client.comma();
    if client.left != 0 {
        syntax();
    }

    let mut text = [0u8; queue::TEXT_MAX];
    let answer: Result<u32, &[u8]> = if bad {
        Err(D_ADDRESS)
    } else if too_big {
        Err(D_DATABYTES)
    } else {
        match maildir {
            // The client's read buffer is free now: it carries the copies.
            Some(path) => deliver(path, &file, env.store(), &trace, &mut client.buf),
            None => {
                let program = start.env(b"QMAILQUEUE").unwrap_or(c"bin/qmail-queue");
                // qmail's callers run bin/qmail-queue from the home.
                if picoq_core::rustix::process::chdir(home).is_err() {
                    Err(qq::exit_text(qq::HOME_ERROR))
                } else {
                    queue::enqueue(&start, program, &file, &mut env, &mut text)
                }
            }
        }
    };
    reply(&trace, rcpts, len, answer)
}

/// tcpserver's variable `name`, `unknown` when unset.
#[inline(never)]
fn env_or_unknown(start: &Start, name: &[u8]) -> &'static [u8] {
    start.env(name).map_or(b"unknown", CStr::to_bytes)
}

/// `control/databytes`: the largest message accepted, 0 for no limit. A
/// missing home means no control files (a Maildir gateway needs none; the
/// queue hand-off reports the missing home in its answer).
#[inline(never)]
fn read_databytes(home: &CStr) -> u64 {
    let control = match ControlDir::open(home) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => control_fatal(b"", e),
        Err(_) => return 0,
    };
    // The only control file qmqpd reads: the smaller reader.
    match control.read_u32_unbuffered(c"databytes", 0) {
        Ok(v) => v as u64,
        Err(e) => control_fatal(b"databytes", e),
    }
}

fn control_fatal(name: &[u8], e: ControlError) -> ! {
    match e {
        ControlError::LineTooLong => DIE.fatal(EXIT_RESOURCES, &[b"line too long in control/", name]),
        ControlError::Os(e) => DIE.fatal_io(EXIT_RESOURCES, b"unable to read control/", name, IoError::Os(e)),
    }
}

/// Writes the answer netstring, logs one line, exits 0.
fn reply(trace: &Trace<'_>, rcpts: u64, len: u64, answer: Result<u32, &[u8]>) -> ! {
    let mut d = [0u8; U64_DIGITS];
    let mut kok: ByteBuf<{ 8 + 2 * U64_DIGITS }> = ByteBuf::new();
    let text: &[u8] = match answer {
        Ok(qp) => {
            kok.extend(b"Kok ");
            kok.extend(fmt_u64(sys::unix_time(), &mut d));
            kok.extend(b" qp ");
            kok.extend(fmt_u64(qp as u64, &mut d));
            kok.as_slice()
        }
        Err(why) => why,
    };
    // The answer netstring in one write. Every answer text fits: the
    // queue's custom text is cut to queue::TEXT_MAX, the fixed ones are
    // shorter.
    let mut out: ByteBuf<{ netstring::HEADER_MAX + queue::TEXT_MAX + 1 }> = ByteBuf::new();
    let text = &text[..text.len().min(queue::TEXT_MAX)];
    let mut h = [0u8; netstring::HEADER_MAX];
    out.extend(netstring::header(text.len() as u64, &mut h));
    out.extend(text);
    out.push(b',');
    let sent = write_all_timeout(sys::std_fd(1), out.as_slice(), 60);
    let mut n = [0u8; U64_DIGITS];
    let mut r = [0u8; U64_DIGITS];
    DIE.info(&[trace.remote_ip, b" rcpts=", fmt_u64(rcpts, &mut r), b" bytes=", fmt_u64(len, &mut n), b" ", text]);
    if let Err(e) = sent {
        DIE.warn_io(b"unable to send the answer", b"", e);
    }
    sys::exit(0)
}

/// The Maildir header line for envelope item `kind` (`F` sender, `T`
/// recipient), what qmail-local writes: `Return-Path: <sender>` and
/// `Delivered-To: rcpt`. Control characters in `addr` become `?` so no
/// address can add a header.
fn push_header<const N: usize>(out: &mut Spill<'_, N>, kind: u8, addr: &mut [u8]) -> Result<(), Errno> {
    for b in addr.iter_mut() {
        if *b < 0x20 || *b == 0x7f {
            *b = b'?';
        }
    }
    let (open, close): (&[u8], &[u8]) =
        if kind == b'F' { (b"Return-Path: <", b">\n") } else { (b"Delivered-To: ", b"\n") };
    out.push(open)?;
    out.push(addr)?;
    out.push(close)
}

/// Delivers into the Maildir at `path`: the header lines made from the
/// envelope (`push_header`), then the Received line and the message.
fn deliver<'t, const N: usize>(
    path: &CStr,
    file: &OwnedFd,
    headers: &mut Spill<'_, N>,
    trace: &Trace<'_>,
    buf: &mut [u8],
) -> Result<u32, &'t [u8]> {
    const Z_MAILDIR: &[u8] = b"Zunable to deliver to the maildir (#4.3.0)";
    let fail = |what: &[u8], e| -> &'t [u8] {
        DIE.warn_io(what, path.to_bytes(), IoError::Os(e));
        Z_MAILDIR
    };
    // qmqpd exits once it has answered: the Maildir's descriptors close
    // with the process, and closing them here would only add code.
    let md = ManuallyDrop::new(Maildir::open(path).map_err(|e| fail(b"unable to open maildir ", e))?);
    let host = trace.local;
    let draft = md.create(sys::unix_time(), 0, 0, host).map_err(|e| fail(b"unable to create a file in ", e))?;
    let written = match headers.finish() {
        Ok(Handoff::Memory(b)) => write_all_nointr(draft.file(), b).is_ok(),
        Ok(Handoff::File(f)) => copy_to_end(f, draft.file(), buf).is_ok(),
        Err(_) => false,
    };
    let copied = written
        && picoq_core::rustix::fs::seek(file, picoq_core::rustix::fs::SeekFrom::Start(0)).is_ok()
        && copy_to_end(file.as_fd(), draft.file(), buf).is_ok();
    if !copied {
        draft.abort(&md);
        return Err(Z_MAILDIR);
    }
    draft.commit(&md).map_err(|e| fail(b"unable to deliver to ", e))?;
    Ok(picoq_core::rustix::process::getpid().as_raw_nonzero().get() as u32)
}

/// Writes to a local file, remembering a failure for later.
struct Writer<'f> {
    fd: BorrowedFd<'f>,
    failed: bool,
}

impl Writer<'_> {
    /// Not inlined: the Received line calls it once per piece.
    #[inline(never)]
    fn write(&mut self, b: &[u8]) {
        if !self.failed && write_all_nointr(self.fd, b).is_err() {
            self.failed = true;
        }
    }
}

/// The client's side of fd 0, read within the deadline, never past the
/// announced packet length.
/// `repr(C)`, the buffer last: the counters then sit at small offsets,
/// which every access encodes in fewer bytes (Rust's own layout put the
/// buffer first).
#[repr(C)]
struct Client {
    pos: usize,
    end: usize,
    /// Packet bytes not yet read (the comma included).
    left: u64,
    deadline: u64,
    buf: [u8; READ_BUF],
}

impl Client {
    /// The next byte of the packet.
    fn byte(&mut self) -> u8 {
        if self.left == 0 {
            syntax();
        }
        if self.pos == self.end {
            self.fill();
        }
        self.left -= 1;
        self.pos += 1;
        // pos <= end <= READ_BUF, so never the default: `get` only spares
        // the code of a bounds-check panic.
        self.buf.get(self.pos - 1).copied().unwrap_or_default()
    }

    fn fill(&mut self) {
        let secs = self.deadline.saturating_sub(sys::unix_time()).min(u32::MAX as u64) as u32;
        let read = if secs == 0 { Err(IoError::Timeout) } else { read_timeout(sys::std_fd(0), &mut self.buf, secs) };
        match read {
            // The client went away: nothing to answer (qmail exits 0).
            Ok(0) | Err(IoError::Os(_)) => sys::exit(0),
            Ok(n) => {
                self.pos = 0;
                self.end = n;
            }
            Err(IoError::Timeout) => resources(b"client too slow", IoError::Timeout),
        }
    }

    /// A netstring length header `LEN:`; a length above `LEN_MAX` is a
    /// resource problem, a malformed header a syntax error.
    fn length(&mut self) -> u64 {
        let mut p = netstring::LenParser::new(LEN_MAX);
        loop {
            match p.push(self.byte()) {
                Ok(Some(len)) => return len,
                Ok(None) => {}
                Err(netstring::NetstringError::TooLong) => {
                    resources(b"packet longer than 200000000 bytes", IoError::Os(Errno::FBIG))
                }
                Err(_) => syntax(),
            }
        }
    }

    fn comma(&mut self) {
        if self.byte() != b',' {
            syntax();
        }
    }

    /// Copies `len` packet bytes to `out` (or drops them).
    fn copy(&mut self, mut len: u64, mut out: Option<&mut Writer<'_>>) {
        if len >= self.left {
            syntax();
        }
        while len > 0 {
            if self.pos == self.end {
                self.fill();
            }
            let n = ((self.end - self.pos) as u64).min(len) as usize;
            if let Some(w) = out.as_deref_mut() {
                w.write(&self.buf[self.pos..self.pos + n]);
            }
            self.pos += n;
            self.left -= n as u64;
            len -= n as u64;
        }
    }

    /// One address netstring into `buf`; `None` when it is too long or
    /// contains NUL (it is read past either way).
    fn address<'b>(&mut self, buf: &'b mut [u8; ADDR_LIMIT]) -> Option<&'b mut [u8]> {
        let len = self.length();
        if len >= self.left {
            syntax();
        }
        let mut ok = (len as usize) < ADDR_LIMIT;
        let n = if ok { len as usize } else { 0 };
        // The NUL check as the bytes arrive (no separate search).
        for b in buf[..n].iter_mut() {
            *b = self.byte();
            ok &= *b != 0;
        }
        if n as u64 != len {
            self.copy(len, None);
        }
        self.comma();
        ok.then(|| &mut buf[..n])
    }
}

/// Malformed packet: no answer, exit 100 (qmail-qmqpd).
fn syntax() -> ! {
    DIE.fatal(EXIT_SYNTAX, &[b"QMQP syntax error: no answer sent"])
}

/// Out of time, space or descriptors: exit 111 without an answer.
fn resources(what: &[u8], e: IoError) -> ! {
    DIE.fatal_io(EXIT_RESOURCES, what, b"", e)
}
