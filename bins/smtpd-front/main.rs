//! smtpd-front — a drop-in qmail-smtpd: SMTP on fd 0/1 under tcpserver
//! (or inetd, s6, systemd Accept=yes), each accepted message handed to a
//! qmail-queue program. See smtpd-front(8) and SPEC §5.
//!
//! Flow: read the control files once, greet, then answer commands with
//! qmail-smtpd's words. Replies are buffered and flushed before every
//! read, which is all PIPELINING needs. At DATA the message goes, with a
//! Received line on top, into an unlinked temporary file; only when it is
//! complete and passed every check (hops, databytes, header lines) does the
//! queue program run, with that file on fd 0 (qmqpc then streams it with
//! sendfile, no copy) and the envelope on fd 1. 250 only after it exits 0.
//!
//! Every buffer is fixed at compile time; nothing the client sends makes
//! the process grow.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::ffi::CStr;
use picoq_core::cdb::Cdb;
use picoq_core::control::{ControlDir, LINE_MAX as CONTROL_LINE};
use picoq_core::die::{Die, Line as LogLine};
use picoq_core::io::{IoError, IoResult, Read, read_timeout, write_all_nointr, write_all_timeout};
use picoq_core::num::{U64_DIGITS, fmt_u64, scan_u64};
use picoq_core::queue::{self, EnvelopeBuf};
use picoq_core::received::{Trace, put_safe, write_received};
use picoq_core::rustix;
use picoq_core::rustix::fd::{AsFd, OwnedFd};
use picoq_core::smtp::{self, DataStats, Input, IpLiteral, Line, ReadError, Verb};
use picoq_core::sys::{self, Start};
use picoq_core::{addr, envelope, tmpfile};

const DIE: Die = Die::new("smtpd-front");
/// Client input buffer (qmail: 1024; bigger means fewer reads in DATA).
const IN_BUF: usize = 4 * 1024;
/// Reply buffer: a whole pipelined batch of short replies.
const REPLY_BUF: usize = 1024;
/// Message bytes gathered before each write to the temporary file.
const MSG_BUF: usize = 4 * 1024;
/// Envelope bytes kept in memory; a bigger envelope moves to a file.
const ENV_MEM: usize = 2 * 1024;
/// rcpthosts / badmailfrom bytes kept in memory; longer files are
/// scanned again at each lookup (put big domain lists in the cdb).
const LIST_MEM: usize = 1024;
/// An address after localiphost and the RELAYCLIENT suffix.
const ADDR_BUF: usize = 2 * 1024;
/// Default `control/maxrcpt`, and the most it may say.
const MAXRCPT_DEFAULT: u32 = 100;
const MAXRCPT_HARD: u32 = 100_000;
/// qmail-smtpd's MAXHOPS.
const MAXHOPS: u32 = 100;
/// More header lines than this is refused (qmail counted without bound).
const HEADER_LINES_MAX: u32 = 10_000;
/// qmail-smtpd's default `control/timeoutsmtpd`.
const TIMEOUT_DEFAULT: u32 = 1200;
const _: () = assert!(smtp::ADDR_MAX + CONTROL_LINE < ADDR_BUF);
const _: () = assert!(envelope::ADDR_MAX < ADDR_BUF);
const _: () = assert!(IN_BUF >= smtp::LINE_MAX);
const _: () = assert!(MAXHOPS < HEADER_LINES_MAX);

picoq_core::entry!("smtpd-front", run);

/// The client: replies are gathered and flushed before each read.
struct Client {
    timeout: u32,
    out: [u8; REPLY_BUF],
    len: usize,
}

impl Client {
    fn put(&mut self, s: &[u8]) {
        if self.len + s.len() > REPLY_BUF {
            self.flush();
        }
        if s.len() > REPLY_BUF {
            self.write(s);
        } else {
            self.out[self.len..self.len + s.len()].copy_from_slice(s);
            self.len += s.len();
        }
    }

    fn flush(&mut self) {
        let n = self.len;
        self.len = 0;
        let out = self.out;
        self.write(&out[..n]);
    }

    /// qmail's safewrite: a client that can't be written to is gone.
    fn write(&self, s: &[u8]) {
        if write_all_timeout(sys::std_fd(1), s, self.timeout).is_err() {
            sys::exit(1);
        }
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.len > 0 {
            self.flush();
        }
        read_timeout(sys::std_fd(0), buf, self.timeout)
    }
}

/// A control line copied out of the reading buffer.
struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    const fn new() -> Self {
        Text { buf: [0; N], len: 0 }
    }
    fn set(&mut self, s: &[u8]) {
        let n = s.len().min(N);
        self.buf[..n].copy_from_slice(&s[..n]);
        self.len = n;
    }
    fn get(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

struct Config {
    control: ControlDir,
    greeting: Text<CONTROL_LINE>,
    liphost: Option<Text<CONTROL_LINE>>,
    rcpthosts: Option<smtp::ControlList<LIST_MEM>>,
    morercpthosts: Option<Cdb>,
    badmailfrom: Option<smtp::ControlList<LIST_MEM>>,
    databytes: u64,
    maxrcpt: u32,
}

/// Who is talking to whom (tcpserver's environment).
struct Peers {
    remote_ip: &'static [u8],
    remote_host: &'static [u8],
    remote_info: Option<&'static [u8]>,
    local: &'static [u8],
    relayclient: Option<&'static [u8]>,
    local_ip: Option<IpLiteral>,
    /// Text of getpeername/getsockname results when run from plain inetd.
    ip_text: [[u8; smtp::IP_TEXT_MAX]; 2],
    ip_len: [usize; 2],
}

struct Session<'a> {
    start: &'a Start,
    cfg: Config,
    peers: Peers,
    queue: &'static CStr,
    tmpdir: &'static CStr,
    inp: Input<Client, IN_BUF>,
    helo: Text<{ smtp::LINE_MAX }>,
    fake_helo: bool,
    seen_mail: bool,
    bad_sender: bool,
    sender: Text<ADDR_BUF>,
    rcpts: u32,
    env: EnvelopeBuf<'static, ENV_MEM>,
}

fn run(start: Start) -> ! {
    sys::block_sigpipe();
    let home = start.env(b"PICOQ_HOME").unwrap_or(picoq_core::HOME);
    let mut client = Client { timeout: TIMEOUT_DEFAULT, out: [0; REPLY_BUF], len: 0 };
    let cfg = read_config(home, &start, &mut client);
    let peers = peers(&start);
    if cfg.rcpthosts.is_none() && peers.relayclient.is_none() {
        DIE.warn(&[
            b"control/rcpthosts is missing: accepting mail for EVERY domain (an open relay); ",
            b"create it, or set RELAYCLIENT for trusted clients only",
        ]);
    }
    let tmpdir = match start.env(b"TMPDIR") {
        Some(t) if !t.is_empty() => t,
        _ => c"/tmp",
    };
    let mut s = Session {
        start: &start,
        cfg,
        peers,
        queue: start.env(b"QMAILQUEUE").unwrap_or(c"bin/qmail-queue"),
        tmpdir,
        inp: Input::new(client),
        helo: Text::new(),
        fake_helo: false,
        seen_mail: false,
        bad_sender: false,
        sender: Text::new(),
        rcpts: 0,
        env: EnvelopeBuf::new(tmpdir),
    };
    let host = s.peers.remote_host;
    s.set_helo(host);
    s.greet(b"220 ", b" ESMTP\r\n");
    s.commands()
}

/// Reads everything from `control/` once (qmail-smtpd's setup()).
fn read_config(home: &CStr, start: &Start, client: &mut Client) -> Config {
    let control = match ControlDir::open(home) {
        Ok(Ok(c)) if rustix::process::chdir(home).is_ok() => c,
        _ => die_control(client, b"home directory"),
    };
    let fail = |client: &mut Client, name: &[u8]| -> ! { die_control(client, name) };
    let mut line = [0u8; CONTROL_LINE];
    let mut me = Text::<CONTROL_LINE>::new();
    let have_me = match control.read_line(c"me", &mut line) {
        Ok(Some(l)) => {
            me.set(l);
            true
        }
        Ok(None) => false,
        Err(_) => fail(client, b"me"),
    };
    // control_rldef: the file, else `me`.
    let mut greeting = Text::new();
    match control.read_line(c"smtpgreeting", &mut line) {
        Ok(Some(l)) => greeting.set(l),
        Ok(None) if have_me => greeting.set(me.get()),
        Ok(None) => fail(client, b"smtpgreeting (nor me)"),
        Err(_) => fail(client, b"smtpgreeting"),
    }
    let liphost = match control.read_line(c"localiphost", &mut line) {
        Ok(Some(l)) => {
            let mut t = Text::new();
            t.set(l);
            Some(t)
        }
        Ok(None) if have_me => Some(me),
        Ok(None) => None,
        Err(_) => fail(client, b"localiphost"),
    };
    let number = |client: &mut Client, name: &CStr, default: u32| match control.read_u32(name, default) {
        Ok(v) => v,
        Err(_) => fail(client, name.to_bytes()),
    };
    client.timeout = number(client, c"timeoutsmtpd", TIMEOUT_DEFAULT).max(1);
    let rcpthosts = smtp::ControlList::load(&control, c"rcpthosts").unwrap_or_else(|_| fail(client, b"rcpthosts"));
    // qmail opens morercpthosts.cdb only when rcpthosts exists.
    let mut morercpthosts = None;
    if rcpthosts.is_some() {
        // The working directory is the home now (qmail-smtpd's chdir).
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
        match rustix::fs::open(c"control/morercpthosts.cdb", flags, rustix::fs::Mode::empty()) {
            Ok(fd) => morercpthosts = Some(Cdb::new(fd)),
            Err(rustix::io::Errno::NOENT) => {}
            Err(_) => fail(client, b"morercpthosts.cdb"),
        }
    }
    let badmailfrom =
        smtp::ControlList::load(&control, c"badmailfrom").unwrap_or_else(|_| fail(client, b"badmailfrom"));
    let mut databytes = number(client, c"databytes", 0) as u64;
    if let Some(v) = start.env(b"DATABYTES") {
        databytes = scan_u64(v.to_bytes()).map_or(0, |(v, _)| v);
    }
    let maxrcpt = match number(client, c"maxrcpt", MAXRCPT_DEFAULT) {
        0 => MAXRCPT_HARD,
        n => n.min(MAXRCPT_HARD),
    };
    Config { control, greeting, liphost, rcpthosts, morercpthosts, badmailfrom, databytes, maxrcpt }
}

fn die_control(client: &mut Client, what: &[u8]) -> ! {
    DIE.warn(&[b"unable to read control/", what]);
    client.put(b"421 unable to read controls (#4.3.0)\r\n");
    client.flush();
    sys::exit(1)
}

/// tcpserver's variables; getpeername/getsockname when they are missing
/// and fd 0 is a socket (plain inetd).
fn peers(start: &Start) -> Peers {
    let env = |name: &[u8]| start.env(name).map(|v| v.to_bytes());
    let mut p = Peers {
        remote_ip: env(b"TCPREMOTEIP").unwrap_or(b"unknown"),
        remote_host: env(b"TCPREMOTEHOST").unwrap_or(b"unknown"),
        remote_info: env(b"TCPREMOTEINFO"),
        local: env(b"TCPLOCALHOST").or_else(|| env(b"TCPLOCALIP")).unwrap_or(b"unknown"),
        relayclient: env(b"RELAYCLIENT"),
        local_ip: env(b"TCPLOCALIP").and_then(parse_ip),
        ip_text: [[0; smtp::IP_TEXT_MAX]; 2],
        ip_len: [0; 2],
    };
    if env(b"TCPREMOTEIP").is_none() {
        let fd0 = sys::std_fd(0);
        if let Ok(Some(a)) = rustix::net::getpeername(fd0) {
            p.ip_len[0] = ip_text(a, &mut p.ip_text[0]).1;
        }
        if let Ok(a) = rustix::net::getsockname(fd0) {
            let (ip, n) = ip_text(a, &mut p.ip_text[1]);
            p.ip_len[1] = n;
            if p.local_ip.is_none() {
                p.local_ip = ip;
            }
        }
    }
    p
}

fn parse_ip(s: &[u8]) -> Option<IpLiteral> {
    match addr::parse_ipv4(s) {
        Some(v4) => Some(IpLiteral::V4(v4)),
        None => addr::parse_ipv6(s).map(IpLiteral::V6),
    }
}

/// A socket address as text (`192.0.2.1`, `2001:db8:0:0:0:0:0:1`);
/// IPv4-mapped IPv6 shows as IPv4.
fn ip_text(a: rustix::net::SocketAddrAny, buf: &mut [u8; smtp::IP_TEXT_MAX]) -> (Option<IpLiteral>, usize) {
    let lit = if let Ok(v4) = rustix::net::SocketAddrV4::try_from(a.clone()) {
        IpLiteral::V4(v4.ip().octets())
    } else if let Ok(v6) = rustix::net::SocketAddrV6::try_from(a) {
        match v6.ip().to_ipv4_mapped() {
            Some(v4) => IpLiteral::V4(v4.octets()),
            None => IpLiteral::V6(v6.ip().segments()),
        }
    } else {
        return (None, 0);
    };
    let n = smtp::ip_text(lit, buf).len();
    (Some(lit), n)
}

impl Session<'_> {
    fn out(&mut self, s: &[u8]) {
        self.inp.get_mut().put(s);
    }

    fn greet(&mut self, code: &[u8], end: &[u8]) {
        let c = self.inp.get_mut();
        c.put(code);
        c.put(self.cfg.greeting.get());
        c.put(end);
    }

    fn remote_ip(&self) -> &[u8] {
        if self.peers.ip_len[0] > 0 { &self.peers.ip_text[0][..self.peers.ip_len[0]] } else { self.peers.remote_ip }
    }

    fn local(&self) -> &[u8] {
        if self.peers.ip_len[1] > 0 && self.peers.local == b"unknown" {
            &self.peers.ip_text[1][..self.peers.ip_len[1]]
        } else {
            self.peers.local
        }
    }

    fn set_helo(&mut self, arg: &[u8]) {
        self.helo.set(arg);
        self.fake_helo = !arg.eq_ignore_ascii_case(self.peers.remote_host);
    }

    /// A read failed: qmail-smtpd's die_alarm, straynewline, die_read.
    fn read_failed(&mut self, e: ReadError) -> ! {
        match e {
            ReadError::Io(IoError::Timeout) => self.out(b"451 timeout (#4.4.2)\r\n"),
            ReadError::BareLf => self.out(b"451 See https://cr.yp.to/docs/smtplf.html.\r\n"),
            _ => {}
        }
        self.inp.get_mut().flush();
        sys::exit(1)
    }

    fn commands(&mut self) -> ! {
        let mut line = [0u8; smtp::LINE_MAX];
        loop {
            let n = match self.inp.read_line(&mut line) {
                Ok(Line::Ok(n)) => n,
                Ok(Line::TooLong) => {
                    self.out(b"500 line too long (#5.5.2)\r\n");
                    continue;
                }
                Err(e) => self.read_failed(e),
            };
            let (verb, arg) = smtp::split_command(&line[..n]);
            match verb {
                Verb::Rcpt => self.rcpt(arg),
                Verb::Mail => self.mail(arg),
                Verb::Data => self.data(),
                Verb::Quit => {
                    self.greet(b"221 ", b"\r\n");
                    self.inp.get_mut().flush();
                    sys::exit(0)
                }
                Verb::Helo => {
                    self.greet(b"250 ", b"\r\n");
                    self.seen_mail = false;
                    self.set_helo(arg);
                }
                Verb::Ehlo => {
                    self.greet(b"250-", b"\r\n250-PIPELINING\r\n");
                    if self.cfg.databytes > 0 {
                        let mut d = [0u8; U64_DIGITS];
                        self.out(b"250-SIZE ");
                        self.out(fmt_u64(self.cfg.databytes, &mut d));
                        self.out(b"\r\n");
                    }
                    self.out(b"250 8BITMIME\r\n");
                    self.seen_mail = false;
                    self.set_helo(arg);
                }
                Verb::Rset => {
                    self.seen_mail = false;
                    self.out(b"250 flushed\r\n");
                }
                Verb::Help => self.out(b"214 picoq smtpd-front, a qmail-smtpd drop-in: see smtpd-front(8)\r\n"),
                Verb::Noop => self.out(b"250 ok\r\n"),
                Verb::Vrfy => self.out(b"252 send some mail, i'll try my best\r\n"),
                Verb::Unknown => self.out(b"502 unimplemented (#5.5.1)\r\n"),
            }
        }
    }

    /// addrparse plus localiphost: the address into `out`, its length and
    /// the parameters after it; `None` is a syntax error.
    fn address<'x>(&self, arg: &'x [u8], out: &mut [u8; ADDR_BUF]) -> Option<(usize, &'x [u8])> {
        let mut a = [0u8; smtp::LINE_MAX];
        let (mut n, params) = smtp::parse_address(arg, &mut a)?;
        out[..n].copy_from_slice(&a[..n]);
        if let (Some(liphost), Some(at)) = (&self.cfg.liphost, smtp::last_at(&a[..n]))
            && smtp::ip_literal(&a[at + 1..n]).is_some_and(|lit| self.is_local(lit))
        {
            let l = liphost.get();
            out[at + 1..at + 1 + l.len()].copy_from_slice(l);
            n = at + 1 + l.len();
        }
        Some((n, params))
    }

    /// qmail's ipme_is, without enumerating interfaces: the address the
    /// client connected to, loopback, or the unspecified address.
    fn is_local(&self, lit: IpLiteral) -> bool {
        if Some(lit) == self.peers.local_ip {
            return true;
        }
        match lit {
            IpLiteral::V4(ip) => ip == [127, 0, 0, 1] || ip == [0; 4],
            IpLiteral::V6(g) => g == [0, 0, 0, 0, 0, 0, 0, 1] || g == [0; 8],
        }
    }

    /// A lookup in a list file; `Err` when the file (too big for memory,
    /// read again) became unreadable.
    fn list_has(&self, list: &Option<smtp::ControlList<LIST_MEM>>, name: &CStr, key: &[u8]) -> Result<bool, ()> {
        match list {
            Some(l) => l.contains(&self.cfg.control, name, key).map_err(|_| ()),
            None => Ok(false),
        }
    }

    fn control_failed(&mut self) -> ! {
        die_control(self.inp.get_mut(), b"a list file")
    }

    fn mail(&mut self, arg: &[u8]) {
        let mut a = [0u8; ADDR_BUF];
        let Some((n, params)) = self.address(arg, &mut a) else { return self.out(b"555 syntax error (#5.5.4)\r\n") };
        let addr = &a[..n];
        if self.cfg.databytes > 0 && smtp::size_param(params).is_some_and(|s| s > self.cfg.databytes) {
            self.seen_mail = false;
            return self.out(b"552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n");
        }
        let domain = &addr[smtp::last_at(addr).unwrap_or(addr.len())..];
        let bmf = |key: &[u8]| self.list_has(&self.cfg.badmailfrom, c"badmailfrom", key);
        self.bad_sender = match (bmf(addr), bmf(domain)) {
            (Ok(a), Ok(d)) => a || (d && !domain.is_empty()),
            _ => self.control_failed(),
        };
        self.sender.set(addr);
        self.rcpts = 0;
        self.env.reset();
        if self.env.push(b'F', addr).is_err() {
            self.seen_mail = false;
            return self.out(b"451 qq write error or disk full (#4.3.0)\r\n");
        }
        self.seen_mail = true;
        self.out(b"250 ok\r\n");
    }

    fn rcpt(&mut self, arg: &[u8]) {
        if !self.seen_mail {
            return self.out(b"503 MAIL first (#5.5.1)\r\n");
        }
        let mut a = [0u8; ADDR_BUF];
        let Some((mut n, _)) = self.address(arg, &mut a) else { return self.out(b"555 syntax error (#5.5.4)\r\n") };
        if self.bad_sender {
            return self.out(b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n");
        }
        if self.rcpts >= self.cfg.maxrcpt {
            return self.out(b"452 too many recipients (#4.5.3)\r\n");
        }
        match self.peers.relayclient {
            Some(rc) => {
                if n + rc.len() > envelope::ADDR_MAX {
                    return self.out(b"555 syntax error (#5.5.4)\r\n");
                }
                a[n..n + rc.len()].copy_from_slice(rc);
                n += rc.len();
            }
            None => {
                if smtp::is_relay_hack(&a[..n]) {
                    return self.out(b"553 sorry, no relaying through % ! or @ in the local part (#5.7.1)\r\n");
                }
                let ok = match self.allowed(&a[..n]) {
                    Ok(ok) => ok,
                    Err(()) => self.control_failed(),
                };
                if !ok {
                    return self.out(b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n");
                }
            }
        }
        if self.env.push(b'T', &a[..n]).is_err() {
            return self.out(b"451 qq write error or disk full (#4.3.0)\r\n");
        }
        self.rcpts += 1;
        self.out(b"250 ok\r\n");
    }

    /// qmail's rcpthosts(): the domain, then each `.suffix` of it, in
    /// rcpthosts and then in morercpthosts.cdb. No file: everything.
    fn allowed(&self, addr: &[u8]) -> Result<bool, ()> {
        let Some(list) = &self.cfg.rcpthosts else { return Ok(true) };
        let Some(at) = smtp::last_at(addr) else { return Ok(true) };
        let mut dom = [0u8; ADDR_BUF];
        let len = addr.len() - at - 1;
        dom[..len].copy_from_slice(&addr[at + 1..]);
        dom[..len].make_ascii_lowercase();
        let dom = &dom[..len];
        let starts = || (0..len).filter(|&j| j == 0 || dom[j] == b'.');
        for j in starts() {
            if list.contains(&self.cfg.control, c"rcpthosts", &dom[j..]).map_err(|_| ())? {
                return Ok(true);
            }
        }
        if let Some(cdb) = &self.cfg.morercpthosts {
            for j in starts() {
                if cdb.contains(&dom[j..]).map_err(|_| ())? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn data(&mut self) {
        if !self.seen_mail {
            return self.out(b"503 MAIL first (#5.5.1)\r\n");
        }
        if self.rcpts == 0 {
            return self.out(b"503 RCPT first (#5.5.1)\r\n");
        }
        self.seen_mail = false;
        let Ok(file) = tmpfile::anonymous(self.tmpdir) else { return self.out(b"451 qqt failure (#4.3.0)\r\n") };
        self.out(b"354 go ahead\r\n");
        let mut msg =
            Message { fd: file, buf: [0; MSG_BUF], len: 0, stored: 0, limit: self.cfg.databytes, error: false };
        let trace = Trace {
            local: self.local(),
            remote_ip: self.remote_ip(),
            remote_host: self.peers.remote_host,
            remote_info: self.peers.remote_info,
            helo: if self.fake_helo { Some(self.helo.get()) } else { None },
        };
        write_received(&mut |s: &[u8]| msg.put(s), &trace, b"SMTP", now());
        let mut st = DataStats::default();
        if let Err(e) = self.inp.read_data(&mut |s: &[u8]| msg.put_data(s), &mut st) {
            self.read_failed(e);
        }
        msg.flush();
        let mut text = [0u8; queue::TEXT_MAX];
        let mut ok = [0u8; 2 * U64_DIGITS + 8];
        let mut qp = 0;
        let (code, why): (&[u8], &[u8]) = if st.hops >= MAXHOPS {
            (b"554 ", b"too many hops, this message is looping (#5.4.6)")
        } else if st.header_lines > HEADER_LINES_MAX {
            (b"552 ", b"sorry, too many header lines (#5.3.4)")
        } else if self.cfg.databytes > 0 && st.bytes > self.cfg.databytes {
            (b"552 ", b"sorry, that message size exceeds my databytes limit (#5.3.4)")
        } else if msg.error {
            (b"451 ", &picoq_core::qq::exit_text(picoq_core::qq::WRITE_ERROR)[1..])
        } else {
            match self.enqueue(&msg.fd, &mut text) {
                Ok(pid) => {
                    qp = pid;
                    (b"250 ", accepted(&mut ok, pid))
                }
                Err(t) => (if t[0] == b'D' { b"554 " } else { b"451 " }, &t[1..]),
            }
        };
        self.out(code);
        self.out(why);
        self.out(b"\r\n");
        self.log(&st, qp, code, why);
    }

    /// Runs the queue program: the message file on fd 0, the envelope on
    /// fd 1. Its pid when it exited 0, else qmail_close's `D`/`Z` text.
    fn enqueue<'t>(&mut self, file: &OwnedFd, text: &'t mut [u8; queue::TEXT_MAX]) -> Result<u32, &'t [u8]> {
        queue::enqueue(self.start, self.queue, file, &mut self.env, text)
    }

    /// One line per transaction on fd 2 (multilog adds the time).
    fn log(&self, st: &DataStats, qp: u32, code: &[u8], why: &[u8]) {
        let mut l = LogLine::new();
        let mut d = [0u8; U64_DIGITS];
        l.push(b"smtpd-front: ");
        put_safe(&mut |s: &[u8]| l.push(s), self.remote_ip());
        l.push(b" helo=");
        put_safe(&mut |s: &[u8]| l.push(s), self.helo.get());
        l.push(b" from=<");
        put_safe(&mut |s: &[u8]| l.push(s), self.sender.get());
        l.push(b"> rcpts=");
        l.push(fmt_u64(self.rcpts as u64, &mut d));
        l.push(b" bytes=");
        l.push(fmt_u64(st.bytes, &mut d));
        l.push(b" qp=");
        l.push(fmt_u64(qp as u64, &mut d));
        l.push(b" ");
        l.push(code);
        l.push(why);
        let _ = write_all_nointr(sys::std_fd(2), l.finish());
    }
}

/// `ok <unixtime> qp <pid>` (qmail-smtpd's acceptmessage).
fn accepted(buf: &mut [u8; 2 * U64_DIGITS + 8], pid: u32) -> &[u8] {
    let mut d = [0u8; U64_DIGITS];
    let mut len = 0;
    for part in [&b"ok "[..], fmt_u64(now(), &mut [0; U64_DIGITS]), b" qp ", fmt_u64(pid as u64, &mut d)] {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    &buf[..len]
}

fn now() -> u64 {
    sys::unix_time()
}

/// The message on its way to the temporary file.
struct Message {
    fd: OwnedFd,
    buf: [u8; MSG_BUF],
    len: usize,
    /// Message bytes stored, the Received line excluded (databytes).
    stored: u64,
    /// databytes; 0 = unlimited. Past it, bytes are counted, not stored.
    limit: u64,
    error: bool,
}

impl Message {
    fn put(&mut self, s: &[u8]) {
        if self.error {
            return;
        }
        if self.len + s.len() > MSG_BUF {
            self.flush();
            if s.len() >= MSG_BUF {
                if write_all_nointr(self.fd.as_fd(), s).is_err() {
                    self.error = true;
                }
                return;
            }
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s);
        self.len += s.len();
    }

    fn put_data(&mut self, s: &[u8]) {
        self.stored += s.len() as u64;
        if self.limit == 0 || self.stored <= self.limit {
            self.put(s);
        }
    }

    fn flush(&mut self) {
        if !self.error && self.len > 0 && write_all_nointr(self.fd.as_fd(), &self.buf[..self.len]).is_err() {
            self.error = true;
        }
        self.len = 0;
    }
}
