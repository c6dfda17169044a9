//! Black-box test peer: a private Postfix instance whose qmqpd(8) listens on
//! `127.0.0.1:<port>` and whose every delivery is captured to files.
//!
//! Include it from a test file with
//!
//! ```ignore
//! #[path = "support/postfix.rs"]
//! mod postfix;
//! ```
//!
//! (or as `support::postfix` through a `pub mod postfix;` in
//! support/mod.rs: the file needs nothing from its parent module), and use
//! `Postfix::shared()` (one instance per test process, started on first
//! use) or `Postfix::start()` (a private instance, stopped on drop).
//!
//! # What the instance looks like
//!
//! Everything lives in a fresh directory `<tmp>/picoq-postfix-<pid>-<n>`
//! (`conf/` with main.cf and master.cf written from scratch, `queue/`,
//! `data/`, `log/postfix.log`, `capture/`). master.cf runs only what qmqpd
//! needs, nothing chrooted, and one `pipe(8)` transport named `capture` that
//! runs as `nobody` and stores each delivery (message + envelope) under
//! `capture/`. Every address class (local, relay, virtual, default) goes to
//! `capture:all`, one fixed next hop, so a message is one delivery with all
//! its recipients (up to 5000). Recipients in [`DISCARD_DOMAIN`] go to
//! `discard(8)` instead: use them for load tests that don't want captures.
//! No DNS, no SMTP client, no local delivery, nothing listens anywhere but
//! the qmqpd port on 127.0.0.1.
//!
//! # What Postfix changes in a message (and `Delivery::message_as_sent`)
//!
//! * qmqpd prepends `Received: from ... by postfix.picoq.test (Postfix)
//!   with QMQP id QUEUEID ...; DATE`, folded over several lines.
//! * cleanup(8) appends `Message-Id:`, `Date:` and `From:` (`Resent-` forms
//!   when the message has Resent- headers) at the end of the header section
//!   when they are missing. qmqpd gives cleanup no rewriting context, so
//!   `local_header_rewrite_clients` cannot turn this off. **Tests should send
//!   messages that have `From:`, `Date:` and `Message-Id:`**: then nothing is
//!   added. `message_as_sent` removes an added Message-Id (it contains the
//!   queue id) and an added Date (it equals the Received date and is in the
//!   appended block); an added From only when it follows one of those two
//!   (when From alone is missing, the added `From: sender` cannot be told
//!   apart from one the client sent, and is left in).
//! * A message with no headers at all (just body lines) gets an empty line
//!   after the added headers; a final line without LF gets an LF; every CR
//!   byte (CR LF or bare) arrives as a space, already in the queue file.
//!   None of this is undone. Headers and address forms are otherwise left
//!   alone: `append_at_myorigin = no` and friends keep cleanup from
//!   rewriting `From: x` into `From: x@domain`.
//! * qmgr sorts the recipients (by domain, then local part) and drops
//!   duplicates: compare sorted lists.
//!
//! # Life cycle
//!
//! Starting takes `postfix check` + `postfix start`: about 0.2 s. (Two
//! tricks keep it that fast: the config files are dated a minute back,
//! because Postfix does not trust a main.cf modified moments ago and
//! re-reads it in 300 ms steps until it is old enough, about two seconds
//! per command; and `queue/quick-start` tells `postfix start` not to repeat
//! the checks `postfix check` just did.)
//! The shared instance is stopped and its directory removed by an
//! `atexit(3)` handler when the test binary exits; a detached watchdog shell
//! (its own process group, so ^C to cargo doesn't kill it) does the same if
//! the test process dies without running atexit handlers (abort, SIGKILL).
//! Set `PICOQ_POSTFIX_KEEP=1` to keep the directory for a post-mortem.
//!
//! Needs root (Postfix's master runs as root) and Debian's `postfix` package
//! (`apt-get install postfix`, choose "No configuration").

#![allow(dead_code)]

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime};

/// `myhostname` of the instance (appears in Received and in added Message-Ids).
pub const MYHOSTNAME: &str = "postfix.picoq.test";
/// Recipients in this domain are discarded by Postfix, not captured.
pub const DISCARD_DOMAIN: &str = "discard.picoq.test";
/// Largest message Postfix accepts (`message_size_limit`).
pub const MESSAGE_SIZE_LIMIT: usize = 64 * 1024 * 1024;

/// Environment variable: when set (non-empty), the instance directory is
/// kept at exit and its path printed on stderr.
pub const KEEP_ENV: &str = "PICOQ_POSTFIX_KEEP";

mod sys {
    // Plain libc calls; std links libc already, no crate needed.
    unsafe extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
        pub fn geteuid() -> u32;
        pub fn atexit(cb: extern "C" fn()) -> i32;
    }
    pub const SIGKILL: i32 = 9;
    pub const SIGTERM: i32 = 15;
}

/// Is there a live (not zombie) process with this pid? Zombies count as
/// gone: the processes Postfix leaves behind are reparented to pid 1, which
/// may take its time to reap them.
fn alive(pid: i32) -> bool {
    proc_state(pid).is_some_and(|(state, _)| state != 'Z')
}

/// Does the process group have a live (not zombie) member?
fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = fs::read_dir("/proc") else {
        // No /proc: fall back to kill(-pgid, 0), which counts zombies.
        // SAFETY: kill(2) with signal 0 only checks for existence.
        return unsafe { sys::kill(-pgid, 0) == 0 };
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| proc_state(pid).is_some_and(|(state, pg)| pg == pgid && state != 'Z'))
}

/// (state, process group) from /proc/PID/stat.
fn proc_state(pid: i32) -> Option<(char, i32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid pgrp ...": comm may contain anything, even ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) takes plain integers; a stale pid gives ESRCH.
    unsafe {
        sys::kill(pid, sig);
    }
}

/// A private Postfix instance. See the module documentation.
pub struct Postfix {
    root: PathBuf,
    conf: PathBuf,
    capture: PathBuf,
    log: PathBuf,
    port: u16,
    tools: Tools,
    watchdog: Mutex<Option<Child>>,
    stopped: AtomicBool,
}

/// One delivery made by Postfix to the capture transport.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Postfix's queue id (also in the Received header and the QMQP reply).
    pub queue_id: String,
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// Envelope recipients, in the order Postfix gives them (sorted by
    /// domain, then local part; no duplicates): compare sorted lists.
    pub recipients: Vec<String>,
    /// The message exactly as Postfix delivered it (LF line ends, with
    /// Postfix's Received header). See `message_as_sent`.
    pub message: Vec<u8>,
}

#[derive(Clone)]
struct Tools {
    postfix: PathBuf,
    postqueue: PathBuf,
    postfix_uid: u32,
    postfix_gid: u32,
    nobody_uid: u32,
    nobody_gid: u32,
}

static SHARED: OnceLock<Result<Postfix, String>> = OnceLock::new();
static INSTANCES: AtomicUsize = AtomicUsize::new(0);
static ADDRESSES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn stop_shared_at_exit() {
    if let Some(Ok(p)) = SHARED.get() {
        p.stop();
    }
}

/// A recipient address unique within this test process:
/// `<tag>-<n>@<domain>`. Handy for `wait_for_rcpt` in parallel tests.
pub fn unique_address(tag: &str, domain: &str) -> String {
    let n = ADDRESSES.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{n}@{domain}")
}

impl Postfix {
    /// The process-wide instance, started on first use (about 0.2 s). If
    /// starting fails, every call panics with the same report.
    pub fn shared() -> &'static Postfix {
        let started = SHARED.get_or_init(|| {
            let r = Postfix::try_start();
            if r.is_ok() {
                // The static is never dropped: stop it when the test binary
                // exits (libtest returns from main or calls exit()).
                // SAFETY: the callback is a plain extern "C" fn that only
                // touches a 'static OnceLock; atexit copies the pointer.
                unsafe {
                    sys::atexit(stop_shared_at_exit);
                }
            }
            r
        });
        match started {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    /// A private instance of its own, stopped (and its directory removed)
    /// when dropped. Prefer `shared()` unless a test needs its own.
    pub fn start() -> Postfix {
        Postfix::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The qmqpd TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The instance's directory (config, queue, log, captures).
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Wait up to `timeout` for a delivery whose recipients contain `rcpt`
    /// (ASCII case-insensitive) and take it: each delivery is returned once
    /// (it moves from `capture/new` to `capture/done`). Panics on timeout
    /// with what was captured, the queue and the tail of the log.
    pub fn wait_for_rcpt(&self, rcpt: &str, timeout: Duration) -> Delivery {
        let deadline = Instant::now() + timeout;
        loop {
            match self.take_delivery(rcpt) {
                Ok(Some(d)) => return d,
                Ok(None) => {}
                Err(e) => panic!("reading Postfix captures in {}: {e}\n{}", self.capture.display(), self.diagnostics()),
            }
            if Instant::now() >= deadline {
                panic!(
                    "no delivery to <{rcpt}> within {timeout:?} from the Postfix peer \
                     (qmqpd on 127.0.0.1:{}, directory {})\n{}",
                    self.port,
                    self.root.display(),
                    self.diagnostics()
                );
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Like `wait_for_rcpt` but returns None on timeout (for tests that
    /// expect no delivery).
    pub fn try_wait_for_rcpt(&self, rcpt: &str, timeout: Duration) -> Option<Delivery> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(d)) = self.take_delivery(rcpt) {
                return Some(d);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// The last 60 lines of Postfix's log (`log/postfix.log`).
    pub fn log_tail(&self) -> String {
        tail_lines(&self.log, 60)
    }

    /// `postqueue -p` of the instance: what is still queued and why.
    pub fn queue_listing(&self) -> String {
        match Command::new(&self.tools.postqueue).arg("-c").arg(&self.conf).arg("-p").stdin(Stdio::null()).output() {
            Ok(o) => format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
            Err(e) => format!("(cannot run {}: {e})", self.tools.postqueue.display()),
        }
    }

    fn diagnostics(&self) -> String {
        let mut pending = String::new();
        if let Ok(list) = self.pending() {
            for (_, env) in list.iter().take(20) {
                if let Ok(d) = parse_envelope(&fs::read(env).unwrap_or_default()) {
                    let shown: Vec<&str> = d.recipients.iter().take(5).map(|s| s.as_str()).collect();
                    pending.push_str(&format!(
                        "  {} from <{}> to {} recipient(s): {}{}\n",
                        d.queue_id,
                        d.sender,
                        d.recipients.len(),
                        shown.join(", "),
                        if d.recipients.len() > 5 { ", ..." } else { "" }
                    ));
                }
            }
        }
        if pending.is_empty() {
            pending.push_str("  (none)\n");
        }
        format!(
            "--- captured, not yet taken by a test:\n{pending}\
             --- postqueue -p:\n{}\n\
             --- postfix log (tail of {}):\n{}",
            self.queue_listing().trim_end(),
            self.log.display(),
            self.log_tail()
        )
    }

    /// Unclaimed deliveries, oldest first: (sort key, path of NAME.env).
    fn pending(&self) -> io::Result<Vec<((SystemTime, String), PathBuf)>> {
        let mut list = Vec::new();
        for entry in fs::read_dir(self.capture.join("new"))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".env") {
                continue;
            }
            let mtime = match entry.metadata().and_then(|m| m.modified()) {
                Ok(t) => t,
                Err(_) => continue, // claimed meanwhile
            };
            list.push(((mtime, name), entry.path()));
        }
        list.sort();
        Ok(list)
    }

    fn take_delivery(&self, rcpt: &str) -> io::Result<Option<Delivery>> {
        for ((_, name), env_path) in self.pending()? {
            let env = match fs::read(&env_path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut d =
                parse_envelope(&env).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: {e}")))?;
            if !d.recipients.iter().any(|r| r.eq_ignore_ascii_case(rcpt)) {
                continue;
            }
            // Claim it: rename is atomic, a concurrent waiter gets NotFound.
            let stem = &name[..name.len() - ".env".len()];
            let done = self.capture.join("done");
            match fs::rename(&env_path, done.join(&name)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            let msg_name = format!("{stem}.msg");
            fs::rename(self.capture.join("new").join(&msg_name), done.join(&msg_name))?;
            d.message = fs::read(done.join(&msg_name))?;
            return Ok(Some(d));
        }
        Ok(None)
    }

    fn try_start() -> Result<Postfix, String> {
        let tools = preflight()?;
        let root = make_root()?;
        let conf = root.join("conf");
        let capture = root.join("capture");
        let log = root.join("log").join("postfix.log");
        let setup = || -> io::Result<()> {
            for d in ["conf", "queue", "log", "data", "capture"] {
                fs::create_dir(root.join(d))?;
            }
            for d in ["tmp", "new"] {
                fs::create_dir(capture.join(d))?;
                chown(capture.join(d), Some(tools.nobody_uid), Some(tools.nobody_gid))?;
            }
            fs::create_dir(capture.join("done"))?;
            chown(&capture, Some(tools.nobody_uid), Some(tools.nobody_gid))?;
            chown(root.join("data"), Some(tools.postfix_uid), Some(tools.postfix_gid))?;
            fs::set_permissions(root.join("data"), fs::Permissions::from_mode(0o700))?;
            let script = root.join("capture.sh");
            fs::write(&script, capture_script(&capture))?;
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
            write_config(&conf.join("main.cf"), &main_cf(&root))?;
            Ok(())
        };
        let fail = |what: String| -> String {
            let report = format!(
                "starting the private Postfix peer failed: {what}\n\
                 directory: {}\n--- postfix log ({}):\n{}",
                root.display(),
                log.display(),
                tail_lines(&log, 80)
            );
            // Best effort: nothing may be running, but be sure.
            stop_master(&root);
            if std::env::var_os(KEEP_ENV).is_none_or(|v| v.is_empty()) {
                let _ = fs::remove_dir_all(&root);
            }
            report
        };
        if let Err(e) = setup() {
            return Err(fail(format!("setting up {}: {e}", root.display())));
        }

        // The watchdog first, so that whatever happens next is cleaned up
        // when this process goes away.
        let watchdog = match spawn_watchdog(&tools, &root, &conf) {
            Ok(c) => c,
            Err(e) => return Err(fail(format!("spawning the watchdog shell: {e}"))),
        };
        let kill_watchdog = |mut c: Child| {
            signal(-(c.id() as i32), sys::SIGKILL);
            let _ = c.wait();
        };

        // Pick a free port by binding :0 and releasing it; if someone grabs
        // it before master binds it, master fails with "Address already in
        // use": pick another and retry.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = match free_port() {
                Ok(p) => p,
                Err(e) => {
                    kill_watchdog(watchdog);
                    return Err(fail(format!("finding a free port on 127.0.0.1: {e}")));
                }
            };
            if let Err(e) = write_config(&conf.join("master.cf"), &master_cf(&root, port)) {
                kill_watchdog(watchdog);
                return Err(fail(format!("writing master.cf: {e}")));
            }
            // `postfix check` creates the queue directories with the right
            // owners and reports configuration problems.
            if attempt == 1
                && let Err(e) = run_postfix(&tools, &conf, "check", &root.join("log/check.out"))
            {
                kill_watchdog(watchdog);
                return Err(fail(e));
            }
            // `postfix start` would run the same checks again (another
            // second): its quick-start flag file skips them once.
            if let Err(e) = fs::write(root.join("queue/quick-start"), "") {
                kill_watchdog(watchdog);
                return Err(fail(format!("creating queue/quick-start: {e}")));
            }
            let out = root.join("log/start.out");
            match run_postfix(&tools, &conf, "start", &out) {
                Ok(()) => {
                    return Ok(Postfix {
                        root,
                        conf,
                        capture,
                        log,
                        port,
                        tools,
                        watchdog: Mutex::new(Some(watchdog)),
                        stopped: AtomicBool::new(false),
                    });
                }
                Err(e) => {
                    let in_use = tail_lines(&log, 20).contains("Address already in use");
                    if in_use && attempt < 5 {
                        stop_master(&root);
                        continue;
                    }
                    kill_watchdog(watchdog);
                    return Err(fail(e));
                }
            }
        }
    }

    /// Stop master and its children, remove the directory (unless
    /// `PICOQ_POSTFIX_KEEP` is set). Idempotent; never panics (it runs from
    /// atexit and Drop).
    fn stop(&self) {
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(mut guard) = self.watchdog.lock()
            && let Some(mut child) = guard.take()
        {
            // Its own process group: the shell and its `sleep`.
            signal(-(child.id() as i32), sys::SIGKILL);
            let _ = child.wait();
        }
        stop_master(&self.root);
        if std::env::var_os(KEEP_ENV).is_none_or(|v| v.is_empty()) {
            let _ = fs::remove_dir_all(&self.root);
        } else {
            let _ = writeln!(io::stderr(), "{KEEP_ENV}: kept the Postfix peer's directory {}", self.root.display());
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Delivery {
    /// The message as the QMQP client sent it: Postfix's leading
    /// `Received: ... with QMQP id <queue_id> ...` header (folded over
    /// several lines) removed, and the Message-Id/Date/From headers cleanup
    /// appends when missing removed as far as they can be recognised (see
    /// the module documentation: send messages that have From, Date and
    /// Message-Id, then Postfix adds nothing and this is exact).
    ///
    /// Panics if the message does not start with Postfix's QMQP Received
    /// header.
    pub fn message_as_sent(&self) -> Vec<u8> {
        let msg = &self.message;
        let headers = parse_headers(msg);
        let received = headers.first().filter(|h| h.name.eq_ignore_ascii_case("Received"));
        let Some(received) = received else {
            panic!(
                "delivery {}: the message does not start with Postfix's Received header:\n{}",
                self.queue_id,
                preview(msg)
            );
        };
        let value = unfold(&msg[received.value_start..received.end]);
        let words: Vec<&str> = value.split([' ', ';']).filter(|w| !w.is_empty()).collect();
        let has_id = words.windows(2).any(|w| w[0] == "id" && w[1] == self.queue_id);
        if !value.contains("(Postfix) with QMQP") || !has_id {
            panic!(
                "delivery {}: the first header is not Postfix's QMQP Received header: \
                 Received:{value}",
                self.queue_id
            );
        }
        let received_date = value.rsplit(';').next().unwrap_or("").trim().to_string();
        let rest = &headers[1..];

        // cleanup appends, in this order and after every header the client
        // sent: [Resent-]Message-Id, [Resent-]Date, [Resent-]From. Walk back
        // from the last header.
        let mut cut = rest.len();
        let mut j = rest.len();
        let val = |h: &Header| unfold(&msg[h.value_start..h.end]).trim().to_string();
        let count = |name: &str| rest.iter().filter(|h| h.name.eq_ignore_ascii_case(name)).count();
        let is = |h: &Header, base: &str| {
            h.name.eq_ignore_ascii_case(base) || h.name.eq_ignore_ascii_case(&format!("Resent-{base}"))
        };
        let from_candidate = j > 0 && {
            let h = &rest[j - 1];
            let expected = if self.sender.is_empty() { "MAILER-DAEMON" } else { self.sender.as_str() };
            is(h, "From") && count(&h.name) == 1 && {
                let v = val(h);
                v == expected || v == format!("<{expected}>") || v.trim_matches('"') == expected
            }
        };
        if from_candidate {
            j -= 1;
        }
        let mut certain = false;
        if j > 0 {
            let h = &rest[j - 1];
            if is(h, "Date") && count(&h.name) == 1 && !received_date.is_empty() && val(h) == received_date {
                j -= 1;
                certain = true;
            }
        }
        if j > 0 {
            let h = &rest[j - 1];
            if is(h, "Message-Id") && is_postfix_message_id(&val(h), &self.queue_id) {
                j -= 1;
                certain = true;
            }
        }
        if certain {
            cut = j;
        }

        let mut out = Vec::with_capacity(msg.len());
        let body_start = rest.last().map_or(received.end, |h| h.end);
        let keep_end = if cut == 0 { received.end } else { rest[cut - 1].end };
        out.extend_from_slice(&msg[received.end..keep_end]);
        out.extend_from_slice(&msg[body_start..]);
        out
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("queue_id", &self.queue_id)
            .field("sender", &self.sender)
            .field("recipients", &self.recipients)
            .field("message", &format_args!("{} bytes: {}", self.message.len(), preview(&self.message)))
            .finish()
    }
}

// ---------------------------------------------------------------- headers

struct Header {
    name: String,
    /// Byte offset just after the colon.
    value_start: usize,
    /// Byte offset just after the header's last line (its LF included).
    end: usize,
}

/// The header section: header lines with their continuation lines, up to
/// the empty line or the first line that is not a header.
fn parse_headers(msg: &[u8]) -> Vec<Header> {
    let mut headers: Vec<Header> = Vec::new();
    let mut end = 0;
    while end < msg.len() {
        let start = end;
        end = match msg[start..].iter().position(|&b| b == b'\n') {
            Some(i) => start + i + 1,
            None => msg.len(),
        };
        let line = &msg[start..end];
        if line[0] == b' ' || line[0] == b'\t' {
            match headers.last_mut() {
                Some(h) => {
                    h.end = end;
                    continue;
                }
                None => break,
            }
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            break;
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| b.is_ascii_graphic()) {
            break;
        }
        headers.push(Header { name: String::from_utf8_lossy(name).into_owned(), value_start: start + colon + 1, end });
    }
    headers
}

fn unfold(value: &[u8]) -> String {
    let s = String::from_utf8_lossy(value);
    s.replace("\r\n", "\n").replace("\n", "").replace('\t', " ")
}

/// `<YYYYMMDDhhmmss.QUEUEID@myhostname>` as cleanup generates it.
fn is_postfix_message_id(value: &str, queue_id: &str) -> bool {
    let Some(inner) = value.strip_prefix('<').and_then(|v| v.strip_suffix('>')) else {
        return false;
    };
    let Some((stamp, rest)) = inner.split_once('.') else {
        return false;
    };
    stamp.len() == 14 && stamp.bytes().all(|b| b.is_ascii_digit()) && rest == format!("{queue_id}@{MYHOSTNAME}")
}

fn preview(msg: &[u8]) -> String {
    let n = msg.len().min(400);
    let mut s = String::from_utf8_lossy(&msg[..n]).into_owned();
    if n < msg.len() {
        s.push_str("...");
    }
    s
}

fn parse_envelope(env: &[u8]) -> Result<Delivery, String> {
    let text = String::from_utf8_lossy(env);
    let text = text.strip_suffix('\n').ok_or_else(|| "envelope file does not end with a newline".to_string())?;
    let mut lines = text.split('\n');
    let queue_id = lines.next().unwrap_or("").to_string();
    let sender = lines.next().ok_or("envelope file has no sender line")?.to_string();
    let recipients: Vec<String> = lines.map(str::to_string).collect();
    if queue_id.is_empty() || recipients.is_empty() {
        return Err(format!("malformed envelope file: {text:?}"));
    }
    Ok(Delivery { queue_id, sender, recipients, message: Vec::new() })
}

// ---------------------------------------------------------------- set-up

fn preflight() -> Result<Tools, String> {
    const INSTALL: &str = "install Debian's `postfix` package: \
         echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections; \
         DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix";
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    let command_dir = dirs
        .into_iter()
        .find(|d| d.join("postfix").is_file() && d.join("postconf").is_file())
        .ok_or_else(|| format!("the Postfix peer needs the postfix and postconf programs: {INSTALL}"))?;
    let out = Command::new(command_dir.join("postconf"))
        .args(["-dh", "daemon_directory"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running postconf: {e}; {INSTALL}"))?;
    let daemon_dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    for prog in ["master", "qmqpd", "cleanup", "qmgr", "pipe", "postlogd", "trivial-rewrite"] {
        if !daemon_dir.join(prog).is_file() {
            return Err(format!(
                "the Postfix peer needs {}, which is missing: {INSTALL}",
                daemon_dir.join(prog).display()
            ));
        }
    }
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if unsafe { sys::geteuid() } != 0 {
        return Err("the Postfix peer must run as root (Postfix's master(8) needs root \
                    to start its daemons); run these tests as root"
            .to_string());
    }
    let (postfix_uid, postfix_gid) = lookup_user("postfix")
        .ok_or_else(|| format!("no `postfix` user in /etc/passwd: the postfix package creates it; {INSTALL}"))?;
    let (nobody_uid, nobody_gid) =
        lookup_user("nobody").ok_or("no `nobody` user in /etc/passwd (the capture transport runs as nobody)")?;
    Ok(Tools {
        postfix: command_dir.join("postfix"),
        postqueue: command_dir.join("postqueue"),
        postfix_uid,
        postfix_gid,
        nobody_uid,
        nobody_gid,
    })
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 4 && f[0] == name { Some((f[2].parse().ok()?, f[3].parse().ok()?)) } else { None }
    })
}

/// A fresh directory for one instance. Its path goes into master.cf argv
/// (no spaces or quotes), unix socket paths under it must stay short, and
/// the postfix and nobody users must be able to reach it.
fn make_root() -> Result<PathBuf, String> {
    let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
    let name = format!("picoq-postfix-{}-{n}", std::process::id());
    let mut problems = Vec::new();
    for base in [std::env::temp_dir(), PathBuf::from("/tmp")] {
        let dir = base.join(&name);
        let s = dir.to_string_lossy();
        let plain = s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if !dir.is_absolute() || !plain || s.len() > 64 {
            problems.push(format!("{s}: not an absolute path of at most 64 plain characters"));
            continue;
        }
        if let Some(p) =
            base.ancestors().find(|p| fs::metadata(p).map_or(true, |m| m.permissions().mode() & 0o001 == 0))
        {
            problems.push(format!("{}: not searchable by other users", p.display()));
            continue;
        }
        if dir.exists() {
            let _ = fs::remove_dir_all(&dir); // a leftover of a recycled pid
        }
        match fs::create_dir(&dir) {
            Ok(()) => {
                let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
                return Ok(dir);
            }
            Err(e) => problems.push(format!("{s}: {e}")),
        }
    }
    Err(format!("no usable directory for the Postfix peer: {}", problems.join("; ")))
}

/// Write a configuration file dated a minute ago. Postfix does not trust a
/// main.cf modified moments ago (it may still be being written): it sleeps
/// 300 ms and reads it again until the file is old enough, which made
/// `postfix check` and `postfix start` take about two seconds each.
fn write_config(path: &Path, text: &str) -> io::Result<()> {
    fs::write(path, text)?;
    let f = fs::File::options().write(true).open(path)?;
    f.set_modified(SystemTime::now() - Duration::from_secs(60))
}

fn free_port() -> io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `postfix -c CONF <cmd>` with output to a file (not a pipe: master
/// daemonizes, and must not hold our pipes open). Err includes the output.
fn run_postfix(tools: &Tools, conf: &Path, cmd: &str, out: &Path) -> Result<(), String> {
    let file = fs::File::create(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    let status = Command::new(&tools.postfix)
        .arg("-c")
        .arg(conf)
        .arg(cmd)
        .env_remove("MAIL_CONFIG")
        .env_remove("MAIL_VERBOSE")
        .env_remove("MAIL_DEBUG")
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .status()
        .map_err(|e| format!("running {}: {e}", tools.postfix.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{} -c {} {cmd}` failed ({status}); its output:\n{}",
            tools.postfix.display(),
            conf.display(),
            fs::read_to_string(out).unwrap_or_default().trim_end()
        ))
    }
}

/// SIGTERM master (it passes the signal to its process group) and wait
/// until the whole process group is gone; SIGKILL it after 10 s.
fn stop_master(root: &Path) {
    let pid_file = root.join("queue/pid/master.pid");
    let Some(pid) = fs::read_to_string(pid_file).ok().and_then(|s| s.trim().parse::<i32>().ok()) else {
        return;
    };
    if pid <= 1 || !alive(pid) {
        return;
    }
    // master runs in a process group of its own (pgid == pid).
    signal(pid, sys::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while (alive(pid) || group_alive(pid)) && Instant::now() < deadline {
        sleep(Duration::from_millis(5));
    }
    if group_alive(pid) {
        signal(-pid, sys::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(2);
        while group_alive(pid) && Instant::now() < deadline {
            sleep(Duration::from_millis(5));
        }
    }
}

/// A detached shell that outlives us: when our pid is gone it stops the
/// instance and removes its directory. Own process group: a ^C to cargo
/// must not kill it before it has done its job.
fn spawn_watchdog(tools: &Tools, root: &Path, conf: &Path) -> io::Result<Child> {
    const SCRIPT: &str = r#"trap '' HUP INT
while kill -0 "$1" 2>/dev/null; do sleep 0.2; done
"$4" -c "$3" stop >/dev/null 2>&1
[ -n "$5" ] || rm -rf "$2"
"#;
    let keep = std::env::var(KEEP_ENV).unwrap_or_default();
    Command::new("/bin/sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("picoq-postfix-watchdog")
        .arg(std::process::id().to_string())
        .arg(root)
        .arg(conf)
        .arg(&tools.postfix)
        .arg(keep)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
}

fn tail_lines(path: &Path, n: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

fn capture_script(capture: &Path) -> String {
    format!(
        r#"#!/bin/sh
# Postfix pipe(8) transport "capture", written by tests/support/postfix.rs.
# Runs as nobody; argv: queue_id sender recipient...; stdin: the message.
# NAME.msg is the message, NAME.env the envelope (queue id, sender, then each
# recipient, one per line). Both are written under tmp/ and renamed into
# new/, the envelope last: whoever sees new/NAME.env has the whole delivery.
# Exit 75 (EX_TEMPFAIL) makes Postfix keep the message and retry.
cap='{cap}'
name="$1.$$"
umask 022
cat > "$cap/tmp/$name.msg" || exit 75
printf '%s\n' "$@" > "$cap/tmp/$name.env" || exit 75
mv -f "$cap/tmp/$name.msg" "$cap/new/$name.msg" || exit 75
mv -f "$cap/tmp/$name.env" "$cap/new/$name.env" || exit 75
exit 0
"#,
        cap = capture.display()
    )
}

fn main_cf(root: &Path) -> String {
    let root = root.display();
    format!(
        r#"# Private Postfix instance for picoq's tests (tests/support/postfix.rs).
# Written from scratch; nothing here depends on /etc/postfix/main.cf.
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/log/postfix.log
maillog_file_prefixes = {root}/log
syslog_name = picoq-postfix

# Names are fixed: no lookups of the machine's own name, no DNS.
myhostname = {MYHOSTNAME}
mydomain = picoq.test
myorigin = $myhostname
mydestination =
relay_domains =
relayhost =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
smtputf8_enable = no

# Loopback only, and qmqpd serves 127/8 (the default is nobody: every client
# then gets a permanent error after qmqpd_error_delay).
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
qmqpd_authorized_clients = 127.0.0.0/8

# Keep addresses and headers as the client sent them. qmqpd hands cleanup no
# rewriting context, so cleanup still adds missing Message-Id/Date/From.
append_at_myorigin = no
append_dot_mydomain = no
swap_bangpath = no
allow_percent_hack = no
local_header_rewrite_clients =

# Every address class goes to one fixed transport:nexthop, so a message is
# one delivery with all its recipients.
default_transport = capture:all
local_transport = capture:all
relay_transport = capture:all
virtual_transport = capture:all
transport_maps = inline:{{{DISCARD_DOMAIN}=discard:}}
capture_destination_recipient_limit = 5000
capture_destination_concurrency_limit = 20
capture_recipient_limit = 20000
capture_recipient_refill_limit = 5000

# Large messages (10 MiB and more) and quick retries after a failure.
message_size_limit = {MESSAGE_SIZE_LIMIT}
in_flow_delay = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 10s
"#
    )
}

fn master_cf(root: &Path, port: u16) -> String {
    let root = root.display();
    format!(
        r#"# Private Postfix instance for picoq's tests (tests/support/postfix.rs).
# Written from scratch: nothing chrooted (chroot column n everywhere).
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:{port} inet n - n - - qmqpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
capture   unix  -       n       n       -       20      pipe
  user=nobody null_sender=
  argv=/bin/sh {root}/capture.sh ${{queue_id}} ${{sender}} ${{recipient}}
"#
    )
}
