//! queue-send — delivers the spool (`HOME/queue/new/`) to smarthosts:
//! SMTP relays from `control/smtproutes`, else the QMQP servers of
//! `control/qmqpservers`; retries with backoff, bounces as RFC 3464 DSNs.
//! Runs as the spool user. See queue-send(8).
//!
//! Flow: options, configuration, the spool and its lock (one runner), then
//! passes over `new/`: each due entry is delivered in transactions of at
//! most `RCPTS_PER_TRANSACTION` recipients sharing a route, over one
//! SMTP connection kept for the whole pass (several messages per
//! connection); then the entry is removed (all recipients finished), its
//! state written (some left: next retry), or it is parked in `failed/`.
//!
//! Crash safety: an entry is removed only after the relay accepted every
//! recipient or a bounce for it is durable in the spool; so a kill at any
//! instant loses nothing, and at worst repeats a delivery whose acceptance
//! was not yet recorded. That is why removing an entry needs no fsync: a
//! removal lost in a crash is such a repeat, never a loss.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::ffi::CStr;
use picoq_core::addr::{ServerAddr, parse_server};
use picoq_core::control::{ControlDir, LINE_MAX};
use picoq_core::die::Die;
use picoq_core::dsn;
use picoq_core::envelope::{ADDR_MAX, EnvelopeReader};
use picoq_core::heapless::Vec;
use picoq_core::io::{IoError, Read, STD_BUF, wait};
use picoq_core::net::{ConnectError, connect_timeout, set_nodelay};
use picoq_core::netstring::{self, HEADER_MAX, encoded_len};
use picoq_core::num::{U64_DIGITS, fmt_u64};
use picoq_core::qmqp;
use picoq_core::routes::{Dest, Routes, host_of};
use picoq_core::rustix::event::PollFlags;
use picoq_core::rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use picoq_core::rustix::fs::{AtFlags, Mode, OFlags, openat, renameat, unlinkat};
use picoq_core::rustix::io::{Errno, IoSlice};
use picoq_core::rustix::process::{geteuid, getpid, getuid};
use picoq_core::smtpclient::{Reply, Session, SmtpError, TEXT_MAX, enhanced_status, push_sanitized};
use picoq_core::spool::{
    self, EntryFile, FileWriter, RCPTS_MAX, STATE_TEXT_MAX, Spool, State, for_each_entry, open_queue_dir,
};
use picoq_core::sys::{self, ByteBuf, Start};

const DIE: Die = Die::new("queue-send");

/// Exit codes (sysexits.h names), documented in queue-send(8).
const EXIT_USAGE: i32 = 64;
const EXIT_SPOOL: i32 = 74;
const EXIT_LOCKED: i32 = 75;
const EXIT_NOT_OWNER: i32 = 77;
const EXIT_CONFIG: i32 = 78;

/// Defaults of `control/timeoutconnect`, `timeoutremote` (qmail-remote's),
/// `queuelifetime` (qmail-send's), `retrymin` and `retrymax` (picoq's:
/// the delay after a failure starts at retrymin and doubles up to
/// retrymax), all in seconds.
const TIMEOUT_CONNECT: u32 = 60;
const TIMEOUT_REMOTE: u32 = 1200;
const QUEUE_LIFETIME: u32 = 604_800;
const RETRY_MIN: u32 = 60;
const RETRY_MAX: u32 = 3600;
/// `tmp/` files older than this are leftovers of a killed queue-spool.
const TMP_MAX_AGE: u64 = 36 * 3600;
/// Recipients per SMTP transaction (RFC 5321 §4.5.3.1.8: a server must
/// take at least 100) and per QMQP packet.
const RCPTS_PER_TRANSACTION: usize = 100;
/// Relays remembered as unreachable during one pass.
const DOWN_MAX: usize = 16;
/// QMQP servers read from `control/qmqpservers`.
const QMQP_SERVERS_MAX: usize = 16;
/// Passes in a row while a pass queued bounces (so they go out at once).
const PASSES_MAX: usize = 4;
/// Longest sleep of `-d` without a trigger or a due retry.
const IDLE_MAX: u32 = 3600;
/// Reply text kept per recipient of a transaction (logs, bounces).
const DIAG_MAX: usize = 256;
/// Bytes read at a time from an entry or a directory.
const READ_BUF: usize = 4096;
/// Longest relay text in logs (`[ffff:...:ffff]:65535`).
const RELAY_TEXT_MAX: usize = 48;
const _: () = assert!(RCPTS_PER_TRANSACTION <= RCPTS_MAX && RCPTS_PER_TRANSACTION <= u16::MAX as usize);
const _: () = assert!(DIAG_MAX <= STATE_TEXT_MAX && DIAG_MAX <= TEXT_MAX);

picoq_core::entry!("queue-send", run);

#[derive(Clone, Copy, PartialEq, Eq)]
enum RunMode {
    Once,
    Daemon,
    List,
}

struct Config {
    me: ByteBuf<LINE_MAX>,
    helo: ByteBuf<LINE_MAX>,
    routes: Routes,
    qmqp: Vec<ServerAddr, QMQP_SERVERS_MAX>,
    timeout_connect: u32,
    timeout_remote: u32,
    lifetime: u32,
    retry_min: u32,
    retry_max: u32,
}

fn run(start: Start) -> ! {
    sys::block_sigpipe();
    let mode = match (start.arg(1).map(CStr::to_bytes), start.arg(2)) {
        (None, _) => RunMode::Once,
        (Some(b"-d"), None) => RunMode::Daemon,
        (Some(b"-l"), None) => RunMode::List,
        _ => DIE.fatal(EXIT_USAGE, &[b"usage: queue-send [-d | -l]"]),
    };
    let home = start.env(b"PICOQ_HOME").unwrap_or(picoq_core::HOME);
    let spool = Spool::open(home).unwrap_or_else(|e| {
        let (spool::SpoolError::Home(errno) | spool::SpoolError::Create(errno) | spool::SpoolError::Write(errno)) = e;
        DIE.fatal_io(EXIT_SPOOL, b"unable to open the spool in ", home.to_bytes(), IoError::Os(errno))
    });
    if mode == RunMode::List {
        list(&spool);
        sys::exit(0);
    }
    let mut cfg = Config {
        me: ByteBuf::new(),
        helo: ByteBuf::new(),
        routes: Routes::new(),
        qmqp: Vec::new(),
        timeout_connect: TIMEOUT_CONNECT,
        timeout_remote: TIMEOUT_REMOTE,
        lifetime: QUEUE_LIFETIME,
        retry_min: RETRY_MIN,
        retry_max: RETRY_MAX,
    };
    read_config(home, &mut cfg);
    // Entries and bounces must belong to the spool user.
    if spool.owner().ok() != Some(geteuid().as_raw()) {
        DIE.fatal(EXIT_NOT_OWNER, &[b"not running as the spool's owner: run me as the spool user"]);
    }
    match spool.lock() {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => DIE.fatal(EXIT_LOCKED, &[b"another queue-send is running on this spool"]),
        Err(e) => DIE.fatal_io(EXIT_SPOOL, b"unable to lock the spool", b"", IoError::Os(e)),
    }
    let dir = |name: &CStr| {
        open_queue_dir(&spool, name)
            .unwrap_or_else(|e| DIE.fatal_io(EXIT_SPOOL, b"unable to open queue/", name.to_bytes(), IoError::Os(e)))
    };
    let q = Queue { new: dir(c"new"), failed: dir(c"failed"), info: dir(c"info"), spool: &spool, cfg: &cfg };
    if mode == RunMode::Once {
        q.passes();
        sys::exit(0);
    }
    // `-d`: the trigger opened read-write, so it never reports end of
    // file when queue-spool's writer closes it.
    let trigger = openat(
        spool.queue_dir(),
        c"trigger",
        OFlags::RDWR | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap_or_else(|e| DIE.fatal_io(EXIT_SPOOL, b"unable to open queue/trigger", b"", IoError::Os(e)));
    loop {
        let next = q.passes();
        let now = sys::unix_time();
        let secs = if next <= now { 1 } else { (next - now).min(IDLE_MAX as u64) as u32 };
        if wait(trigger.as_fd(), PollFlags::IN, secs).is_ok() {
            let mut b = [0u8; 64];
            while matches!(picoq_core::rustix::io::read(&trigger, &mut b), Ok(n) if n > 0) {}
        }
    }
}

/// Reads `control/` (a bad file is fatal, exit 78).
#[inline(never)]
fn read_config(home: &CStr, cfg: &mut Config) {
    let c = match ControlDir::open(home) {
        Ok(Ok(c)) => c,
        Ok(Err(_)) => DIE.fatal(EXIT_CONFIG, &[b"unable to open control/"]),
        Err(e) => DIE.fatal_io(EXIT_CONFIG, b"unable to open home directory ", home.to_bytes(), IoError::Os(e.0)),
    };
    let bad = |name: &[u8]| -> ! { DIE.fatal(EXIT_CONFIG, &[b"unable to read control/", name]) };
    let mut line = [0u8; LINE_MAX];
    match c.read_line(c"me", &mut line) {
        Ok(Some(me)) if !me.is_empty() => {
            add(&mut cfg.me, me);
        }
        Ok(_) => DIE.fatal(EXIT_CONFIG, &[b"control/me is missing or empty"]),
        Err(_) => bad(b"me"),
    }
    match c.read_line(c"helohost", &mut line) {
        Ok(Some(h)) if !h.is_empty() => cfg.helo.extend(h),
        Ok(_) => cfg.helo.extend(cfg.me.as_slice()),
        Err(_) => bad(b"helohost"),
    };
    let num = |name: &CStr, default: u32| c.read_u32(name, default).unwrap_or_else(|_| bad(name.to_bytes()));
    cfg.timeout_connect = num(c"timeoutconnect", TIMEOUT_CONNECT);
    cfg.timeout_remote = num(c"timeoutremote", TIMEOUT_REMOTE);
    cfg.lifetime = num(c"queuelifetime", QUEUE_LIFETIME);
    cfg.retry_min = num(c"retrymin", RETRY_MIN);
    cfg.retry_max = num(c"retrymax", RETRY_MAX).max(cfg.retry_min);
    let mut bad_line = false;
    let routes = &mut cfg.routes;
    let found = c
        .for_each_line(c"smtproutes", |l| {
            if routes.push_line(l).is_err() {
                DIE.warn(&[b"bad line in control/smtproutes (want domain:IP[:port]; no DNS): ", l]);
                bad_line = true;
            }
            true
        })
        .unwrap_or_else(|_| bad(b"smtproutes"));
    if bad_line {
        DIE.fatal(EXIT_CONFIG, &[b"bad control/smtproutes"]);
    }
    if !found || cfg.routes.is_empty() {
        let qmqp = &mut cfg.qmqp;
        c.for_each_line(c"qmqpservers", |l| {
            match parse_server(l, qmqp::PORT) {
                Some(a) if qmqp.push(a).is_ok() => {}
                Some(_) => DIE.fatal(EXIT_CONFIG, &[b"too many lines in control/qmqpservers"]),
                None => DIE.fatal(EXIT_CONFIG, &[b"bad line in control/qmqpservers: ", l]),
            }
            true
        })
        .unwrap_or_else(|_| bad(b"qmqpservers"));
        if cfg.qmqp.is_empty() {
            DIE.fatal(
                EXIT_CONFIG,
                &[b"no route: control/smtproutes and control/qmqpservers are both missing or empty"],
            );
        }
    }
}

/// How one recipient's attempt ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    /// A relay's 4xx (retry; bounce after queuelifetime).
    Deferred,
    /// Local trouble (connect, timeout, lost connection, no route):
    /// retried, never bounced.
    Local,
    /// A relay's 5xx (or 4xx past queuelifetime): bounce.
    Failed,
}

/// One recipient of a transaction: its place in the envelope and result.
struct TxRcpt {
    i: u16,
    outcome: Outcome,
    /// Accepted by RCPT, waiting for the end of DATA.
    accepted: bool,
    text: ByteBuf<DIAG_MAX>,
}

impl TxRcpt {
    #[inline(never)]
    fn set(&mut self, o: Outcome, text: &[u8]) {
        self.outcome = o;
        self.text.clear();
        push_sanitized(&mut self.text, text);
    }

    /// A relay's reply.
    fn reply(&mut self, r: &Reply) {
        let o = match r.class() {
            2 => Outcome::Delivered,
            4 => Outcome::Deferred,
            _ => Outcome::Failed,
        };
        self.set(o, r.text.as_slice());
    }
}

/// One transaction's recipients.
type Tx = Vec<TxRcpt, RCPTS_PER_TRANSACTION>;

#[inline(never)]
fn set_all(tx: &mut Tx, o: Outcome, text: &[u8]) {
    for r in tx.iter_mut() {
        r.set(o, text);
    }
}

/// The open SMTP connection of a pass.
struct Conn {
    relay: ServerAddr,
    session: Session,
    /// The last transaction was left unfinished: RSET first.
    dirty: bool,
}

struct Queue<'a> {
    spool: &'a Spool,
    new: OwnedFd,
    failed: OwnedFd,
    info: OwnedFd,
    cfg: &'a Config,
}

/// What a pass carries from entry to entry.
struct Pass {
    now: u64,
    conn: Option<Conn>,
    down: Vec<(ServerAddr, ByteBuf<DIAG_MAX>), DOWN_MAX>,
    /// Earliest retry among the entries not yet due.
    next: u64,
    bounced: bool,
}

impl Queue<'_> {
    /// Passes until one queues no bounce; returns the earliest retry time.
    fn passes(&self) -> u64 {
        self.clean_tmp();
        let mut next = u64::MAX;
        for _ in 0..PASSES_MAX {
            let mut p = Pass { now: sys::unix_time(), conn: None, down: Vec::new(), next: u64::MAX, bounced: false };
            if let Err(e) = for_each_entry(self.new.as_fd(), |name| self.entry(&mut p, name)) {
                DIE.warn_io(b"unable to read queue/new", b"", IoError::Os(e));
            }
            if let Some(c) = p.conn.take() {
                quit(c);
            }
            next = p.next;
            if !p.bounced {
                break;
            }
        }
        next
    }

    /// Removes `tmp/` files older than `TMP_MAX_AGE` (left by a killed
    /// queue-spool: its unique names are never reused).
    #[inline(never)]
    fn clean_tmp(&self) {
        let tmp = self.spool.tmp_dir();
        let limit = sys::unix_time().saturating_sub(TMP_MAX_AGE);
        let _ = spool::for_each_name(tmp, |name| {
            // Opened, then fstat: `sys::fstat` is the one stat call every
            // program already has (on MIPS, musl's fstatat costs ~2 KB).
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            if let Ok(f) = openat(tmp, name, flags, Mode::empty())
                && let Ok(st) = sys::fstat(&f)
                && st.mtime < limit as i64
                && unlinkat(tmp, name, AtFlags::empty()).is_ok()
            {
                DIE.info(&[b"removed stale queue/tmp/", name.to_bytes()]);
            }
        });
    }

    /// One entry: due? then its transactions, then its fate.
    #[inline(never)]
    fn entry(&self, p: &mut Pass, name: &CStr) {
        let id = name.to_bytes();
        let state = State::read(self.info.as_fd(), name);
        let had_state = state.is_some();
        let mut st = state.unwrap_or_default();
        if st.next > p.now {
            p.next = p.next.min(st.next);
            return;
        }
        let entry = match EntryFile::open(self.new.as_fd(), name) {
            Ok(e) => e,
            Err(Errno::NOENT) => return,
            Err(e) => {
                DIE.warn_io(b"unable to read queue/new/", id, IoError::Os(e));
                if e == Errno::INVAL {
                    self.park(name, &mut st, b"not a spool entry (bad header)");
                }
                return;
            }
        };
        let mut sender = ByteBuf::<ADDR_MAX>::new();
        let mut count = 0usize;
        let ok = each_rcpt(&entry, Some(&mut sender), &mut |_, _| {
            count += 1;
            true
        });
        if !ok || count == 0 || count > RCPTS_MAX || has_control(sender.as_slice()) {
            self.park(name, &mut st, if count > RCPTS_MAX { b"too many recipients" } else { b"malformed envelope" });
            return;
        }
        let queued = spool::entry_secs(id);
        let expired = p.now >= queued.saturating_add(self.cfg.lifetime as u64);
        let mut tried = [0u8; RCPTS_MAX / 8];
        let mut tx = Tx::new();
        let mut left_local = false;
        let mut left_remote = false;
        loop {
            // The next transaction: pending recipients sharing the first
            // pending one's route.
            tx.clear();
            let mut dest: Option<Dest> = None;
            each_rcpt(&entry, None, &mut |i, addr| {
                if st.is_done(i) || tried[i / 8] & (1 << (i % 8)) != 0 {
                    return true;
                }
                let d = if has_control(addr) { Dest::BadAddress } else { self.route(addr) };
                if dest.is_none() {
                    dest = Some(d);
                }
                if dest == Some(d) {
                    tried[i / 8] |= 1 << (i % 8);
                    let r = TxRcpt { i: i as u16, outcome: Outcome::Local, accepted: false, text: ByteBuf::new() };
                    let _ = tx.push(r);
                }
                tx.len() < RCPTS_PER_TRANSACTION
            });
            let Some(dest) = dest else { break };
            if tx.is_empty() {
                break;
            }
            let mut relay = ByteBuf::<RELAY_TEXT_MAX>::new();
            match dest {
                Dest::Smtp(addr) => {
                    relay_text(&addr, &mut relay);
                    self.smtp(p, addr, relay.as_slice(), &entry, sender.as_slice(), &mut tx);
                }
                Dest::Qmqp => {
                    add(&mut relay, b"qmqpservers");
                    self.qmqp(&entry, sender.as_slice(), &mut tx, &mut relay);
                }
                Dest::BadAddress => {
                    add(&mut relay, b"-");
                    set_all(&mut tx, Outcome::Failed, b"553 5.1.3 a control character in the address");
                }
                Dest::Unroutable => {
                    add(&mut relay, b"-");
                    set_all(&mut tx, Outcome::Local, b"no route in control/smtproutes (picoq does no DNS)");
                }
            }
            let mut failed: Option<&TxRcpt> = None;
            for r in tx.iter_mut() {
                if expired && r.outcome == Outcome::Deferred {
                    r.outcome = Outcome::Failed;
                    add(&mut r.text, b" (queue lifetime exceeded)");
                }
            }
            // One walk of the envelope logs every recipient of the
            // transaction (not one walk per recipient).
            for_tx(&entry, &tx, &mut |r, a| log(id, a, relay.as_slice(), r.outcome, r.text.as_slice()));
            for r in tx.iter() {
                match r.outcome {
                    Outcome::Delivered => st.set_done(r.i as usize),
                    Outcome::Failed => failed = failed.or(Some(r)),
                    o => {
                        left_remote |= o == Outcome::Deferred;
                        left_local |= o == Outcome::Local;
                        st.error.clear();
                        add(&mut st.error, r.text.as_slice());
                        st.local = o == Outcome::Local;
                    }
                }
            }
            if let Some(f) = failed {
                if sender.is_empty() || sender.as_slice() == b"#@[]" {
                    // Never bounce a bounce.
                    let mut why = ByteBuf::<DIAG_MAX>::new();
                    add(&mut why, b"undeliverable bounce: ");
                    add(&mut why, f.text.as_slice());
                    self.park(name, &mut st, why.as_slice());
                    return;
                }
                match self.bounce(id, &entry, sender.as_slice(), &tx, relay.as_slice()) {
                    Ok(()) => {
                        for r in tx.iter().filter(|r| r.outcome == Outcome::Failed) {
                            st.set_done(r.i as usize);
                        }
                        p.bounced = true;
                    }
                    Err(e) => {
                        DIE.warn_io(b"unable to queue a bounce for ", id, IoError::Os(e));
                        left_local = true;
                    }
                }
            }
        }
        if !left_local && !left_remote {
            // Finished: the state first, so no state outlives its entry.
            if had_state {
                let _ = unlinkat(&self.info, name, AtFlags::empty());
            }
            let _ = unlinkat(&self.new, name, AtFlags::empty());
            return;
        }
        if expired {
            // Only local trouble is left (relays' 4xx were bounced above):
            // the setup is at fault, not the message. Parked for the
            // administrator, never bounced.
            let mut why = ByteBuf::<STATE_TEXT_MAX>::new();
            add(&mut why, b"queue lifetime exceeded; last error: ");
            add(&mut why, st.error.as_slice());
            self.park(name, &mut st, why.as_slice());
            return;
        }
        st.tries = st.tries.saturating_add(1);
        st.delay = if st.delay == 0 { self.cfg.retry_min } else { st.delay.saturating_mul(2).min(self.cfg.retry_max) };
        st.next = p.now + st.delay as u64;
        p.next = p.next.min(st.next);
        if let Err(e) = st.write(self.info.as_fd(), name) {
            DIE.warn_io(b"unable to write queue/info/", id, IoError::Os(e));
        }
    }

    fn route(&self, addr: &[u8]) -> Dest {
        if self.cfg.routes.is_empty() { Dest::Qmqp } else { self.cfg.routes.lookup(host_of(addr)) }
    }

    /// Moves an entry to `failed/`; its state, `why` as the last error,
    /// stays in `info/` (for `-l`, and for a requeue by `mv`).
    fn park(&self, name: &CStr, st: &mut State, why: &[u8]) {
        st.error.clear();
        push_sanitized(&mut st.error, why);
        let id = name.to_bytes();
        let r = st.write(self.info.as_fd(), name).and_then(|_| renameat(&self.new, name, &self.failed, name));
        if let Err(e) = r {
            DIE.warn_io(b"unable to move to queue/failed/ ", id, IoError::Os(e));
            return;
        }
        DIE.info(&[id, b" moved to queue/failed: ", st.error.as_slice()]);
    }

    /// One SMTP transaction on the pass's connection (opened when needed).
    #[inline(never)]
    fn smtp(&self, p: &mut Pass, addr: ServerAddr, relay: &[u8], entry: &EntryFile, sender: &[u8], tx: &mut Tx) {
        if let Some((_, why)) = p.down.iter().find(|(a, _)| *a == addr) {
            set_all(tx, Outcome::Local, why.as_slice());
            return;
        }
        if p.conn.as_ref().is_some_and(|c| c.relay != addr)
            && let Some(c) = p.conn.take()
        {
            quit(c);
        }
        if p.conn.is_none() {
            let mut why = ByteBuf::<DIAG_MAX>::new();
            match self.connect(addr, relay, &mut why) {
                Some(c) => p.conn = Some(c),
                None => {
                    set_all(tx, Outcome::Local, why.as_slice());
                    let _ = p.down.push((addr, why));
                    return;
                }
            }
        }
        let Some(conn) = p.conn.as_mut() else { return };
        if let Err(e) = transaction(conn, entry, sender, tx) {
            let mut why = ByteBuf::<DIAG_MAX>::new();
            add(&mut why, b"connection to ");
            add(&mut why, relay);
            add(&mut why, b" lost: ");
            smtp_error_text(e, &mut why);
            for r in tx.iter_mut() {
                // Those already finished keep their result.
                if r.outcome == Outcome::Local || r.accepted {
                    r.set(Outcome::Local, why.as_slice());
                }
            }
            p.conn = None;
        } else if conn.dirty && tx.iter().any(|r| r.outcome == Outcome::Local) {
            // A 421: the relay is closing.
            p.conn = None;
        }
    }

    /// Connects, reads the greeting, says EHLO (HELO when refused).
    #[inline(never)]
    fn connect(&self, addr: ServerAddr, relay: &[u8], why: &mut ByteBuf<DIAG_MAX>) -> Option<Conn> {
        add(why, b"connect to ");
        add(why, relay);
        let sock = match connect_timeout(&addr, self.cfg.timeout_connect) {
            Ok(s) => s,
            Err(e) => {
                let mut eb = picoq_core::errtext::ErrBuf::default();
                add(why, b" failed: ");
                add(
                    why,
                    match e {
                        ConnectError::Timeout => b"timed out",
                        ConnectError::Socket(e) | ConnectError::Refused(e) => {
                            picoq_core::errtext::errno_text(e, &mut eb)
                        }
                    },
                );
                return None;
            }
        };
        set_nodelay(&sock);
        let mut c = Conn { relay: addr, session: Session::new(sock, self.cfg.timeout_remote), dirty: false };
        match hello(&mut c.session, self.cfg.helo.as_slice()) {
            Ok(None) => return Some(c),
            Ok(Some(r)) => {
                add(why, b": greeting or HELO refused: ");
                push_sanitized(why, r.text.as_slice());
            }
            Err(e) => {
                add(why, b": ");
                smtp_error_text(e, why);
            }
        }
        None
    }

    /// One QMQP packet to the first `control/qmqpservers` server that
    /// answers (only before the packet is sent: after that, a failure is
    /// a retry, never a second server).
    #[inline(never)]
    fn qmqp(&self, entry: &EntryFile, sender: &[u8], tx: &mut Tx, relay: &mut ByteBuf<RELAY_TEXT_MAX>) {
        // The packet's length first (its content: the message's netstring,
        // the sender's, each recipient's), then the packet is streamed
        // through the session's buffer.
        let mut content = encoded_len(entry.message_len) + encoded_len(sender.len() as u64);
        for_tx(entry, tx, &mut |_, a| content += encoded_len(a.len() as u64));
        let mut why: &[u8] = b"no QMQP server answered";
        for server in &self.cfg.qmqp {
            relay.clear();
            relay_text(server, relay);
            let Ok(sock) = connect_timeout(server, self.cfg.timeout_connect) else { continue };
            let mut s = Session::new(sock, self.cfg.timeout_remote);
            if self.qmqp_packet(&mut s, entry, sender, tx, content).is_err() {
                why = b"QMQP packet not sent";
                break;
            }
            let mut buf = [0u8; qmqp::REPLY_MAX];
            let (o, code, text): (Outcome, &[u8], &[u8]) =
                match qmqp::read_reply(s.fd(), self.cfg.timeout_remote, &mut buf) {
                    Ok(qmqp::Reply::Accepted(t)) => (Outcome::Delivered, b"250 ", t),
                    Ok(qmqp::Reply::Temporary(t)) => (Outcome::Deferred, b"451 ", t),
                    Ok(qmqp::Reply::Permanent(t)) => (Outcome::Failed, b"554 ", t),
                    Err(_) => (Outcome::Local, b"", b"no valid QMQP reply"),
                };
            let mut t = ByteBuf::<DIAG_MAX>::new();
            add(&mut t, code);
            push_sanitized(&mut t, text);
            set_all(tx, o, t.as_slice());
            return;
        }
        set_all(tx, Outcome::Local, why);
    }

    fn qmqp_packet(&self, s: &mut Session, entry: &EntryFile, sender: &[u8], tx: &Tx, content: u64) -> Result<(), ()> {
        let mut h = [0u8; HEADER_MAX];
        s.put(netstring::header(content, &mut h)).map_err(drop)?;
        s.put(netstring::header(entry.message_len, &mut h)).map_err(drop)?;
        // Through the session's buffer like SMTP's DATA (sendfile's code
        // would cost more bytes of program than it saves here).
        let mut msg = entry.message();
        let mut buf = [0u8; READ_BUF];
        loop {
            match msg.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => s.put(&buf[..n]).map_err(drop)?,
                Err(_) => return Err(()),
            }
        }
        let mut r = s.put(b",");
        let mut put = |s: &mut Session, a: &[u8]| {
            let mut h = [0u8; HEADER_MAX];
            r = core::mem::replace(&mut r, Ok(()))
                .and_then(|_| s.put(netstring::header(a.len() as u64, &mut h)))
                .and_then(|_| s.put(a))
                .and_then(|_| s.put(b","));
        };
        put(s, sender);
        for_tx(entry, tx, &mut |_, a| put(s, a));
        r.and_then(|_| s.put(b",")).and_then(|_| s.flush()).map_err(drop)
    }

    /// Queues a DSN for the transaction's failed recipients to `to`, with
    /// the commit protocol of queue-spool (durable before this returns).
    #[inline(never)]
    fn bounce(&self, id: &[u8], entry: &EntryFile, to: &[u8], tx: &Tx, relay: &[u8]) -> Result<(), Errno> {
        let now = sys::unix_time();
        let pid = getpid().as_raw_nonzero().get() as u32;
        let draft = self.spool.create(now, pid).map_err(|e| match e {
            spool::SpoolError::Home(e) | spool::SpoolError::Create(e) | spool::SpoolError::Write(e) => e,
        })?;
        let mut w: FileWriter<'_, READ_BUF> = FileWriter::new(draft.file());
        let mut out = |b: &[u8]| w.put(b);
        spool::write_received(&mut out, pid, Some(getuid().as_raw()), now);
        let r = dsn::Report { me: self.cfg.me.as_slice(), id, arrival: spool::entry_secs(id), now, to };
        dsn::start(&mut out, &r);
        // Two walks over the failed recipients: the text part, then the
        // status part.
        for part in [0, 1] {
            if part == 1 {
                dsn::status_start(&mut out, &r);
            }
            for_tx(entry, tx, &mut |r, a| {
                let t = r.text.as_slice();
                if r.outcome != Outcome::Failed {
                } else if part == 0 {
                    dsn::text_failure(&mut out, a, t);
                } else {
                    let status = if t.ends_with(b"(queue lifetime exceeded)") {
                        &b"4.4.7"[..]
                    } else {
                        enhanced_status(t).unwrap_or(b"5.0.0")
                    };
                    let remote = if relay == b"-" { &b""[..] } else { relay };
                    dsn::status_failure(&mut out, a, status, t, remote);
                }
            });
        }
        dsn::headers_start(&mut out, &r);
        let ended = copy_header(entry, &mut out);
        dsn::finish(&mut out, &r, ended);
        let message_len = w.written;
        w.put(b"F\0T");
        w.put(to);
        w.put(b"\0\0");
        if let Some(e) = w.flush() {
            draft.abort(self.spool);
            return Err(e);
        }
        draft.commit(self.spool, now, message_len).map_err(|e| match e {
            spool::SpoolError::Home(e) | spool::SpoolError::Create(e) | spool::SpoolError::Write(e) => e,
        })
    }
}

/// The message's header (up to its empty line, at most
/// `dsn::HEADERS_MAX` bytes); whether what was copied ended with LF.
#[inline(never)]
fn copy_header(entry: &EntryFile, out: &mut dyn FnMut(&[u8])) -> bool {
    let mut r = entry.message();
    r.end = r.end.min(r.offset + dsn::HEADERS_MAX);
    let mut buf = [0u8; READ_BUF];
    let mut last_lf = true;
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 {
            break;
        }
        let b = &buf[..n];
        // The empty line ends the header: LF right after LF.
        let mut cut = None;
        let mut prev = last_lf;
        for (j, &c) in b.iter().enumerate() {
            if c == b'\n' && prev {
                cut = Some(j);
                break;
            }
            prev = c == b'\n';
        }
        let piece = &b[..cut.unwrap_or(n)];
        out(piece);
        if let Some(&c) = piece.last() {
            last_lf = c == b'\n';
        }
        if cut.is_some() {
            break;
        }
    }
    last_lf
}

/// `ID to ADDR via RELAY: RESULT: TEXT`, one line per recipient.
#[inline(never)]
fn log(id: &[u8], rcpt: &[u8], relay: &[u8], o: Outcome, text: &[u8]) {
    let result: &[u8] = match o {
        Outcome::Delivered => b": delivered: ",
        Outcome::Deferred => b": deferred: ",
        Outcome::Local => b": deferred (local): ",
        Outcome::Failed => b": failed: ",
    };
    let mut addr = ByteBuf::<ADDR_MAX>::new();
    push_sanitized(&mut addr, rcpt);
    DIE.info(&[id, b" to <", addr.as_slice(), b"> via ", relay, result, text]);
}

/// Calls `each(recipient, address)` for each recipient of `tx`.
fn for_tx(entry: &EntryFile, tx: &Tx, each: &mut dyn FnMut(&TxRcpt, &[u8])) {
    let mut it = tx.iter().peekable();
    each_rcpt(entry, None, &mut |i, a| {
        if let Some(r) = it.next_if(|r| r.i as usize == i) {
            each(r, a);
        }
        it.peek().is_some()
    });
}

/// Walks the entry's envelope: the sender into `sender` (when given),
/// then `each(i, recipient)` until it returns false. False when the
/// envelope is malformed.
fn each_rcpt(
    entry: &EntryFile,
    sender: Option<&mut ByteBuf<ADDR_MAX>>,
    each: &mut dyn FnMut(usize, &[u8]) -> bool,
) -> bool {
    let mut env: EnvelopeReader<_, STD_BUF> = EnvelopeReader::new(entry.reader(entry.envelope_at()));
    match env.sender() {
        Ok(s) => {
            if let Some(out) = sender {
                out.clear();
                add(out, s);
            }
        }
        Err(_) => return false,
    }
    let mut i = 0;
    loop {
        match env.recipient() {
            Ok(Some(a)) => {
                if !each(i, a) {
                    return true;
                }
                i += 1;
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// RSET (when the last transaction was left open), MAIL, RCPTs, DATA,
/// the message: pipelined when the relay offers PIPELINING (RFC 2920),
/// else one command at a time.
#[inline(never)]
fn transaction(conn: &mut Conn, entry: &EntryFile, sender: &[u8], tx: &mut Tx) -> Result<(), SmtpError> {
    let s = &mut conn.session;
    let pipe = s.ext.pipelining;
    let rset = conn.dirty;
    conn.dirty = true;
    if rset {
        s.command(&[b"RSET"])?;
        if !pipe {
            s.flush()?;
            s.read_reply(None)?;
        }
    }
    let mut d = [0u8; U64_DIGITS];
    let size: &[u8] = if s.ext.size { fmt_u64(entry.message_len, &mut d) } else { b"" };
    let from: &[u8] = if sender == b"#@[]" { b"" } else { sender };
    s.command(&[b"MAIL FROM:<", from, b">", if size.is_empty() { b"" } else { b" SIZE=" }, size])?;
    if !pipe {
        s.flush()?;
        let r = s.read_reply(None)?;
        if r.class() != 2 {
            tx.iter_mut().for_each(|t| t.reply(&r));
            return Ok(());
        }
    }
    let mut k = 0;
    let n = tx.len();
    let mut err = Ok(());
    each_rcpt(entry, None, &mut |i, a| {
        if let Some(t) = tx.get_mut(k).filter(|t| t.i as usize == i) {
            err = s.command(&[b"RCPT TO:<", a, b">"]);
            if !pipe && err.is_ok() {
                err = s.flush().and_then(|_| s.read_reply(None)).map(|r| {
                    t.reply(&r);
                    t.accepted = r.class() == 2;
                });
            }
            k += 1;
        }
        k < n && err.is_ok()
    });
    err?;
    if !pipe && !tx.iter().any(|t| t.accepted) {
        return Ok(());
    }
    s.command(&[b"DATA"])?;
    s.flush()?;
    if pipe {
        if rset {
            s.read_reply(None)?;
        }
        let mail = s.read_reply(None)?;
        for t in tx.iter_mut() {
            let r = s.read_reply(None)?;
            let r = if mail.class() != 2 { &mail } else { &r };
            t.reply(r);
            t.accepted = r.class() == 2;
        }
    }
    let data = s.read_reply(None)?;
    if data.class() == 3 && !tx.iter().any(|t| t.accepted) {
        // 354 with no recipient: end the data at once (RFC 2920 §3.1).
        s.put(b".\r\n")?;
        s.flush()?;
        s.read_reply(None)?;
        return Ok(());
    }
    let fin = if data.class() == 3 {
        let mut msg = entry.message();
        if s.send_data(|b| msg.read(b))?.is_err() {
            // The entry can't be read: never end a cut message with the dot.
            return Err(SmtpError::Io(IoError::Os(Errno::IO)));
        }
        let fin = s.read_reply(None)?;
        conn.dirty = fin.class() != 2;
        fin
    } else {
        data
    };
    for t in tx.iter_mut().filter(|t| t.accepted) {
        t.reply(&fin);
        t.accepted = false;
    }
    if fin.code == 421 {
        // The relay is closing: local trouble, like a lost connection.
        tx.iter_mut().filter(|t| t.outcome == Outcome::Deferred).for_each(|t| t.outcome = Outcome::Local);
    }
    Ok(())
}

/// Reads the greeting, says EHLO, HELO when EHLO is refused; the
/// refusing reply, if any.
fn hello(s: &mut Session, helo: &[u8]) -> Result<Option<Reply>, SmtpError> {
    let g = s.read_reply(None)?;
    if g.class() != 2 {
        return Ok(Some(g));
    }
    for verb in [&b"EHLO "[..], b"HELO "] {
        s.command(&[verb, helo])?;
        s.flush()?;
        let mut ext = Default::default();
        let r = s.read_reply(Some(&mut ext))?;
        if r.class() == 2 {
            if verb == b"EHLO " {
                s.ext = ext;
            }
            return Ok(None);
        }
        if verb == b"HELO " {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// A byte below space or DEL: never sent in an SMTP command.
fn has_control(a: &[u8]) -> bool {
    a.iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// Appends to a bounded text (cut when full), out of line: one copy of
/// the code for all the texts.
#[inline(never)]
fn add<const N: usize>(b: &mut ByteBuf<N>, s: &[u8]) {
    for &c in s {
        if !b.push(c) {
            return;
        }
    }
}

/// QUIT, its reply, close (best effort: the work is done).
fn quit(mut c: Conn) {
    if c.session.command(&[b"QUIT"]).and_then(|_| c.session.flush()).is_ok() {
        let _ = c.session.read_reply(None);
    }
}

fn smtp_error_text<const N: usize>(e: SmtpError, out: &mut ByteBuf<N>) {
    let mut eb = picoq_core::errtext::ErrBuf::default();
    add(
        out,
        match e {
            SmtpError::Io(IoError::Timeout) => b"timed out",
            SmtpError::Io(IoError::Os(e)) => picoq_core::errtext::errno_text(e, &mut eb),
            SmtpError::Eof => b"closed by the relay",
            SmtpError::Malformed => b"not an SMTP reply",
        },
    );
}

/// `1.2.3.4:25` or `[0:0:0:0:0:0:0:1]:25`.
fn relay_text<const N: usize>(a: &ServerAddr, out: &mut ByteBuf<N>) {
    let mut d = [0u8; U64_DIGITS];
    match a {
        ServerAddr::V4(ip, _) => {
            for (j, b) in ip.iter().enumerate() {
                if j > 0 {
                    out.push(b'.');
                }
                add(out, fmt_u64(*b as u64, &mut d));
            }
        }
        ServerAddr::V6(ip, _) => {
            out.push(b'[');
            for (j, g) in ip.chunks(2).enumerate() {
                if j > 0 {
                    out.push(b':');
                }
                for &b in g {
                    out.push(b"0123456789abcdef"[(b >> 4) as usize]);
                    out.push(b"0123456789abcdef"[(b & 15) as usize]);
                }
            }
            out.push(b']');
        }
    }
    out.push(b':');
    add(out, fmt_u64(a.port() as u64, &mut d));
}

/// `-l`: one line per entry of `new/` and `failed/`: id, age, sender,
/// recipients left, last error.
fn list(spool: &Spool) {
    let now = sys::unix_time();
    let info = open_queue_dir(spool, c"info").ok();
    for (dir_name, failed) in [(c"new", false), (c"failed", true)] {
        let Ok(dir) = open_queue_dir(spool, dir_name) else { continue };
        let r = for_each_entry(dir.as_fd(), |name| {
            list_one(dir.as_fd(), info.as_ref().map(|f| f.as_fd()), name, now, failed)
        });
        if let Err(e) = r {
            DIE.fatal_io(EXIT_SPOOL, b"unable to read queue/", dir_name.to_bytes(), IoError::Os(e));
        }
    }
}

fn list_one(dir: BorrowedFd<'_>, info: Option<BorrowedFd<'_>>, name: &CStr, now: u64, failed: bool) {
    let id = name.to_bytes();
    let Ok(entry) = EntryFile::open(dir, name) else { return };
    let st = info.and_then(|info| State::read(info, name)).unwrap_or_default();
    let mut sender = ByteBuf::<ADDR_MAX>::new();
    let (mut left, mut total) = (0u64, 0u64);
    each_rcpt(&entry, Some(&mut sender), &mut |i, _| {
        total += 1;
        left += !st.is_done(i) as u64;
        true
    });
    let (mut d1, mut d2, mut d3) = ([0u8; U64_DIGITS], [0u8; U64_DIGITS], [0u8; U64_DIGITS]);
    let age = fmt_u64(now.saturating_sub(spool::entry_secs(id)), &mut d1);
    let status: &[u8] = if failed { b" failed age " } else { b" queued age " };
    let err: &[u8] = if st.error.is_empty() { b"" } else { b" last error: " };
    say(&[id, status, age, b"s from <", sender.as_slice(), b"> left ", fmt_u64(left, &mut d2), b"/"]);
    say(&[fmt_u64(total, &mut d3), err, st.error.as_slice(), b"\n"]);
    each_rcpt(&entry, None, &mut |i, a| {
        if !st.is_done(i) {
            say(&[b"  to <", a, b">\n"]);
        }
        true
    });
}

/// Writes the parts to descriptor 1 (the listing), in one writev.
fn say(parts: &[&[u8]]) {
    let mut v = [IoSlice::new(b""); 8];
    for (slot, p) in v.iter_mut().zip(parts) {
        *slot = IoSlice::new(p);
    }
    let _ = picoq_core::rustix::io::writev(sys::std_fd(1), &v[..parts.len().min(8)]);
}
