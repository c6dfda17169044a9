//! smtpd-front — a drop-in qmail-smtpd: SMTP on fd 0/1 under tcpserver
//! (or inetd, s6, systemd Accept=yes), each accepted message handed to a
//! qmail-queue program. See smtpd-front(8) and SPEC §5.
//!
//! Flow: read the control files once, greet, then answer commands with
//! qmail-smtpd's words: the session itself is `picoq_core::smtpd` (the
//! fuzz target `smtpd_session` runs it over memory); this file gives it
//! fds 0/1 with timeouts, the environment, and the queue program. Replies
//! are buffered and flushed before every read, which is all PIPELINING
//! needs. At DATA the message goes, with a Received line on top, into an
//! unlinked temporary file; only when it is complete and passed every check
//! (hops, databytes, header lines) does the queue program run, with that
//! file on fd 0 (qmqpc then streams it with sendfile, no copy) and the
//! envelope on fd 1. 250 only after it exits 0.
//! Streaming into a pipe to a queue started at DATA was measured too: it
//! costs qmqpc a copy of the message (about 10% more instructions for
//! smtpd-front and qmqpc together at 1 KiB, 65% more system calls at
//! 10 MiB) and wins wall time only for huge messages on loopback, where
//! sending overlaps receiving.
//!
//! Every buffer is fixed at compile time; nothing the client sends makes
//! the process grow.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::ffi::CStr;
use core::net::IpAddr;
use picoq_core::addr;
use picoq_core::control::ControlDir;
use picoq_core::die::Die;
use picoq_core::io::{IoResult, Read, read_timeout, write_all_nointr, write_all_timeout};
use picoq_core::queue::{self, EnvelopeBuf};
use picoq_core::rustix;
use picoq_core::rustix::fd::OwnedFd;
use picoq_core::smtp::{self, IpLiteral};
use picoq_core::smtpd::{self, ENV_MEM, Peers, Session, TIMEOUT_DEFAULT, Transport};
use picoq_core::sys::{self, ByteBuf, Start};

const DIE: Die = Die::new("smtpd-front");
/// Reply buffer: a whole pipelined batch of short replies.
const REPLY_BUF: usize = 1024;

picoq_core::entry!("smtpd-front", run);

/// The client on fds 0/1: replies are gathered and flushed before each
/// read.
struct Client {
    timeout: u32,
    out: ByteBuf<REPLY_BUF>,
}

impl Client {
    const fn new() -> Client {
        Client { timeout: TIMEOUT_DEFAULT, out: ByteBuf::new() }
    }

    /// qmail's safewrite: a client that can't be written to is gone.
    fn write(&self, s: &[u8]) {
        if write_all_timeout(sys::std_fd(1), s, self.timeout).is_err() {
            sys::exit(1);
        }
    }
}

impl Transport for Client {
    fn put(&mut self, s: &[u8]) {
        if !self.out.extend(s) {
            self.flush();
            if !self.out.extend(s) {
                self.write(s);
            }
        }
    }

    fn flush(&mut self) {
        self.write(self.out.as_slice());
        self.out.clear();
    }

    fn set_timeout(&mut self, secs: u32) {
        self.timeout = secs;
    }

    fn log(&mut self, line: &[u8]) {
        let _ = write_all_nointr(sys::std_fd(2), line);
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if !self.out.is_empty() {
            self.flush();
        }
        read_timeout(sys::std_fd(0), buf, self.timeout)
    }
}

/// The queue program ($QMAILQUEUE, else bin/qmail-queue).
struct Program<'a> {
    start: &'a Start,
    path: &'static CStr,
}

impl smtpd::Queue for Program<'_> {
    fn enqueue<'t>(
        &mut self,
        file: &OwnedFd,
        env: &mut EnvelopeBuf<'_, ENV_MEM>,
        text: &'t mut [u8; queue::TEXT_MAX],
    ) -> Result<u32, &'t [u8]> {
        queue::enqueue(self.start, self.path, file, env, text)
    }
}

/// Room for the remote and the local address as text.
type IpTexts = [[u8; smtp::IP_TEXT_MAX]; 2];

fn run(start: Start) -> ! {
    sys::block_sigpipe();
    let home = start.env(b"PICOQ_HOME").unwrap_or(picoq_core::HOME);
    let tmpdir = match start.env(b"TMPDIR") {
        Some(t) if !t.is_empty() => t,
        _ => c"/tmp",
    };
    let mut ips: IpTexts = [[0; smtp::IP_TEXT_MAX]; 2];
    let control = match ControlDir::open(home) {
        Ok(Ok(c)) if rustix::process::chdir(home).is_ok() => c,
        _ => sys::exit(smtpd::die_control(&mut Client::new(), b"home directory").0),
    };
    let queue = Program { start: &start, path: start.env(b"QMAILQUEUE").unwrap_or(c"bin/qmail-queue") };
    let mut s = Session::new(control, peers(&start, &mut ips), tmpdir, Client::new(), queue);
    if let Err(end) = s.read_config(start.env(b"DATABYTES")) {
        sys::exit(end.0);
    }
    if s.open_relay() {
        DIE.warn(&[b"control/rcpthosts is missing: accepting mail for EVERY domain (an open relay); \
create it, or set RELAYCLIENT for trusted clients only"]);
    }
    sys::exit(s.run().0)
}

/// tcpserver's variables; getpeername/getsockname when they are missing
/// and fd 0 is a socket (plain inetd).
fn peers<'a>(start: &Start, ips: &'a mut IpTexts) -> Peers<'a> {
    let env = |name: &[u8]| start.env(name).map(CStr::to_bytes);
    let remote_ip = env(b"TCPREMOTEIP");
    let local_ip = env(b"TCPLOCALIP");
    let mut p = Peers {
        remote_ip: remote_ip.unwrap_or(b"unknown"),
        remote_host: env(b"TCPREMOTEHOST").unwrap_or(b"unknown"),
        remote_info: env(b"TCPREMOTEINFO"),
        local: env(b"TCPLOCALHOST").or(local_ip).unwrap_or(b"unknown"),
        relayclient: env(b"RELAYCLIENT"),
        local_ip: local_ip.and_then(parse_ip),
    };
    if remote_ip.is_none() {
        let fd0 = sys::std_fd(0);
        let [peer, me] = ips;
        if let Ok(Some(a)) = rustix::net::getpeername(fd0)
            && let (Some(_), text) = ip_text(a, peer)
        {
            p.remote_ip = text;
        }
        if let Ok(a) = rustix::net::getsockname(fd0)
            && let (Some(ip), text) = ip_text(a, me)
        {
            if p.local == b"unknown" {
                p.local = text;
            }
            p.local_ip = p.local_ip.or(Some(ip));
        }
    }
    p
}

fn parse_ip(s: &[u8]) -> Option<IpLiteral> {
    match addr::parse_ipv4(s) {
        Some(v4) => Some(IpLiteral::V4(v4)),
        None => addr::parse_ipv6_octets(s).map(IpLiteral::V6),
    }
}

/// A socket address as text (`192.0.2.1`, `2001:db8:0:0:0:0:0:1`);
/// IPv4-mapped IPv6 shows as IPv4.
fn ip_text(a: rustix::net::SocketAddrAny, buf: &mut [u8; smtp::IP_TEXT_MAX]) -> (Option<IpLiteral>, &[u8]) {
    let Ok(a) = core::net::SocketAddr::try_from(a) else { return (None, b"") };
    let lit = match a.ip() {
        IpAddr::V4(v4) => IpLiteral::V4(v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpLiteral::V4(v4.octets()),
            None => IpLiteral::V6(v6.octets()),
        },
    };
    (Some(lit), smtp::ip_text(lit, buf))
}
