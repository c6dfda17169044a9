//! The spool path under test as it is deployed: `cargo xtask install` (what
//! `make install` runs) into a private prefix, the spool user `picoq` and a
//! submitter `picoq-test-sub` (system accounts, created when missing), and
//! submissions through `PREFIX/bin/qmail-queue -> queue-shim` as that user.
//!
//! Needs root (CI runs `make test` as root); as anyone else the tests fail
//! with a message saying so. Every test binary installs into
//! the same prefix (one per checkout: its build is cached in
//! `target/install-.../`); the binaries run one after another.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub const SPOOL_USER: &str = "picoq";
pub const SUBMITTER: &str = "picoq-test-sub";

/// An installed tree.
pub struct Install {
    pub prefix: PathBuf,
    pub spool_uid: u32,
    pub sub_uid: u32,
    pub sub_gid: u32,
}

fn root_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// `(uid, gid)` of `user` from /etc/passwd.
pub fn ids(user: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == user).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
    })
}

/// The shared install. Not being root is a failure, not a skip: these
/// tests install setuid programs and create users, and a skipped check
/// must not look like a passed one.
pub fn install() -> &'static Install {
    static INSTALL: OnceLock<Install> = OnceLock::new();
    INSTALL.get_or_init(|| {
        assert!(
            is_root(),
            "the spool tests must run as root (they install a setuid program and create users): run `make test` as root"
        );
        if ids(SUBMITTER).is_none() {
            let st = Command::new("useradd")
                .args(["-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", SUBMITTER])
                .status()
                .unwrap();
            assert!(st.success(), "useradd {SUBMITTER}");
        }
        // One prefix per checkout, traversable by everyone (as a real
        // /var/qmail is): the spool inside is what is private.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in root_dir().to_string_lossy().bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        let base = PathBuf::from(format!("/tmp/picoq-spooltest-{h:016x}"));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let prefix = base.join("home");
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root_dir())
            .args(["run", "--quiet", "--locked", "-p", "xtask", "--target-dir"])
            .arg(root_dir().join("target/spooltest-xtask"))
            .arg("--")
            .arg("install")
            .arg(&prefix)
            // The install's own build goes next to the normal one.
            .env("CARGO_TARGET_DIR", root_dir().join("target"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "xtask install failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let (spool_uid, _) = ids(SPOOL_USER).expect("install creates the spool user");
        let (sub_uid, sub_gid) = ids(SUBMITTER).unwrap();
        Install { prefix, spool_uid, sub_uid, sub_gid }
    })
}

/// What a submission did.
#[derive(Debug)]
pub struct Submitted {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Install {
    pub fn new_dir(&self) -> PathBuf {
        self.prefix.join("queue/new")
    }

    /// A command running `program` as the submitter (real and effective
    /// uid and gid, no supplementary groups).
    pub fn as_submitter(&self, program: &Path) -> Command {
        let mut c = Command::new("/usr/bin/setpriv");
        c.arg(format!("--reuid={}", self.sub_uid))
            .arg(format!("--regid={}", self.sub_gid))
            .arg("--clear-groups")
            .arg(program);
        c
    }

    /// Starts `PREFIX/bin/qmail-queue` as the submitter with `message` on
    /// fd 0 and `envelope` on fd 1 (pipes fed from threads), stderr piped.
    pub fn spawn_submit(&self, message: &[u8], envelope: &[u8]) -> (Child, Vec<std::thread::JoinHandle<()>>) {
        let mut cmd = self.as_submitter(&self.prefix.join("bin/qmail-queue"));
        let (env_r, mut env_w) = std::io::pipe().unwrap();
        cmd.stdin(Stdio::piped()).stdout(Stdio::from(env_r)).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(cmd);
        let mut stdin = child.stdin.take().unwrap();
        let m = message.to_vec();
        let e = envelope.to_vec();
        let t1 = std::thread::spawn(move || {
            let _ = stdin.write_all(&m);
        });
        let t2 = std::thread::spawn(move || {
            let _ = env_w.write_all(&e);
        });
        (child, vec![t1, t2])
    }

    pub fn submit(&self, message: &[u8], envelope: &[u8]) -> Submitted {
        let (child, threads) = self.spawn_submit(message, envelope);
        let out = child.wait_with_output().unwrap();
        for t in threads {
            t.join().unwrap();
        }
        Submitted { code: out.status.code(), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    }

    /// Committed entries whose bytes contain `marker`.
    pub fn entries_with(&self, marker: &str) -> Vec<(PathBuf, Vec<u8>)> {
        files_with(&self.new_dir(), marker)
    }

    /// Files in `queue/tmp/` whose bytes contain `marker`.
    pub fn leftovers_with(&self, marker: &str) -> Vec<(PathBuf, Vec<u8>)> {
        files_with(&self.prefix.join("queue/tmp"), marker)
    }
}

fn files_with(dir: &Path, marker: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if let Ok(b) = std::fs::read(e.path())
            && b.windows(marker.len()).any(|w| w == marker.as_bytes())
        {
            v.push((e.path(), b));
        }
    }
    v
}

/// A spool entry taken apart (see queue-spool(8)): the message, the
/// Received line included, and the envelope.
pub struct Entry {
    pub message: Vec<u8>,
    pub envelope: Vec<u8>,
}

/// Parses an entry; `None` when it is not complete and well-formed.
pub fn parse_entry(b: &[u8]) -> Option<Entry> {
    const HEADER: usize = 28;
    if b.len() < HEADER || &b[..7] != b"picoq1 " || b[HEADER - 1] != b'\n' {
        return None;
    }
    let len: usize = std::str::from_utf8(&b[7..HEADER - 1]).ok()?.parse().ok()?;
    let rest = b.get(HEADER..)?;
    let (message, envelope) = (rest.get(..len)?, rest.get(len..)?);
    if !envelope.starts_with(b"F") || !envelope.ends_with(b"\0\0") {
        return None;
    }
    Some(Entry { message: message.to_vec(), envelope: envelope.to_vec() })
}

impl Install {
    /// `PREFIX/bin/queue-send ARGS` as the spool user (real and effective
    /// ids, no supplementary groups), as cron or daemontools run it.
    pub fn queue_send(&self, args: &[&str]) -> Command {
        let (uid, gid) = ids(SPOOL_USER).unwrap();
        let mut c = Command::new("/usr/bin/setpriv");
        c.arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .arg("--clear-groups")
            .arg(self.prefix.join("bin/queue-send"))
            .args(args)
            .env_remove("PICOQ_HOME");
        c
    }

    /// Writes `PREFIX/control/NAME` (None: removes it).
    pub fn set_control(&self, name: &str, text: Option<&str>) {
        let p = self.prefix.join("control").join(name);
        match text {
            Some(t) => std::fs::write(&p, t).unwrap(),
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }

    /// Empties `queue/new`, `failed`, `info` and `tmp`.
    pub fn clear_queue(&self) {
        for d in ["new", "failed", "info", "tmp"] {
            if let Ok(rd) = std::fs::read_dir(self.prefix.join("queue").join(d)) {
                for e in rd.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// Names in `queue/DIR`.
    pub fn names(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.prefix.join("queue").join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}
