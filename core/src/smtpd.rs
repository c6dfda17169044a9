//! smtpd-front's session: qmail-smtpd's state machine over a [`Transport`]
//! (the client) and a [`Queue`] (the hand-off of a complete message), so
//! the program runs it on fds 0/1 and the fuzz target `smtpd_session` runs
//! the same code over memory. See smtpd-front(8) and SPEC §5.
//!
//! Replies are buffered by the transport and flushed before every read,
//! which is all PIPELINING needs. At DATA the message goes, with a
//! Received line on top, into an unlinked temporary file; only when it is
//! complete and passed every check (hops, databytes, header lines) is it
//! handed to the queue. 250 only when the queue took it.
//!
//! Every buffer is fixed at compile time; nothing the client sends makes
//! the session grow. The end of a session (QUIT, a read that failed, a
//! control file that can't be read) is a value, [`End`], not an exit.

use crate::cdb::Cdb;
use crate::control::ControlDir;
use crate::control::LINE_MAX as CONTROL_LINE;
use crate::die::{Die, Line as LogLine};
use crate::io::{IoError, Read, write_all_nointr};
use crate::num::{U64_DIGITS, fmt_u64, scan_u64};
use crate::queue::{self, EnvelopeBuf};
use crate::received::{Trace, put_safe, write_received};
use crate::rustix::fd::{AsFd, OwnedFd};
use crate::smtp::{self, DataStats, Input, IpLiteral, Line, ReadError, Verb};
use crate::sys::{self, ByteBuf};
use crate::{envelope, qq, tmpfile};
use core::ffi::CStr;

const DIE: Die = Die::new("smtpd-front");
/// The databytes refusal, at MAIL (SIZE=) and after DATA.
const TOO_BIG: &[u8] = b"sorry, that message size exceeds my databytes limit (#5.3.4)";
/// Client input buffer (qmail: 1024; bigger means fewer reads in DATA).
pub const IN_BUF: usize = 4 * 1024;
/// Message bytes gathered before each write to the temporary file.
const MSG_BUF: usize = 4 * 1024;
/// Envelope bytes kept in memory; a bigger envelope moves to a file.
pub const ENV_MEM: usize = 2 * 1024;
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
pub const TIMEOUT_DEFAULT: u32 = 1200;
const _: () = assert!(smtp::ADDR_MAX + CONTROL_LINE < ADDR_BUF);
const _: () = assert!(envelope::ADDR_MAX < ADDR_BUF);
const _: () = assert!(IN_BUF >= smtp::LINE_MAX);
const _: () = assert!(MAXHOPS < HEADER_LINES_MAX);

/// The client side of a session: bytes in through [`Read`] (a timeout is
/// `IoError::Timeout`, the end of input `Ok(0)`), replies out. Replies are
/// gathered by `put` and must all be written by `flush` and before each
/// read. A transport that can't write decides itself what happens (the
/// program's exits, as qmail's safewrite did).
pub trait Transport: Read {
    fn put(&mut self, s: &[u8]);
    fn flush(&mut self);
    /// `control/timeoutsmtpd`, in seconds, for every read and write after.
    fn set_timeout(&mut self, secs: u32);
    /// One log line per transaction (the program: fd 2).
    fn log(&mut self, line: &[u8]);
}

/// Where a complete message goes: `file` holds it (Received line
/// included), `env` the envelope. The queue's pid when it took the
/// message, else qmail_close's `D`/`Z` text.
pub trait Queue {
    fn enqueue<'t>(
        &mut self,
        file: &OwnedFd,
        env: &mut EnvelopeBuf<'_, ENV_MEM>,
        text: &'t mut [u8; queue::TEXT_MAX],
    ) -> Result<u32, &'t [u8]>;
}

/// The session is over; the program's exit code (0 after QUIT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End(pub i32);

/// Who is talking to whom (tcpserver's environment, or getpeername and
/// getsockname under plain inetd).
pub struct Peers<'a> {
    pub remote_ip: &'a [u8],
    pub remote_host: &'a [u8],
    pub remote_info: Option<&'a [u8]>,
    pub local: &'a [u8],
    pub relayclient: Option<&'a [u8]>,
    pub local_ip: Option<IpLiteral>,
}

/// The whole state of a connection. It is built once, in place, and
/// filled from the control files: a buffer that is moved is copied byte
/// by byte, so nothing large here is ever returned by value.
pub struct Session<'a, C, Q> {
    control: ControlDir,
    greeting: ByteBuf<CONTROL_LINE>,
    /// localiphost, else me (`have_liphost` says whether either exists).
    liphost: ByteBuf<CONTROL_LINE>,
    have_liphost: bool,
    rcpthosts: smtp::ControlList<LIST_MEM>,
    morercpthosts: Option<Cdb>,
    badmailfrom: smtp::ControlList<LIST_MEM>,
    databytes: u64,
    maxrcpt: u32,
    peers: Peers<'a>,
    queue: Q,
    tmpdir: &'static CStr,
    inp: Input<C, IN_BUF>,
    helo: ByteBuf<{ smtp::LINE_MAX }>,
    fake_helo: bool,
    seen_mail: bool,
    bad_sender: bool,
    sender: ByteBuf<ADDR_BUF>,
    rcpts: u32,
    env: EnvelopeBuf<'static, ENV_MEM>,
    /// The address of the MAIL or RCPT being handled.
    addr: [u8; ADDR_BUF],
}

impl<'a, C: Transport, Q: Queue> Session<'a, C, Q> {
    /// A session with no configuration yet: `read_config` comes next.
    /// `tmpdir` holds the message and a big envelope (unlinked files).
    #[inline(always)]
    pub fn new(control: ControlDir, peers: Peers<'a>, tmpdir: &'static CStr, client: C, queue: Q) -> Self {
        Session {
            control,
            greeting: ByteBuf::new(),
            liphost: ByteBuf::new(),
            have_liphost: false,
            rcpthosts: smtp::ControlList::new(),
            morercpthosts: None,
            badmailfrom: smtp::ControlList::new(),
            databytes: 0,
            maxrcpt: MAXRCPT_DEFAULT,
            peers,
            queue,
            tmpdir,
            inp: Input::new(client),
            helo: ByteBuf::new(),
            fake_helo: false,
            seen_mail: false,
            bad_sender: false,
            sender: ByteBuf::new(),
            rcpts: 0,
            env: EnvelopeBuf::new(tmpdir),
            addr: [0; ADDR_BUF],
        }
    }

    /// The client (the fuzz target reads its replies there).
    pub fn client(&mut self) -> &mut C {
        self.inp.get_mut()
    }

    /// Whether mail to every domain would be accepted: no rcpthosts and
    /// no RELAYCLIENT.
    pub fn open_relay(&self) -> bool {
        !self.rcpthosts.found() && self.peers.relayclient.is_none()
    }

    /// Reads everything from `control/` once (qmail-smtpd's setup()), the
    /// working directory being the home; `databytes_env` is $DATABYTES.
    pub fn read_config(&mut self, databytes_env: Option<&CStr>) -> Result<(), End> {
        let mut line = [0u8; CONTROL_LINE];
        // `me` goes where localiphost will be, its default.
        match self.control.read_line(c"me", &mut line) {
            Ok(Some(l)) => {
                self.liphost.extend(l);
                self.have_liphost = true;
            }
            Ok(None) => {}
            Err(_) => return Err(self.config_failed(b"me")),
        }
        // control_rldef: the file, else `me`.
        match self.control.read_line(c"smtpgreeting", &mut line) {
            Ok(Some(l)) => self.greeting.extend(l),
            Ok(None) if self.have_liphost => self.greeting.extend(self.liphost.as_slice()),
            Ok(None) => return Err(self.config_failed(b"smtpgreeting (nor me)")),
            Err(_) => return Err(self.config_failed(b"smtpgreeting")),
        };
        match self.control.read_line(c"localiphost", &mut line) {
            Ok(Some(l)) => {
                self.liphost.clear();
                self.liphost.extend(l);
                self.have_liphost = true;
            }
            Ok(None) => {}
            Err(_) => return Err(self.config_failed(b"localiphost")),
        }
        let timeout = self.number(c"timeoutsmtpd", TIMEOUT_DEFAULT)?.max(1);
        self.inp.get_mut().set_timeout(timeout);
        if self.rcpthosts.load(&self.control, c"rcpthosts").is_err() {
            return Err(self.config_failed(b"rcpthosts"));
        }
        // qmail opens morercpthosts.cdb only when rcpthosts exists.
        if self.rcpthosts.found() {
            // The working directory is the home now (qmail-smtpd's chdir).
            let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC;
            match rustix::fs::open(c"control/morercpthosts.cdb", flags, rustix::fs::Mode::empty()) {
                Ok(fd) => self.morercpthosts = Some(Cdb::new(fd)),
                Err(rustix::io::Errno::NOENT) => {}
                Err(_) => return Err(self.config_failed(b"morercpthosts.cdb")),
            }
        }
        if self.badmailfrom.load(&self.control, c"badmailfrom").is_err() {
            return Err(self.config_failed(b"badmailfrom"));
        }
        self.databytes = self.number(c"databytes", 0)? as u64;
        if let Some(v) = databytes_env {
            self.databytes = scan_u64(v.to_bytes()).map_or(0, |(v, _)| v);
        }
        self.maxrcpt = match self.number(c"maxrcpt", MAXRCPT_DEFAULT)? {
            0 => MAXRCPT_HARD,
            n => n.min(MAXRCPT_HARD),
        };
        Ok(())
    }

    fn number(&mut self, name: &CStr, default: u32) -> Result<u32, End> {
        match self.control.read_u32(name, default) {
            Ok(v) => Ok(v),
            Err(_) => Err(self.config_failed(name.to_bytes())),
        }
    }

    fn config_failed(&mut self, what: &[u8]) -> End {
        die_control(self.inp.get_mut(), what)
    }

    /// The greeting, then commands until the session ends.
    pub fn run(&mut self) -> End {
        let host = self.peers.remote_host;
        self.set_helo(host);
        self.greet(b"220 ", b" ESMTP\r\n");
        let mut line = [0u8; smtp::LINE_MAX];
        loop {
            if let Err(end) = self.command(&mut line) {
                return end;
            }
        }
    }
}

/// A control file could not be read: qmail-smtpd's die_control.
pub fn die_control(client: &mut impl Transport, what: &[u8]) -> End {
    DIE.warn(&[b"unable to read control/", what]);
    client.put(b"421 unable to read controls (#4.3.0)\r\n");
    client.flush();
    End(1)
}

impl<C: Transport, Q: Queue> Session<'_, C, Q> {
    fn out(&mut self, s: &[u8]) {
        self.inp.get_mut().put(s);
    }

    /// A reply made of a code and a text shared with another reply (one
    /// copy of each text in the read-only page).
    fn reply(&mut self, code: &[u8], why: &[u8]) {
        self.out(code);
        self.out(why);
        self.out(b"\r\n");
    }

    fn greet(&mut self, code: &[u8], end: &[u8]) {
        let c = self.inp.get_mut();
        c.put(code);
        c.put(self.greeting.as_slice());
        c.put(end);
    }

    fn set_helo(&mut self, arg: &[u8]) {
        self.helo.clear();
        self.helo.extend(arg);
        self.fake_helo = !arg.eq_ignore_ascii_case(self.peers.remote_host);
    }

    /// A read failed: qmail-smtpd's die_alarm, straynewline, die_read.
    fn read_failed(&mut self, e: ReadError) -> End {
        match e {
            ReadError::Io(IoError::Timeout) => self.out(b"451 timeout (#4.4.2)\r\n"),
            ReadError::BareLf => self.out(b"451 See https://cr.yp.to/docs/smtplf.html.\r\n"),
            _ => {}
        }
        self.inp.get_mut().flush();
        End(1)
    }

    /// Reads and answers one command.
    fn command(&mut self, line: &mut [u8; smtp::LINE_MAX]) -> Result<(), End> {
        let n = match self.inp.read_line(line) {
            Ok(Line::Ok(n)) => n,
            Ok(Line::TooLong) => {
                self.out(b"500 line too long (#5.5.2)\r\n");
                return Ok(());
            }
            Err(e) => return Err(self.read_failed(e)),
        };
        let (verb, arg) = smtp::split_command(&line[..n]);
        match verb {
            Verb::Rcpt => self.rcpt(arg)?,
            Verb::Mail => self.mail(arg)?,
            Verb::Data => self.data()?,
            Verb::Quit => {
                self.greet(b"221 ", b"\r\n");
                self.inp.get_mut().flush();
                return Err(End(0));
            }
            Verb::Helo => {
                self.greet(b"250 ", b"\r\n");
                self.seen_mail = false;
                self.set_helo(arg);
            }
            Verb::Ehlo => {
                self.greet(b"250-", b"\r\n250-PIPELINING\r\n");
                if self.databytes > 0 {
                    let mut d = [0u8; U64_DIGITS];
                    self.out(b"250-SIZE ");
                    self.out(fmt_u64(self.databytes, &mut d));
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
        Ok(())
    }

    /// addrparse plus localiphost: the address into `self.addr`, its
    /// length and the parameters after it; `None` is a syntax error.
    fn address<'x>(&mut self, arg: &'x [u8]) -> Option<(usize, &'x [u8])> {
        let (mut n, params) = smtp::parse_address(arg, &mut self.addr)?;
        if let Some(at) = smtp::last_at(&self.addr[..n])
            && self.have_liphost
            && smtp::ip_literal(&self.addr[at + 1..n]).is_some_and(|lit| self.is_local(lit))
        {
            let l = self.liphost.as_slice();
            self.addr[at + 1..at + 1 + l.len()].copy_from_slice(l);
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
            IpLiteral::V6(o) => o == core::net::Ipv6Addr::LOCALHOST.octets() || o == [0; 16],
        }
    }

    fn control_failed(&mut self) -> End {
        self.config_failed(b"a list file")
    }

    fn mail(&mut self, arg: &[u8]) -> Result<(), End> {
        let Some((n, params)) = self.address(arg) else {
            self.out(b"555 syntax error (#5.5.4)\r\n");
            return Ok(());
        };
        if self.databytes > 0 && smtp::size_param(params).is_some_and(|s| s > self.databytes) {
            self.seen_mail = false;
            self.reply(b"552 ", TOO_BIG);
            return Ok(());
        }
        let addr = &self.addr[..n];
        let domain = &addr[smtp::last_at(addr).unwrap_or(n)..];
        let bmf = |key: &[u8]| self.badmailfrom.contains(&self.control, c"badmailfrom", key);
        let bad = match (bmf(addr), bmf(domain)) {
            (Ok(a), Ok(d)) => a || (d && !domain.is_empty()),
            _ => return Err(self.control_failed()),
        };
        self.bad_sender = bad;
        self.sender.clear();
        self.sender.extend(addr);
        self.rcpts = 0;
        self.env.reset();
        if self.env.push(b'F', addr).is_err() {
            self.seen_mail = false;
            self.reply(b"451 ", &qq::exit_text(qq::WRITE_ERROR)[1..]);
            return Ok(());
        }
        self.seen_mail = true;
        self.out(b"250 ok\r\n");
        Ok(())
    }

    fn rcpt(&mut self, arg: &[u8]) -> Result<(), End> {
        if !self.seen_mail {
            self.out(b"503 MAIL first (#5.5.1)\r\n");
            return Ok(());
        }
        let Some((mut n, _)) = self.address(arg) else {
            self.out(b"555 syntax error (#5.5.4)\r\n");
            return Ok(());
        };
        if self.bad_sender {
            self.out(b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n");
            return Ok(());
        }
        if self.rcpts >= self.maxrcpt {
            self.out(b"452 too many recipients (#4.5.3)\r\n");
            return Ok(());
        }
        match self.peers.relayclient {
            Some(rc) => {
                if n + rc.len() > envelope::ADDR_MAX {
                    self.out(b"555 syntax error (#5.5.4)\r\n");
                    return Ok(());
                }
                self.addr[n..n + rc.len()].copy_from_slice(rc);
                n += rc.len();
            }
            None => {
                if smtp::is_relay_hack(&self.addr[..n]) {
                    self.out(b"553 sorry, no relaying through % ! or @ in the local part (#5.7.1)\r\n");
                    return Ok(());
                }
                let ok = match self.allowed(&self.addr[..n]) {
                    Ok(ok) => ok,
                    Err(()) => return Err(self.control_failed()),
                };
                if !ok {
                    self.out(b"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)\r\n");
                    return Ok(());
                }
            }
        }
        if self.env.push(b'T', &self.addr[..n]).is_err() {
            self.reply(b"451 ", &qq::exit_text(qq::WRITE_ERROR)[1..]);
            return Ok(());
        }
        self.rcpts += 1;
        self.out(b"250 ok\r\n");
        Ok(())
    }

    /// qmail's rcpthosts(): the domain, then each `.suffix` of it, in
    /// rcpthosts and then in morercpthosts.cdb. No file: everything.
    fn allowed(&self, addr: &[u8]) -> Result<bool, ()> {
        if !self.rcpthosts.found() {
            return Ok(true);
        }
        let Some(at) = smtp::last_at(addr) else { return Ok(true) };
        let dom = &addr[at + 1..];
        let starts = || (0..dom.len()).filter(|&j| j == 0 || dom[j] == b'.');
        // rcpthosts is matched without regard to case.
        for j in starts() {
            if self.rcpthosts.contains(&self.control, c"rcpthosts", &dom[j..]).map_err(|_| ())? {
                return Ok(true);
            }
        }
        if let Some(cdb) = &self.morercpthosts {
            // cdb keys are lower case (qmail-newmrh).
            let mut low = ByteBuf::<ADDR_BUF>::new();
            for &b in dom {
                low.push(b.to_ascii_lowercase());
            }
            let low = low.as_slice();
            for j in starts() {
                if cdb.contains(&low[j..]).map_err(|_| ())? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn data(&mut self) -> Result<(), End> {
        if !self.seen_mail {
            self.out(b"503 MAIL first (#5.5.1)\r\n");
            return Ok(());
        }
        if self.rcpts == 0 {
            self.out(b"503 RCPT first (#5.5.1)\r\n");
            return Ok(());
        }
        self.seen_mail = false;
        let Ok(file) = tmpfile::anonymous(self.tmpdir) else {
            self.reply(b"451 ", &queue::QQT_FAILURE[1..]);
            return Ok(());
        };
        self.out(b"354 go ahead\r\n");
        let mut msg = Message { fd: file, buf: ByteBuf::new(), stored: 0, limit: self.databytes, error: false };
        let trace = Trace {
            local: self.peers.local,
            remote_ip: self.peers.remote_ip,
            remote_host: self.peers.remote_host,
            remote_info: self.peers.remote_info,
            helo: if self.fake_helo { Some(self.helo.as_slice()) } else { None },
        };
        write_received(&mut |s: &[u8]| msg.put(s), &trace, b"SMTP", now());
        let mut st = DataStats::default();
        if let Err(e) = self.inp.read_data(&mut |s: &[u8]| msg.put_data(s), &mut st) {
            return Err(self.read_failed(e));
        }
        msg.flush();
        let mut text = [0u8; queue::TEXT_MAX];
        let mut ok = ByteBuf::new();
        let mut qp = 0;
        let (code, why): (&[u8], &[u8]) = if st.hops >= MAXHOPS {
            (b"554 ", b"too many hops, this message is looping (#5.4.6)")
        } else if st.header_lines > HEADER_LINES_MAX {
            (b"552 ", b"sorry, too many header lines (#5.3.4)")
        } else if self.databytes > 0 && st.bytes > self.databytes {
            (b"552 ", TOO_BIG)
        } else if msg.error {
            (b"451 ", &qq::exit_text(qq::WRITE_ERROR)[1..])
        } else {
            match self.queue.enqueue(&msg.fd, &mut self.env, &mut text) {
                Ok(pid) => {
                    qp = pid;
                    (b"250 ", accepted(&mut ok, pid))
                }
                Err(t) => (if t[0] == b'D' { b"554 " } else { b"451 " }, &t[1..]),
            }
        };
        self.reply(code, why);
        self.log(&st, qp, code, why);
        Ok(())
    }

    /// One line per transaction (multilog adds the time).
    fn log(&mut self, st: &DataStats, qp: u32, code: &[u8], why: &[u8]) {
        let mut l = LogLine::new();
        let mut d = [0u8; U64_DIGITS];
        // One closure for every part: each closure is its own copy of
        // put_safe.
        let mut put = |s: &[u8]| l.push(s);
        put(b"smtpd-front: ");
        put_safe(&mut put, self.peers.remote_ip);
        put(b" helo=");
        put_safe(&mut put, self.helo.as_slice());
        put(b" from=<");
        put_safe(&mut put, self.sender.as_slice());
        put(b"> rcpts=");
        put(fmt_u64(self.rcpts as u64, &mut d));
        put(b" bytes=");
        put(fmt_u64(st.bytes, &mut d));
        put(b" qp=");
        put(fmt_u64(qp as u64, &mut d));
        put(b" ");
        put(code);
        put(why);
        self.inp.get_mut().log(l.finish());
    }
}

/// `ok <unixtime> qp <pid>` (qmail-smtpd's acceptmessage).
fn accepted(buf: &mut ByteBuf<ACCEPTED_MAX>, pid: u32) -> &[u8] {
    let (mut t, mut p) = ([0u8; U64_DIGITS], [0u8; U64_DIGITS]);
    for part in [&b"ok "[..], fmt_u64(now(), &mut t), b" qp ", fmt_u64(pid as u64, &mut p)] {
        buf.extend(part);
    }
    buf.as_slice()
}

/// Longest `accepted` text.
const ACCEPTED_MAX: usize = 2 * U64_DIGITS + 8;

fn now() -> u64 {
    sys::unix_time()
}

/// The message on its way to the temporary file.
struct Message {
    fd: OwnedFd,
    buf: ByteBuf<MSG_BUF>,
    /// Message bytes stored, the Received line excluded (databytes).
    stored: u64,
    /// databytes; 0 = unlimited. Past it, bytes are counted, not stored.
    limit: u64,
    error: bool,
}

impl Message {
    fn put(&mut self, s: &[u8]) {
        if self.error || self.buf.extend(s) {
            return;
        }
        self.flush();
        if !self.buf.extend(s) && write_all_nointr(self.fd.as_fd(), s).is_err() {
            self.error = true;
        }
    }

    fn put_data(&mut self, s: &[u8]) {
        self.stored += s.len() as u64;
        if self.limit == 0 || self.stored <= self.limit {
            self.put(s);
        }
    }

    fn flush(&mut self) {
        if !self.error && !self.buf.is_empty() && write_all_nointr(self.fd.as_fd(), self.buf.as_slice()).is_err() {
            self.error = true;
        }
        self.buf.clear();
    }
}
