//! The spool path's throughput (issue 4's closing figures): durable
//! enqueues through the installed `qmail-queue -> queue-shim ->
//! queue-spool` as an unprivileged user, and queue-send delivering the
//! resulting 1,000 entries to Postfix's smtp-sink, with the TCP
//! connections it used counted from the kernel's TIME_WAIT entries.
//!
//! Needs root (it installs the setuid shim into a private prefix, as the
//! tests do); otherwise both figures are reported as not measured.

use super::Bench;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Messages per figure.
const MESSAGES: usize = 1000;
/// The targets, in messages per second.
const ENQUEUE_MIN: u64 = 1000;
const DELIVERY_MIN: u64 = 3400;
/// Rounds per figure (the best counts).
const ROUNDS: usize = 3;
/// Connections the delivery may use.
const CONNECTIONS_MAX: u64 = 4;
/// The installed tree: traversable by everyone, as /var/qmail is.
const BASE: &str = "/tmp/picoq-bench-spool";
/// Who submits: an unprivileged account every Debian system has.
const SUBMITTER: &str = "nobody";

/// A 1 KiB message: header and 64-byte lines.
fn message() -> Vec<u8> {
    let mut m = b"From: sender@example.org\nTo: rcpt@example.net\nSubject: picoq spool bench\n\n".to_vec();
    let mut i = 0;
    while m.len() < 1024 - 64 {
        m.extend_from_slice(
            format!("{i:08} the quick brown fox jumps over the lazy dog, twice and more.\n").as_bytes(),
        );
        i += 1;
    }
    m.resize(1023, b'x');
    m.push(b'\n');
    m
}

pub fn bench(b: &mut Bench) {
    b.heading("spool path: queue-shim/queue-spool enqueue, queue-send delivery");
    if !std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0) {
        println!("!!! NOT ROOT: the spool figures need an install with a setuid queue-shim and the spool user.");
        println!("!!! Run `cargo xtask bench` as root to measure them.");
        b.unmeasured("spool enqueue rate", "needs root (installs a setuid program)");
        b.unmeasured("queue-send delivery rate", "needs root (installs a setuid program)");
        return;
    }
    let prefix = PathBuf::from(BASE).join("home");
    let _ = std::fs::create_dir_all(BASE);
    let _ = std::fs::set_permissions(BASE, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    println!("$ cargo xtask install {}", prefix.display());
    if let Err(e) = crate::install::install(&prefix.display().to_string(), None) {
        b.unmeasured("spool figures", &format!("install failed: {e}"));
        return;
    }
    for d in ["new", "info", "failed", "tmp"] {
        if let Ok(rd) = std::fs::read_dir(prefix.join("queue").join(d)) {
            rd.flatten().for_each(|e| drop(std::fs::remove_file(e.path())));
        }
    }
    let msg = b.input("spool-1k.msg", &message());
    let env = b.input("spool.env", b"Fsender@example.org\0Trcpt@example.net\0\0");
    // The machine is shared and its disk too: each figure is the best of
    // `ROUNDS` (all are printed), each round enqueueing then delivering
    // 1,000 messages.
    let (mut enq, mut del) = (Vec::new(), Vec::new());
    let (mut enq_how, mut del_how, mut conns) = (String::new(), String::new(), 0);
    for _ in 0..ROUNDS {
        match enqueue(b, &prefix, &msg, &env) {
            Ok((rate, how)) => (enq.push(rate), enq_how = how),
            Err(e) => return b.unmeasured("spool enqueue rate", &e),
        };
        match deliver(b, &prefix) {
            Ok((rate, c, how)) => (del.push(rate), del_how = how, conns = conns.max(c)),
            Err(e) => return b.unmeasured("queue-send delivery rate", &e),
        };
    }
    let all = |v: &[u64]| v.iter().map(|&r| crate::thousands(r)).collect::<Vec<_>>().join(", ");
    b.figure_min(
        "durable enqueue rate through queue-shim, 1 KiB, sequential",
        &format!("{enq_how}\nbest of {ROUNDS} rounds: {} msg/s", all(&enq)),
        enq.iter().copied().max().unwrap_or(0),
        "msg/s",
        ENQUEUE_MIN,
        "nullmailer-queue: 704 msg/s",
    );
    b.figure_min(
        "queue-send delivery of 1,000 queued 1 KiB messages to smtp-sink",
        &format!("{del_how}\nbest of {ROUNDS} rounds: {} msg/s", all(&del)),
        del.iter().copied().max().unwrap_or(0),
        "msg/s",
        DELIVERY_MIN,
        "nullmailer-send: 306 msg/s (a connection per message); dma: 1,694 msg/s (500 connections)",
    );
    b.figure(&super::Figure {
        what: "TCP connections queue-send used for 1,000 messages (most in any round)",
        how: "TIME_WAIT entries for the sink's port in /proc/net/tcp after the run (one per closed connection)",
        value: conns,
        unit: "connections",
        target: Some(CONNECTIONS_MAX),
        qmail: None,
    });
}

fn ids(user: &str) -> Result<(u32, u32), String> {
    let text = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        })
        .flatten()
        .ok_or_else(|| format!("no user {user}"))
}

fn enqueue(b: &Bench, prefix: &Path, msg: &Path, env: &Path) -> Result<(u64, String), String> {
    let (uid, gid) = ids(SUBMITTER)?;
    // The submitter's own shell runs the loop: a fork and an exec of the
    // setuid shim per message, as a sequential submitter pays them.
    let sub = format!(
        "for i in $(seq {MESSAGES}); do {} <{} 1<{} || exit 1; done",
        prefix.join("bin/qmail-queue").display(),
        msg.display(),
        env.display()
    );
    let cmd = format!("setpriv --reuid={uid} --regid={gid} --clear-groups /bin/sh -c '{sub}'");
    let start = Instant::now();
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&cmd)
        .current_dir(&b.work)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("`{cmd}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim_end()));
    }
    let queued = std::fs::read_dir(prefix.join("queue/new")).map_err(|e| e.to_string())?.count();
    if queued != MESSAGES {
        return Err(format!("{queued} entries in queue/new after {MESSAGES} submissions"));
    }
    let how = format!(
        "$ cd {}; time {cmd}\n{SUBMITTER} (uid {uid}) submits; msg/s = {MESSAGES} / elapsed seconds; each qmail-queue exits 0\n\
         only after fsync of the entry and of queue/new",
        b.work.display()
    );
    Ok(((MESSAGES as f64 / secs).round() as u64, how))
}

/// TIME_WAIT sockets with `port` on either side (/proc/net/tcp, state 06).
fn time_waits(port: u16) -> u64 {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let hex = format!(":{port:04X}");
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[3] == "06" && (f[1].ends_with(&hex) || f[2].ends_with(&hex))
        })
        .count() as u64
}

fn deliver(b: &Bench, prefix: &Path) -> Result<(u64, u64, String), String> {
    use std::os::unix::process::CommandExt;
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    std::fs::write(prefix.join("control/me"), "box.example\n").map_err(|e| e.to_string())?;
    std::fs::write(prefix.join("control/smtproutes"), format!(":127.0.0.1:{port}\n")).map_err(|e| e.to_string())?;
    let sink_cmd = format!("smtp-sink -u nobody 127.0.0.1:{port} 256");
    let mut sink = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("exec {sink_cmd}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run smtp-sink (Debian: postfix): {e}"))?;
    let result = (|| {
        let t0 = Instant::now();
        // A probe connection would be counted: wait for the port instead.
        while !listening(port) {
            if t0.elapsed() > Duration::from_secs(5) {
                return Err("smtp-sink did not start listening".to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let before = time_waits(port);
        let (uid, gid) = ids(crate::install::SPOOL_USER)?;
        let send = prefix.join("bin/queue-send");
        let log = b.work.join("spool-send.log");
        let start = Instant::now();
        let out = Command::new(&send)
            .uid(uid)
            .gid(gid)
            .env_clear()
            .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
            .status()
            .map_err(|e| format!("{}: {e}", send.display()))?;
        let secs = start.elapsed().as_secs_f64();
        if !out.success() {
            return Err(format!("queue-send exited {out}; see {}", log.display()));
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let delivered = text.lines().filter(|l| l.contains(": delivered: 2")).count();
        let left = std::fs::read_dir(prefix.join("queue/new")).map_err(|e| e.to_string())?.count();
        if delivered != MESSAGES || left != 0 {
            return Err(format!("{delivered} delivered, {left} left in queue/new; see {}", log.display()));
        }
        // The sink closes after QUIT; let the last TIME_WAIT appear.
        std::thread::sleep(Duration::from_millis(200));
        let conns = time_waits(port) - before;
        let how = format!(
            "$ {sink_cmd} &\n$ echo :127.0.0.1:{port} >{0}/control/smtproutes\n$ time setpriv --reuid={1} --regid={1} --clear-groups {0}/bin/queue-send 2>{2}\n\
             {MESSAGES} entries queued by the figure above, one recipient each; msg/s = {MESSAGES} / elapsed seconds",
            prefix.display(),
            crate::install::SPOOL_USER,
            log.display()
        );
        Ok(((MESSAGES as f64 / secs).round() as u64, conns, how))
    })();
    let _ = sink.kill();
    let _ = sink.wait();
    result
}

/// A socket listens on `port` (/proc/net/tcp, state 0A).
fn listening(port: u16) -> bool {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let hex = format!(":{port:04X}");
    text.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3 && f[3] == "0A" && f[1].ends_with(&hex)
    })
}
