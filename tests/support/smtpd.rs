//! Running smtpd-front over pipes with a recording queue program.
//! Included by the smtpd_* tests with `#[path = "support/smtpd.rs"] mod smtpd;`
//! next to `mod support;`.
//!
//! The fake queue is a shell script (exec'd through its `#!` line, as
//! qmail's execv would): it stores fd 0 and fd 1 in `$QQ_DIR`, writes
//! `$QQ_FD6` to fd 6 when set, and exits `$QQ_EXIT` (default 0). The
//! environment reaches it through smtpd-front, as it reaches qmail-queue.
#![allow(dead_code)]

use crate::support::{Home, TempDir};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The recording queue program.
pub const FAKE_QUEUE: &str = "#!/bin/sh\n\
n=$$\n\
cat > \"$QQ_DIR/msg.$n\" || exit 54\n\
cat 0<&1 > \"$QQ_DIR/env.$n\" || exit 54\n\
if [ -n \"$QQ_FD6\" ]; then printf '%s' \"$QQ_FD6\" >&6; fi\n\
exit ${QQ_EXIT:-0}\n";

/// A home with control files, a recording queue and a place for what it
/// records.
pub struct Rig {
    pub home: Home,
    pub queue_dir: TempDir,
    pub queue: PathBuf,
    pub env: Vec<(String, String)>,
}

/// What one session did.
#[derive(Debug)]
pub struct Session {
    pub out: String,
    pub err: String,
    pub code: Option<i32>,
}

impl Session {
    /// The reply lines, CRLF removed (panics on a bare LF in a reply).
    pub fn lines(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.out.split("\r\n").collect();
        assert_eq!(v.pop(), Some(""), "output must end in CRLF: {:?}", self.out);
        for l in &v {
            assert!(!l.contains('\n'), "bare LF in a reply: {:?}", self.out);
        }
        v
    }
}

/// One message as the queue program received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub message: Vec<u8>,
    pub envelope: Vec<u8>,
}

impl Queued {
    /// The message without the Received line smtpd-front put on top.
    pub fn body(&self) -> &[u8] {
        let m = &self.message;
        assert!(m.starts_with(b"Received: from "), "{:?}", String::from_utf8_lossy(m));
        let first = m.iter().position(|&b| b == b'\n').unwrap();
        let second = first + 1 + m[first + 1..].iter().position(|&b| b == b'\n').unwrap();
        &m[second + 1..]
    }

    pub fn received(&self) -> String {
        let m = &self.message;
        let first = m.iter().position(|&b| b == b'\n').unwrap();
        let second = first + 1 + m[first + 1..].iter().position(|&b| b == b'\n').unwrap();
        String::from_utf8_lossy(&m[..second + 1]).into_owned()
    }

    /// (sender, recipients) from the envelope, checking its format.
    pub fn parsed_envelope(&self) -> (String, Vec<String>) {
        let e = &self.envelope;
        assert!(e.ends_with(b"\0\0"), "{e:?}");
        let items: Vec<&[u8]> = e[..e.len() - 2].split(|&b| b == 0).collect();
        assert_eq!(items[0][0], b'F', "{e:?}");
        let from = String::from_utf8_lossy(&items[0][1..]).into_owned();
        let to = items[1..]
            .iter()
            .map(|i| {
                assert_eq!(i[0], b'T', "{e:?}");
                String::from_utf8_lossy(&i[1..]).into_owned()
            })
            .collect();
        (from, to)
    }
}

impl Rig {
    /// A rig with `control/me` = `mx.test` and `control/rcpthosts`
    /// listing `example.org`.
    pub fn new(tag: &str) -> Rig {
        let home = Home::new(tag);
        home.control("me", "mx.test\n");
        home.control("rcpthosts", "example.org\n");
        let queue_dir = TempDir::new(&format!("{tag}-qq"));
        let queue = home.path().join("fake-queue");
        std::fs::write(&queue, FAKE_QUEUE).unwrap();
        make_executable(&queue);
        let env = vec![
            ("TCPREMOTEIP".to_string(), "192.0.2.7".to_string()),
            ("TCPREMOTEHOST".to_string(), "client.test".to_string()),
            ("TCPLOCALHOST".to_string(), "mx.test".to_string()),
            ("TCPLOCALIP".to_string(), "192.0.2.1".to_string()),
        ];
        Rig { home, queue_dir, queue, env }
    }

    pub fn control(&self, name: &str, body: &str) -> &Rig {
        self.home.control(name, body);
        self
    }

    pub fn remove_control(&self, name: &str) -> &Rig {
        let _ = std::fs::remove_file(self.home.path().join("control").join(name));
        self
    }

    /// Sets (or with `None`, removes) an environment variable.
    pub fn set_env(&mut self, k: &str, v: Option<&str>) -> &mut Rig {
        self.env.retain(|(n, _)| n != k);
        if let Some(v) = v {
            self.env.push((k.to_string(), v.to_string()));
        }
        self
    }

    /// The command, with a clean environment.
    pub fn command(&self) -> Command {
        let mut c = crate::support::command("smtpd-front");
        c.env_clear();
        c.env("PATH", "/usr/bin:/bin");
        c.env("PICOQ_HOME", self.home.path());
        c.env("QMAILQUEUE", &self.queue);
        c.env("QQ_DIR", self.queue_dir.path());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs one session with `input` on fd 0 (a pipe, closed after it).
    pub fn run(&self, input: &[u8]) -> Session {
        let out = crate::support::run_with_input(self.command(), input);
        Session {
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        }
    }

    /// The messages the queue program recorded, oldest first.
    pub fn queued(&self) -> Vec<Queued> {
        let mut pids: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(self.queue_dir.path())
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                let pid = name.strip_prefix("env.")?.to_string();
                Some((e.metadata().unwrap().modified().unwrap(), pid))
            })
            .collect();
        pids.sort();
        pids.into_iter()
            .map(|(_, pid)| Queued {
                message: std::fs::read(self.queue_dir.path().join(format!("msg.{pid}"))).unwrap(),
                envelope: std::fs::read(self.queue_dir.path().join(format!("env.{pid}"))).unwrap(),
            })
            .collect()
    }
}

pub fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Reads everything from `r` (used by the socket tests).
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// A whole SMTP session, lines joined with CRLF.
pub fn crlf(lines: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for l in lines {
        v.extend_from_slice(l.as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// smtpd-front under the real tcpserver (ucspi-tcp) on 127.0.0.1,
/// stopped when dropped.
pub struct Tcpserver {
    pub port: u16,
    child: std::process::Child,
}

impl Tcpserver {
    /// Runs `tcpserver -H -R [-x rules.cdb] 127.0.0.1 PORT smtpd-front`
    /// with the rig's environment; `rules` is tcprules source text.
    pub fn start(rig: &Rig, rules: Option<&str>) -> Tcpserver {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut c = Command::new("tcpserver");
        c.env_clear();
        c.env("PATH", "/usr/bin:/bin");
        c.env("PICOQ_HOME", rig.home.path());
        c.env("QMAILQUEUE", &rig.queue);
        c.env("QQ_DIR", rig.queue_dir.path());
        for (k, v) in &rig.env {
            if !k.starts_with("TCP") {
                c.env(k, v);
            }
        }
        // -H -R -l: no DNS or ident lookups at all. Without -l, tcpserver
        // resolves its own address for TCPLOCALHOST on every connection,
        // which leaves loopback and stalls seconds when DNS is slow.
        c.arg("-H").arg("-R").arg("-l").arg("picoq.test").arg("-c").arg("100");
        if let Some(rules) = rules {
            let src = rig.home.path().join("tcp.smtp");
            let cdb = rig.home.path().join("tcp.smtp.cdb");
            std::fs::write(&src, rules).unwrap();
            let st = Command::new("tcprules")
                .arg(&cdb)
                .arg(rig.home.path().join("tcp.smtp.tmp"))
                .stdin(std::fs::File::open(&src).unwrap())
                .status()
                .expect("tcprules (ucspi-tcp) must be installed: tests/deps.sh");
            assert!(st.success());
            c.arg("-x").arg(&cdb);
        }
        c.arg("127.0.0.1").arg(port.to_string());
        if let Ok(runner) = std::env::var("PICOQ_RUNNER") {
            c.args(runner.split_whitespace());
        }
        c.arg(crate::support::bin("smtpd-front"));
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let child = c.spawn().expect("tcpserver (ucspi-tcp) must be installed: tests/deps.sh");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "tcpserver did not start on port {port}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Tcpserver { port, child }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops tcpserver and returns what it and smtpd-front wrote to fd 2.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let _ = self.child.wait();
        err
    }
}

impl Drop for Tcpserver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs swaks with `args` against `addr`; returns (exit code, transcript).
pub fn swaks(addr: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("swaks")
        .arg("--server")
        .arg(addr)
        .arg("--helo")
        .arg("client.test")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("swaks must be installed: tests/deps.sh");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Runs a Python 3 script (Debian's python3, for smtplib) with `args`.
pub fn python(script: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("/usr/bin/python3");
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Extra peak RSS allowed over a minimal session: fixed buffers are
/// touched by bigger inputs, nothing may grow with them.
pub const RSS_SLACK_KB: u64 = 48;

/// VmHWM (KB) of `pid`, or None when it has exited meanwhile (a zombie's
/// status has no memory lines).
pub fn vm_hwm_if_alive(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn vm_hwm(pid: u32) -> u64 {
    vm_hwm_if_alive(pid).unwrap_or_else(|| panic!("no VmHWM for {pid}"))
}

/// A session driven by a feeder thread: `feed` writes to smtpd-front's
/// stdin, then `replies` reply lines are awaited, smtpd-front's own peak
/// RSS (VmHWM) is read while it waits, and QUIT is sent. Returns the
/// session and the peak RSS in KB.
pub fn measured(r: &Rig, replies: usize, feed: impl FnOnce(&mut dyn Write) + Send + 'static) -> (Session, u64) {
    let mut c = r.command();
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let feeder = std::thread::spawn(move || {
        feed(&mut stdin);
        let _ = rx.recv();
        let _ = stdin.write_all(b"QUIT\r\n");
    });
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    for _ in 0..replies {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        text.push_str(&line);
    }
    let rss = vm_hwm(pid);
    tx.send(()).unwrap();
    let mut rest = String::new();
    let _ = out.read_to_string(&mut rest);
    text.push_str(&rest);
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    (Session { out: text, err: String::from_utf8_lossy(&o.stderr).into_owned(), code: o.status.code() }, rss)
}

/// Peak RSS of a minimal session (one small message), the yardstick of
/// `assert_flat`.
pub fn baseline(r: &Rig) -> u64 {
    let input = crlf(&["HELO x", "MAIL FROM:<a@b.test>", "RCPT TO:<u@example.org>", "DATA", "x", "."]);
    let (s, rss) = measured(r, 6, move |w| {
        let _ = w.write_all(&input);
    });
    assert!(s.out.contains("\r\n250 ok "), "{s:?}");
    rss
}

/// Memory did not grow with the input: at most `RSS_SLACK_KB` over a
/// minimal session, and (native build; qemu adds its own) within the
/// issue's 128 KiB.
pub fn assert_flat(what: &str, base: u64, rss: u64) {
    eprintln!("{what}: peak RSS {rss} KB (minimal session {base} KB)");
    assert!(rss <= base + RSS_SLACK_KB, "{what}: peak RSS {rss} KB vs {base} KB for a minimal session");
    if std::env::var_os("PICOQ_RUNNER").is_none() {
        assert!(rss <= 128, "{what}: peak RSS {rss} KB is over 128 KiB");
    }
}

/// Writes a cdb of `keys` (empty values, as qmail-newmrh makes
/// morercpthosts.cdb) to `path` with tinycdb's `cdb -c`: an independent
/// writer of djb's format, fed cdbmake lines (`+klen,dlen:key->data`).
pub fn write_cdb(path: &Path, keys: &[&str]) {
    let mut input: String = keys.iter().map(|k| format!("+{},0:{k}->\n", k.len())).collect();
    input.push('\n');
    let mut child = Command::new("cdb")
        .arg("-c")
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("tinycdb's cdb must be installed: tests/deps.sh");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "cdb -c {}", path.display());
}
