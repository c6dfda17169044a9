//! qmqpc — a drop-in qmail-qmqpc: takes a message through the qmail-queue
//! interface (message on fd 0, envelope on fd 1) and hands it to the first
//! QMQP server in `control/qmqpservers` that answers. See qmqpc(8).
//!
//! Flow: read the configuration, take the message (sized or copied once to
//! an unlinked file, never into memory), stream the envelope into the
//! packet tail, then try the servers in order. A server that fails before
//! the last byte of the packet is sent cannot have accepted the message, so
//! the next one is tried; after the last byte, a failure is final (exit 74):
//! a later retry is better than a duplicate.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::ffi::CStr;
use picoq_core::addr::{self, ServerAddr};
use picoq_core::control::{ControlDir, ControlError, LINE_MAX};
use picoq_core::die::Die;
use picoq_core::envelope::EnvelopeReader;
use picoq_core::io::{CopyError, FdReader, IoError, STD_BUF, copy_to_end, write_all_nointr};
use picoq_core::net::{ConnectError, SendError, connect_timeout, set_nodelay};
use picoq_core::qmqp::{self, MessageFile, Reply, ReplyError};
use picoq_core::rustix::fd::{AsFd, OwnedFd};
use picoq_core::rustix::fs::{FileType, SeekFrom, seek};
use picoq_core::rustix::io::Errno;
use picoq_core::spill::Spill;
use picoq_core::sys::{self, Start};
use picoq_core::{qq, tmpfile};

const DIE: Die = Die::new("qmqpc");
/// Servers read from `control/qmqpservers`; more are ignored with a warning.
const MAX_SERVERS: usize = 16;
/// Buffer for copying a piped message and for sendfile's fallback.
const COPY_BUF: usize = 16 * 1024;
/// Envelope netstrings kept in memory before they spill to a file.
const TAIL_MEM: usize = 8 * 1024;
/// qmail-qmqpc's timeouts, overridable by `control/timeoutconnect` and
/// `control/timeoutremote`.
const TIMEOUT_CONNECT: u32 = 10;
const TIMEOUT_REMOTE: u32 = 60;

picoq_core::entry!("qmqpc", run);

/// Longest server name kept for logs: the configured text, as written
/// (`[ffff:...:ffff]:65535` is 47 bytes).
const NAME_MAX: usize = 48;

struct Server {
    addr: ServerAddr,
    /// A `ByteBuf`, not a heapless Vec: filled with one memcpy instead of
    /// a (vectorised, ~200 B) element loop.
    name: sys::ByteBuf<NAME_MAX>,
}

struct Config {
    servers: picoq_core::heapless::Vec<Server, MAX_SERVERS>,
    timeout_connect: u32,
    timeout_remote: u32,
}

fn run(start: Start) -> ! {
    sys::block_sigpipe();
    let home = start.env(b"PICOQ_HOME").unwrap_or(picoq_core::HOME);
    let config = read_config(home);
    let tmpdir = match start.env(b"TMPDIR") {
        Some(t) if !t.is_empty() => t,
        _ => c"/tmp",
    };
    let mut copy: Option<OwnedFd> = None;
    let message = take_message(tmpdir, &mut copy);
    let mut tail: Spill<'_, TAIL_MEM> = Spill::new(tmpdir);
    read_envelope(tmpdir, &mut tail);

    let mut last = qq::CONFIG_ERROR;
    for server in &config.servers {
        last = try_server(&start, server, &config, &message, &tail);
    }
    // Each failed server was logged as a warning; the exit code says why.
    DIE.fatal(last, &[b"no QMQP server took the message"])
}

/// Reads `control/`: qmqpservers (required), the timeouts, and `me`
/// (only checked for readability, as qmail's `control_init` does).
fn read_config(home: &CStr) -> Config {
    let control = match ControlDir::open(home) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => control_fatal(b"control", e),
        Err(e) => DIE.fatal_io(qq::HOME_ERROR, b"unable to open home directory ", home.to_bytes(), IoError::Os(e.0)),
    };
    let mut me = [0u8; LINE_MAX];
    if let Err(e) = control.read_line(c"me", &mut me) {
        control_fatal(b"me", e);
    }
    let mut servers = picoq_core::heapless::Vec::new();
    let found = control.for_each_line(c"qmqpservers", |line| {
        let Some(addr) = addr::parse_server(line, qmqp::PORT) else {
            DIE.warn(&[b"ignoring bad line in control/qmqpservers: ", line]);
            return true;
        };
        // The address as written, for logs.
        let text = addr::server_text(line);
        let mut name = sys::ByteBuf::new();
        name.extend(&text[..text.len().min(NAME_MAX)]);
        if servers.push(Server { addr, name }).is_err() {
            DIE.warn(&[b"more than 16 servers in control/qmqpservers; ignoring ", line]);
        }
        true
    });
    match found {
        Ok(true) if !servers.is_empty() => {}
        Ok(true) => DIE.fatal(qq::CONFIG_ERROR, &[b"no usable server in control/qmqpservers"]),
        Ok(false) => DIE.fatal(qq::CONFIG_ERROR, &[b"unable to read control/qmqpservers: file does not exist"]),
        Err(e) => control_fatal(b"qmqpservers", e),
    }
    Config {
        servers,
        timeout_connect: read_timeout(&control, c"timeoutconnect", TIMEOUT_CONNECT),
        timeout_remote: read_timeout(&control, c"timeoutremote", TIMEOUT_REMOTE),
    }
}

/// A timeout in seconds; 0 (or no number) means the default.
fn read_timeout(control: &ControlDir, name: &CStr, default: u32) -> u32 {
    match control.read_u32(name, default) {
        Ok(0) => default,
        Ok(v) => v,
        Err(e) => control_fatal(name.to_bytes(), e),
    }
}

fn control_fatal(name: &[u8], e: ControlError) -> ! {
    match e {
        ControlError::LineTooLong => DIE.fatal(qq::CONFIG_ERROR, &[b"line too long in control/", name]),
        ControlError::Os(e) => DIE.fatal_io(qq::CONFIG_ERROR, b"unable to read control/", name, IoError::Os(e)),
    }
}

/// The message on fd 0: a regular file is used in place (from its current
/// offset); anything else is copied once into an unlinked file in `tmpdir`.
fn take_message<'a>(tmpdir: &CStr, copy: &'a mut Option<OwnedFd>) -> MessageFile<'a> {
    let fd0 = sys::std_fd(0);
    let st = sys::fstat(fd0).unwrap_or_else(|e| read_fatal(IoError::Os(e)));
    if FileType::from_raw_mode(st.mode as _) == FileType::RegularFile {
        let offset = seek(fd0, SeekFrom::Current(0)).unwrap_or_else(|e| read_fatal(IoError::Os(e)));
        let len = st.size.saturating_sub(offset);
        return MessageFile { fd: fd0, offset, len };
    }
    let file = tmpfile::anonymous(tmpdir).unwrap_or_else(|e| tmp_fatal(tmpdir.to_bytes(), IoError::Os(e)));
    let len = match copy_to_end(fd0, &file, &mut [0u8; COPY_BUF]) {
        Ok(n) => n,
        Err(CopyError::Read(e)) => read_fatal(e),
        Err(CopyError::Write(e)) => tmp_fatal(tmpdir.to_bytes(), e),
    };
    let file: &'a OwnedFd = copy.insert(file);
    MessageFile { fd: file.as_fd(), offset: 0, len }
}

fn read_fatal(e: IoError) -> ! {
    DIE.fatal_io(qq::READ_ERROR, b"unable to read the message", b"", e)
}

/// A temporary file (piped message or large envelope) failed.
fn tmp_fatal(dir: &[u8], e: IoError) -> ! {
    DIE.fatal_io(qq::WRITE_ERROR, b"unable to write a temporary file in ", dir, e)
}

/// Streams the envelope on fd 1 into the packet tail as netstrings.
fn read_envelope<const N: usize>(tmpdir: &CStr, tail: &mut Spill<'_, N>) {
    let mut env: EnvelopeReader<FdReader<'_>, STD_BUF> = EnvelopeReader::new(FdReader(sys::std_fd(1)));
    let spill_fatal = |e: Errno| -> ! { tmp_fatal(tmpdir.to_bytes(), IoError::Os(e)) };
    let env_fatal = |e: picoq_core::envelope::EnvelopeError| -> ! {
        let why: &[u8] = match e {
            picoq_core::envelope::EnvelopeError::Read(_) => b"unable to read the envelope",
            picoq_core::envelope::EnvelopeError::Format => b"envelope format error",
            picoq_core::envelope::EnvelopeError::AddressTooLong => b"envelope address too long",
        };
        DIE.fatal(e.exit_code(), &[why])
    };
    qmqp::start_tail(tail).unwrap_or_else(|e| spill_fatal(e));
    let sender = env.sender().unwrap_or_else(|e| env_fatal(e));
    qmqp::push_address(tail, sender).unwrap_or_else(|e| spill_fatal(e));
    while let Some(rcpt) = env.recipient().unwrap_or_else(|e| env_fatal(e)) {
        qmqp::push_address(tail, rcpt).unwrap_or_else(|e| spill_fatal(e));
    }
    qmqp::finish_tail(tail).unwrap_or_else(|e| spill_fatal(e));
}

/// One attempt. Returns the exit code to remember when the next server may
/// be tried; exits when the outcome is final.
fn try_server<const N: usize>(
    start: &Start,
    server: &Server,
    config: &Config,
    message: &MessageFile<'_>,
    tail: &Spill<'_, N>,
) -> i32 {
    let name = server.name.as_slice();
    let sock = match connect_timeout(&server.addr, config.timeout_connect) {
        Ok(s) => s,
        Err(e) => {
            let (code, why) = match e {
                ConnectError::Timeout => (qq::CONNECT_TIMEOUT, IoError::Timeout),
                ConnectError::Refused(e) => (qq::CONNECT_REFUSED, IoError::Os(e)),
                ConnectError::Socket(e) => (qq::NETWORK_ERROR, IoError::Os(e)),
            };
            DIE.warn_io(b"unable to connect to ", name, why);
            return code;
        }
    };
    set_nodelay(&sock);
    match qmqp::send_packet(sock.as_fd(), message, tail, config.timeout_remote) {
        Ok(()) => {}
        Err(SendError::Net(e)) => {
            DIE.warn_io(b"lost connection while sending to ", name, e);
            return qq::COMMUNICATION_FAILED;
        }
        Err(SendError::Input(e)) => read_fatal(e),
    }
    // The last byte is out: whatever happens now is final.
    let mut buf = [0u8; qmqp::REPLY_MAX];
    match qmqp::read_reply(sock.as_fd(), config.timeout_remote, &mut buf) {
        Ok(Reply::Accepted(_)) => sys::exit(qq::OK),
        Ok(Reply::Temporary(text)) => refused(start, name, b'Z', text, qq::TEMPORARY_REFUSAL),
        Ok(Reply::Permanent(text)) => refused(start, name, b'D', text, qq::PERMANENT_REFUSAL),
        Err(e) => {
            let what = b"no reply after sending the message to ";
            let why: &[u8] = match e {
                ReplyError::Io(e) => DIE.fatal_io(qq::COMMUNICATION_FAILED, what, name, e),
                ReplyError::Eof => b": connection closed",
                ReplyError::Malformed => b": malformed reply",
            };
            DIE.fatal(qq::COMMUNICATION_FAILED, &[what, name, why])
        }
    }
}

/// A Z or D answer: logged on fd 2 and, when the caller opened fd 6,
/// handed over there (exit 82) so it can quote the server's own words.
fn refused(start: &Start, name: &[u8], kind: u8, text: &[u8], code: i32) -> ! {
    let mut buf = [0u8; 1 + qmqp::REPLY_TEXT_MAX];
    buf[0] = kind;
    let n = qmqp::sanitize_text(text, &mut buf[1..]).len();
    // Without text, what qmail's callers say for 71 and 31
    // (core::qq::exit_text).
    let msg: &[u8] = match (n, kind) {
        (0, b'Z') => b"Zmail server temporarily rejected message (#4.3.0)",
        (0, _) => b"Dmail server permanently rejected message (#5.3.0)",
        _ => &buf[..1 + n],
    };
    DIE.info(&[name, b" said: ", msg]);
    // The caller uses the text as is: no newline.
    if let Some(fd6) = sys::error_fd(start)
        && write_all_nointr(fd6, msg).is_ok()
    {
        sys::exit(qq::CUSTOM_ERROR);
    }
    sys::exit(code)
}
