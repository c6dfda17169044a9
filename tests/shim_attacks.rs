//! The setuid attack suite (issue 6, SECURITY.md §queue-shim): the
//! installed `qmail-queue -> queue-shim` (mode 4711, owned by the spool
//! user) attacked by the unprivileged submitter `picoq-test-sub` with
//! everything a local user controls at exec: descriptors, environment,
//! resource limits, umask, argv, signals, links and the cwd.
//!
//! Every case asserts, through `Case::check`:
//! - the outcome is a clean accept (0) or one of the exit codes the case
//!   documents (queue-shim(8), queue-spool(8));
//! - an accepted message is exactly one entry, owned by the spool user,
//!   mode 0600, whose Received line names the submitter's real uid and
//!   whose message and envelope are the bytes submitted; a refused one
//!   leaves no entry and nothing in `queue/tmp/`;
//! - nothing owned by the spool user appeared outside the spool (the
//!   attacker's directory, /tmp, /var/tmp, /dev/shm, the install prefix),
//!   and the attacker's bait (a fake queue-spool, a fake home) never ran.
//!
//! Needs root (see support/spool.rs). The cases run one after another in
//! one test per family; each prints its name, so a failure names its case.

#[path = "support/spool.rs"]
mod spool;
mod support;

use spool::{Install, parse_entry};
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::envelope;

/// The qmail-queue codes a hostile start-up may legitimately produce.
const WRITE_ERROR: i32 = 53;
const ENVELOPE_FORMAT: i32 = 91;
const CANNOT_EXEC: i32 = 120;

fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

/// A directory the attacker owns (mode 0755 inside a fresh /tmp
/// directory), holding bait: `queue-spool` and `qmail-queue` scripts that
/// would leave `PWNED` if anything ran them, a fake home with a `queue/`
/// the attacker can write, a fake `control/`.
struct Lair {
    dir: PathBuf,
}

impl Lair {
    fn new(i: &Install, tag: &str) -> Lair {
        let dir = PathBuf::from(format!("/tmp/picoq-lair-{}", unique(tag)));
        std::fs::create_dir(&dir).unwrap();
        let pwned = dir.join("PWNED");
        let bait = format!("#!/bin/sh\necho \"$0 $*\" >> {}\nexit 0\n", pwned.display());
        for d in ["bin", "home/bin", "home/control", "home/queue/tmp", "home/queue/new"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        for f in ["bin/queue-spool", "home/bin/queue-spool", "queue-spool", "qmail-queue", "bin/sh", "bin/cat"] {
            std::fs::write(dir.join(f), &bait).unwrap();
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.join("home/control/me"), "evil.test\n").unwrap();
        chown_r(&dir, i.sub_uid, i.sub_gid);
        Lair { dir }
    }

    fn pwned(&self) -> bool {
        self.dir.join("PWNED").exists()
    }
}

impl Drop for Lair {
    fn drop(&mut self) {
        let _ = Command::new("chmod").arg("-R").arg("u+rwx").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn chown_r(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(p).status().unwrap();
    assert!(st.success());
}

/// Files owned by `uid` under the places an attacker can name, outside
/// the spool (`PREFIX/queue`).
fn owned_outside_spool(i: &Install, uid: u32, lair: &Path) -> Vec<PathBuf> {
    fn walk(p: &Path, depth: usize, skip: &Path, uid: u32, out: &mut Vec<PathBuf>) {
        if p == skip {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(p) else { return };
        if meta.uid() == uid {
            out.push(p.to_path_buf());
        }
        if meta.is_dir()
            && depth > 0
            && let Ok(rd) = std::fs::read_dir(p)
        {
            for e in rd.flatten() {
                walk(&e.path(), depth - 1, skip, uid, out);
            }
        }
    }
    let skip = i.prefix.join("queue");
    let mut out = Vec::new();
    walk(lair, 8, &skip, uid, &mut out);
    walk(&i.prefix, 8, &skip, uid, &mut out);
    for shallow in ["/tmp", "/var/tmp", "/dev/shm"] {
        walk(Path::new(shallow), 1, &skip, uid, &mut out);
    }
    // The installed shim itself is the spool user's, by design.
    out.retain(|p| p != &i.prefix.join("bin/queue-shim"));
    out.sort();
    out
}

/// One attack: a root-run command line whose last step becomes the
/// submitter and runs the shim; the message on fd 0 and the envelope on
/// fd 1, as a caller of qmail-queue passes them.
struct Case<'a> {
    i: &'a Install,
    name: String,
    tag: String,
    lair: Lair,
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    message: Vec<u8>,
    envelope: Vec<u8>,
    /// Exit codes, besides 0, this case may end with.
    allowed: Vec<i32>,
    /// Whether this case must be accepted.
    must_accept: bool,
    /// Whether the kernel may kill it (a limit the caller chose, such as
    /// RLIMIT_CPU): then nothing may be visible, as after a kill -9.
    may_be_killed: bool,
}

impl<'a> Case<'a> {
    fn new(i: &'a Install, name: &str) -> Case<'a> {
        let tag = unique(name);
        let lair = Lair::new(i, name);
        let message = format!("Subject: {tag}\nFrom: sub@example.org\n\nattack {tag}\n").into_bytes();
        Case {
            i,
            name: name.into(),
            envelope: envelope("sub@example.org", &[&format!("{tag}@example.net")]),
            tag,
            lair,
            argv: Vec::new(),
            env: Vec::new(),
            cwd: None,
            message,
            allowed: Vec::new(),
            must_accept: true,
            may_be_killed: false,
        }
    }

    fn shim(&self) -> PathBuf {
        self.i.prefix.join("bin/qmail-queue")
    }

    /// `setpriv` to the submitter (real and effective ids, no groups).
    fn setpriv(&self) -> Vec<OsString> {
        vec![
            "/usr/bin/setpriv".into(),
            format!("--reuid={}", self.i.sub_uid).into(),
            format!("--regid={}", self.i.sub_gid).into(),
            "--clear-groups".into(),
        ]
    }

    /// The plain submission: setpriv, then the shim.
    fn plain(mut self) -> Self {
        self.argv = self.setpriv();
        self.argv.push(self.shim().into());
        self
    }

    /// As the submitter, `bash -c SCRIPT _ SHIM`: the script ends in
    /// `exec "$1"` (or does its own thing with it).
    fn script(mut self, script: &str) -> Self {
        self.argv = self.setpriv();
        self.argv.extend(["/bin/bash".into(), "-c".into(), script.into(), "_".into(), self.shim().into()]);
        self
    }

    fn allow(mut self, codes: &[i32]) -> Self {
        self.allowed.extend_from_slice(codes);
        self.must_accept = false;
        self
    }

    fn env(mut self, k: impl Into<OsString>, v: impl Into<OsString>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..]);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.cwd {
            c.current_dir(d);
        }
        c
    }

    /// Runs the case and checks everything; returns the exit code.
    fn run(self) -> Option<i32> {
        let before = owned_outside_spool(self.i, self.i.spool_uid, &self.lair.dir);
        let mut cmd = self.command();
        let (env_r, mut env_w) = std::io::pipe().unwrap();
        cmd.stdin(Stdio::piped()).stdout(Stdio::from(env_r)).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{}: {e}", self.name));
        drop(cmd);
        let mut stdin = child.stdin.take().unwrap();
        let (m, e) = (self.message.clone(), self.envelope.clone());
        let t1 = std::thread::spawn(move || {
            let _ = stdin.write_all(&m);
        });
        let t2 = std::thread::spawn(move || {
            let _ = env_w.write_all(&e);
        });
        let out = child.wait_with_output().unwrap();
        t1.join().unwrap();
        t2.join().unwrap();
        let code = out.status.code();
        self.check(code, &String::from_utf8_lossy(&out.stderr), &before);
        code
    }

    fn check(&self, code: Option<i32>, stderr: &str, before: &[PathBuf]) {
        let name = &self.name;
        eprintln!("attack {name}: exit {code:?} {}", stderr.trim());
        match code {
            Some(0) => {}
            Some(c) if !self.must_accept && self.allowed.contains(&c) => {}
            None if self.may_be_killed => {
                assert!(self.i.entries_with(&self.tag).is_empty(), "{name}: killed, yet an entry is visible");
                // A killed writer's temp file is queue-send's to clean.
                for (p, _) in self.i.leftovers_with(&self.tag) {
                    let _ = std::fs::remove_file(p);
                }
            }
            other => panic!("{name}: exit {other:?}, want 0 or {:?}: {stderr}", self.allowed),
        }
        let entries = self.i.entries_with(&self.tag);
        if code == Some(0) {
            assert_eq!(entries.len(), 1, "{name}: one entry");
            let (path, bytes) = &entries[0];
            let meta = std::fs::metadata(path).unwrap();
            assert_eq!(meta.uid(), self.i.spool_uid, "{name}: entry owned by the spool user");
            assert_eq!(meta.mode() & 0o7777, 0o600, "{name}: entry mode");
            let entry = parse_entry(bytes).unwrap_or_else(|| panic!("{name}: incomplete entry"));
            let text = String::from_utf8_lossy(&entry.message).into_owned();
            let first = text.lines().next().unwrap_or("");
            assert!(
                first.starts_with("Received: (qmail ")
                    && first.contains(&format!(" invoked by uid {}); ", self.i.sub_uid)),
                "{name}: Received line {first:?} must name uid {}",
                self.i.sub_uid
            );
            assert!(entry.message.ends_with(&self.message), "{name}: message bytes");
            assert_eq!(entry.envelope, self.envelope, "{name}: envelope");
            std::fs::remove_file(path).unwrap();
        } else {
            assert!(entries.is_empty(), "{name}: refused, yet an entry exists");
        }
        assert!(self.i.leftovers_with(&self.tag).is_empty(), "{name}: leftovers in queue/tmp");
        assert!(!self.lair.pwned(), "{name}: the attacker's bait ran");
        let after = owned_outside_spool(self.i, self.i.spool_uid, &self.lair.dir);
        let new: Vec<_> = after.iter().filter(|p| !before.contains(p)).collect();
        assert!(new.is_empty(), "{name}: the spool user wrote outside the spool: {new:?}");
    }
}

/// fds 0, 1 and 2 closed at exec, alone and together: `Start` puts
/// /dev/null on them. A closed fd 0 is an empty message (accepted), a
/// closed fd 1 an empty envelope (91), a closed fd 2 changes nothing.
#[test]
fn closed_standard_descriptors() {
    let i = spool::install();
    let mut n = 0;
    for (name, script, want) in [
        ("fd2-closed", r#"exec 2>&- "$1""#, Some(0)),
        ("fd0-closed", r#"exec 0<&- "$1""#, Some(0)),
        ("fd1-closed", r#"exec 1>&- "$1""#, Some(ENVELOPE_FORMAT)),
        ("fd012-closed", r#"exec 0<&- 1>&- 2>&- "$1""#, Some(ENVELOPE_FORMAT)),
        ("fd01-closed", r#"exec 0<&- 1>&- "$1""#, Some(ENVELOPE_FORMAT)),
    ] {
        let mut c = Case::new(i, name).script(script);
        if name == "fd0-closed" {
            // The message is /dev/null: an empty one, still queued.
            c.message = Vec::new();
        }
        let c = if want == Some(0) { c } else { c.allow(&[ENVELOPE_FORMAT]) };
        let must_refuse = want != Some(0);
        let got = c.run();
        if must_refuse {
            assert_eq!(got, want, "{name}");
        }
        n += 1;
    }
    eprintln!("closed_standard_descriptors: {n} cases passed");
}

/// The environment is never read: the loader variables (the binary is
/// static; there is no loader), PATH/IFS/TMPDIR, qmail's and picoq's own
/// variables pointing at the attacker's bait, huge values and 10,000
/// variables.
#[test]
fn hostile_environment() {
    let i = spool::install();
    let mut n = 0;
    let build = |name: &str| {
        let c = Case::new(i, name).plain();
        let l = c.lair.dir.clone();
        c.env("LD_PRELOAD", l.join("evil.so"))
            .env("LD_LIBRARY_PATH", &l)
            .env("PATH", l.join("bin"))
            .env("IFS", "/")
            .env("TMPDIR", &l)
            .env("QMAILQUEUE", l.join("qmail-queue"))
            .env("PICOQ_HOME", l.join("home"))
            .env("HOME", l.join("home"))
            .env("MALLOC_CHECK_", "3")
    };
    build("env-bait").run();
    n += 1;
    // Values near the kernel's per-string limit (MAX_ARG_STRLEN, 128 KiB).
    let huge = "A".repeat(120 * 1024);
    build("env-huge").env("PICOQ_HOME", &huge).env("PATH", &huge).env(&huge[..4000], "x").run();
    n += 1;
    // 10,000 variables.
    let mut c = build("env-10000");
    for k in 0..10_000 {
        c = c.env(format!("V{k}"), format!("/tmp/{k}"));
    }
    c.run();
    n += 1;
    // No environment at all.
    let mut c = Case::new(i, "env-empty");
    c.argv = vec!["/usr/bin/env".into(), "-i".into()];
    c.argv.extend(c.setpriv());
    c.argv.push(c.shim().into());
    c.run();
    n += 1;
    eprintln!("hostile_environment: {n} cases passed");
}

/// Resource limits of the attacker's choosing: each a clean accept or a
/// clean refusal with no partial entry.
#[test]
fn hostile_resource_limits() {
    let i = spool::install();
    let mut n = 0;
    // (name, prlimit option, codes besides 0, must the message be accepted)
    let cases: [(&str, &str, &[i32], bool); 10] = [
        // One byte: the entry can't be written; EFBIG (SIGXFSZ ignored), 53.
        ("fsize-1", "--fsize=1", &[WRITE_ERROR], false),
        ("fsize-0", "--fsize=0", &[WRITE_ERROR], false),
        // Room for the header, not the message.
        ("fsize-100", "--fsize=100", &[WRITE_ERROR], false),
        ("fsize-big", "--fsize=1048576", &[], true),
        // Only the three standard descriptors: nothing more can be opened.
        ("nofile-3", "--nofile=3", &[WRITE_ERROR, CANNOT_EXEC, 61, 62, 55], false),
        ("nofile-8", "--nofile=8", &[], true),
        // RLIMIT_NPROC may be checked against the spool user at the execve
        // after the drop (EAGAIN, exit 120); Linux 6.x lets it through.
        ("nproc-0", "--nproc=0", &[CANNOT_EXEC], false),
        // 0: the kernel may kill it at the next tick (SIGXCPU, then
        // SIGKILL): nothing visible, as after any kill. 2 s is plenty.
        ("cpu-0", "--cpu=0", &[], false),
        ("cpu-2", "--cpu=2", &[], true),
        ("stack-small", "--stack=65536", &[], true),
    ];
    for (name, opt, codes, accept) in cases {
        // As the submitter, prlimit sets the limit on itself and execs
        // the shim (it is the last dynamic program to load).
        let mut c = Case::new(i, name);
        c.argv = c.setpriv();
        c.argv.extend(["/usr/bin/prlimit".into(), opt.into(), "--".into(), c.shim().into()]);
        let mut c = if accept { c } else { c.allow(codes) };
        c.may_be_killed = name == "cpu-0";
        let got = c.run();
        if name == "fsize-1" || name == "fsize-100" {
            assert_ne!(got, Some(0), "{name} cannot be accepted");
        }
        n += 1;
    }
    eprintln!("hostile_resource_limits: {n} cases passed");
}

/// umask 0 and 0777: the entry is 0600 either way (the shim sets 077; the
/// spool sets modes explicitly).
#[test]
fn hostile_umask() {
    let i = spool::install();
    for (name, script) in [("umask-0", r#"umask 0; exec "$1""#), ("umask-777", r#"umask 0777; exec "$1""#)] {
        Case::new(i, name).script(script).run();
    }
    eprintln!("hostile_umask: 2 cases passed");
}

/// argv is never read: empty (argc 0, through execve), argv[0] naming
/// another program, option-like arguments, a forged uid.
#[test]
fn hostile_argv() {
    let i = spool::install();
    let mut n = 0;
    // argc == 0: python's ctypes calls execve(path, {NULL}, envp).
    let empty = r#"import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
argv = (ctypes.c_char_p * 1)(None)
envp = (ctypes.c_char_p * 2)(b"PATH=/nonexistent", None)
libc.execve(sys.argv[1].encode(), argv, envp)
sys.exit(99)
"#;
    let mut c = Case::new(i, "argv-empty");
    c.argv = c.setpriv();
    c.argv.extend(["/usr/bin/python3".into(), "-c".into(), empty.into(), c.shim().into()]);
    c.run();
    n += 1;
    for (name, argv0) in [("argv0-spool", "queue-spool"), ("argv0-path", "/tmp/evil/queue-spool"), ("argv0-empty", "")]
    {
        let c = Case::new(i, name);
        let script = format!(r#"exec -a '{argv0}' "$1""#);
        c.script(&script).run();
        n += 1;
    }
    for (name, args) in [
        ("args-options", &["-h", "--help", "-d", "/tmp", "--home=/tmp", "--"][..]),
        ("args-uid", &["0"][..]),
        ("args-many", &["-x"; 1000][..]),
    ] {
        let mut c = Case::new(i, name).plain();
        c.argv.extend(args.iter().map(OsString::from));
        c.run();
        n += 1;
    }
    eprintln!("hostile_argv: {n} cases passed");
}

/// `/proc/PID/status` field `name` (e.g. "Uid:") as its numbers.
fn status_ids(pid: u32, name: &str) -> Option<Vec<u32>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(name))?;
    Some(line[name.len()..].split_whitespace().filter_map(|x| x.parse().ok()).collect())
}

/// Once the ids are dropped the submitter can't signal the process: kill
/// gets EPERM for every signal, while the message is still being written.
/// Before the drop (in the shim's first microseconds) a signal may kill
/// it: a storm of signals leaves either nothing or a complete entry.
#[test]
fn signals_from_the_submitter() {
    let i = spool::install();
    // 1. Blocked in the middle of the message: queue-spool is running as
    // the spool user; every kill(2) by the submitter is EPERM.
    let c = Case::new(i, "signal-eperm").plain();
    let before = owned_outside_spool(i, i.spool_uid, &c.lair.dir);
    let mut cmd = c.command();
    let (env_r, mut env_w) = std::io::pipe().unwrap();
    cmd.stdin(Stdio::piped()).stdout(Stdio::from(env_r)).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&c.message[..10]).unwrap();
    // setpriv execs the shim, which execs queue-spool: same pid.
    let t0 = std::time::Instant::now();
    loop {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        if exe.ends_with("queue-spool") {
            break;
        }
        assert!(t0.elapsed().as_secs() < 10, "queue-spool never started");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(status_ids(pid, "Uid:").unwrap(), vec![i.spool_uid; 4], "queue-spool runs as the spool user only");
    let mut refused = 0;
    for sig in ["0", "TERM", "KILL", "INT", "HUP", "STOP", "SEGV", "ALRM", "XFSZ", "PIPE", "USR1"] {
        let out = Command::new("/usr/bin/setpriv")
            .arg(format!("--reuid={}", i.sub_uid))
            .arg(format!("--regid={}", i.sub_gid))
            .arg("--clear-groups")
            .args(["/bin/kill", "-s", sig])
            .arg(pid.to_string())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "kill -{sig} by the submitter succeeded");
        assert!(err.contains("Operation not permitted"), "kill -{sig}: want EPERM, got {err}");
        refused += 1;
    }
    stdin.write_all(&c.message[10..]).unwrap();
    drop(stdin);
    env_w.write_all(&c.envelope).unwrap();
    drop(env_w);
    let out = child.wait_with_output().unwrap();
    c.check(out.status.code(), &String::from_utf8_lossy(&out.stderr), &before);
    eprintln!("signals: {refused} kill(2) calls by the submitter refused with EPERM");

    // 2. A storm from the start: the submitter (who may signal the shim
    // until it drops) sends TERM, HUP, INT, USR1 and ALRM as fast as it can.
    let mut outcomes = [0usize; 3]; // accepted, killed before the drop, other
    for k in 0..40 {
        let c = Case::new(i, &format!("signal-storm-{k}")).plain();
        let before = owned_outside_spool(i, i.spool_uid, &c.lair.dir);
        let mut cmd = c.command();
        let (env_r, mut env_w) = std::io::pipe().unwrap();
        cmd.stdin(Stdio::piped()).stdout(Stdio::from(env_r)).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        drop(cmd);
        let pid = child.id().to_string();
        let storm = Command::new("/usr/bin/setpriv")
            .arg(format!("--reuid={}", i.sub_uid))
            .arg(format!("--regid={}", i.sub_gid))
            .arg("--clear-groups")
            .args([
                "/bin/sh",
                "-c",
                "for s in TERM HUP INT USR1 ALRM TERM HUP INT USR1 ALRM; do kill -s $s $0 2>/dev/null; done",
            ])
            .arg(&pid)
            .status();
        let _ = storm;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&c.message);
        drop(stdin);
        let _ = env_w.write_all(&c.envelope);
        drop(env_w);
        let out = child.wait_with_output().unwrap();
        use std::os::unix::process::ExitStatusExt;
        if out.status.signal().is_some() {
            // Killed before the drop: nothing may exist.
            assert!(i.entries_with(&c.tag).is_empty(), "killed, yet an entry exists");
            assert!(i.leftovers_with(&c.tag).is_empty());
            outcomes[1] += 1;
        } else {
            c.check(out.status.code(), &String::from_utf8_lossy(&out.stderr), &before);
            outcomes[if out.status.code() == Some(0) { 0 } else { 2 }] += 1;
        }
    }
    eprintln!(
        "signal storm: 40 submissions, {} accepted, {} killed before the drop (nothing written), {} other",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert_eq!(outcomes[2], 0);
}

/// A hard link to the shim in a directory the attacker owns, next to a
/// fake queue-spool and a fake queue: the shim uses its compiled-in path.
/// With fs.protected_hardlinks = 1 the attacker can't make the link
/// (EPERM, checked); root makes it so the case still runs (as it would
/// with protected_hardlinks = 0).
#[test]
fn hard_and_symbolic_links_planted_by_the_attacker() {
    let i = spool::install();
    let protected = std::fs::read_to_string("/proc/sys/fs/protected_hardlinks").unwrap().trim() == "1";
    let mut c = Case::new(i, "hardlink");
    let link = c.lair.dir.join("bin/qmail-queue");
    let out = Command::new("/usr/bin/setpriv")
        .arg(format!("--reuid={}", i.sub_uid))
        .arg(format!("--regid={}", i.sub_gid))
        .arg("--clear-groups")
        .arg("/bin/ln")
        .arg(i.prefix.join("bin/queue-shim"))
        .arg(&link)
        .output()
        .unwrap();
    if protected {
        assert!(!out.status.success(), "protected_hardlinks = 1, yet the attacker linked the shim");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
        std::fs::hard_link(i.prefix.join("bin/queue-shim"), &link).unwrap();
    } else {
        assert!(out.status.success(), "protected_hardlinks = 0: the link is possible");
    }
    eprintln!("hardlink: protected_hardlinks={} (attacker's own link refused: {protected})", protected as u8);
    c.argv = c.setpriv();
    c.argv.push(link.clone().into());
    c.cwd = Some(c.lair.dir.join("bin"));
    c.run();
    // The lair went with the case, and the setuid link in it.
    assert!(!link.exists());

    // A symbolic link to qmail-queue (itself a symlink) in the lair, run
    // from a cwd full of symlinks named like the spool's pieces and
    // pointing at a root-owned canary.
    let canary = PathBuf::from(format!("/tmp/picoq-canary-{}", unique("c")));
    std::fs::write(&canary, "canary\n").unwrap();
    let mut c = Case::new(i, "symlinks");
    for name in ["queue", "tmp", "new", "trigger", "control", "queue-spool", "me", "lock"] {
        std::os::unix::fs::symlink(&canary, c.lair.dir.join(name)).unwrap_or_else(|_| {
            let _ = std::fs::remove_file(c.lair.dir.join(name));
            std::os::unix::fs::symlink(&canary, c.lair.dir.join(name)).unwrap();
        });
    }
    std::os::unix::fs::symlink(i.prefix.join("bin/qmail-queue"), c.lair.dir.join("q")).unwrap();
    c.argv = c.setpriv();
    c.argv.push(c.lair.dir.join("q").into());
    c.cwd = Some(c.lair.dir.clone());
    c = c.env("PICOQ_HOME", ".").env("TMPDIR", ".");
    c.run();
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), "canary\n");
    assert_eq!(std::fs::metadata(&canary).unwrap().uid(), 0);
    std::fs::remove_file(&canary).unwrap();
    eprintln!("links: 2 cases passed");
}

/// A cwd the process can't read or search, and a cwd that was deleted.
#[test]
fn unreadable_and_deleted_cwd() {
    let i = spool::install();
    let mut c = Case::new(i, "cwd-unreadable").plain();
    let d = c.lair.dir.join("closed");
    std::fs::create_dir(&d).unwrap();
    chown_r(&d, i.sub_uid, i.sub_gid);
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o000)).unwrap();
    c.cwd = Some(d);
    c.run();
    let c = Case::new(i, "cwd-deleted")
        .script(r#"mkdir "$HOME_D/gone" && cd "$HOME_D/gone" && rmdir "$HOME_D/gone" && exec "$1""#);
    let lair = c.lair.dir.clone();
    c.env("HOME_D", lair).run();
    eprintln!("cwd: 2 cases passed");
}

/// The xtask binary the spool install built (`oldkernel-exec` lives there).
fn xtask_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/spooltest-xtask/debug/xtask")
}

/// Descriptors of `pid` open on `target`, and whether fd 6 is.
fn fds_of(pid: u32, target: &Path) -> (Vec<u32>, bool) {
    let mut v = Vec::new();
    let mut six = false;
    for e in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let to = std::fs::read_link(e.path()).unwrap_or_default();
        if to == target {
            v.push(n);
        }
        if n == 6 && to == Path::new("/dev/null") {
            six = true;
        }
    }
    v.sort();
    (v, six)
}

/// Runs `script` (bash, as `user`'s ids) which ends by exec'ing the shim
/// with `$1`; waits until queue-spool runs, returns its descriptors, then
/// finishes the submission.
fn descriptors_reaching_queue_spool(
    i: &Install,
    name: &str,
    uid_gid: (u32, u32),
    prefix: &[&str],
    script: &str,
) -> (Vec<u32>, bool, Option<i32>) {
    let mut c = Case::new(i, name);
    // The descriptors to leak are opened on this file (LEAK in `script`).
    let leak = c.lair.dir.join("leak");
    std::fs::write(&leak, "leak\n").unwrap();
    let script = script.replace("LEAK", leak.to_str().unwrap());
    let mut argv: Vec<OsString> = prefix.iter().map(OsString::from).collect();
    argv.extend([
        "/usr/bin/setpriv".into(),
        format!("--reuid={}", uid_gid.0).into(),
        format!("--regid={}", uid_gid.1).into(),
        "--clear-groups".into(),
        "/bin/bash".into(),
        "-c".into(),
        script.into(),
        "_".into(),
        c.shim().into(),
    ]);
    c.argv = argv;
    let mut cmd = c.command();
    let (env_r, mut env_w) = std::io::pipe().unwrap();
    cmd.stdin(Stdio::piped()).stdout(Stdio::from(env_r)).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&c.message[..5]).unwrap();
    // The shim (or a wrapper) may be a child of `pid`: find the
    // queue-spool among pid and its descendants.
    let t0 = std::time::Instant::now();
    let spool_pid = loop {
        let mut found = None;
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            if std::fs::read_link(format!("/proc/{p}/exe")).map(|x| x.ends_with("queue-spool")).unwrap_or(false) {
                // Ours: its stdin is our pipe's reader, the same as child's.
                let env = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                let _ = env;
                let mut q = p;
                while q > 1 {
                    if q == pid {
                        found = Some(p);
                        break;
                    }
                    q = status_ids(q, "PPid:").and_then(|v| v.first().copied()).unwrap_or(1);
                }
            }
        }
        if let Some(p) = found {
            break p;
        }
        assert!(t0.elapsed().as_secs() < 10, "{name}: queue-spool never started");
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    let (fds, six) = fds_of(spool_pid, &leak);
    stdin.write_all(&c.message[5..]).unwrap();
    drop(stdin);
    env_w.write_all(&c.envelope).unwrap();
    drop(env_w);
    let out = child.wait_with_output().unwrap();
    let code = out.status.code();
    eprintln!(
        "{name}: queue-spool had leaked fds {fds:?}, fd 6 kept {six}; exit {code:?} {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    // Clean the entry (the spool user's own submission is accepted).
    for (p, _) in i.entries_with(&c.tag) {
        std::fs::remove_file(p).unwrap();
    }
    (fds, six, code)
}

/// SPEC §6 step 3: every fd ≥ 3 closed but 6. Descriptors at 3, 5, 7, 63
/// and 900 reach the shim; queue-spool must see only 0, 1, 2 and 6, on
/// a current kernel (close_range) and on a Linux 3.2 one (`xtask
/// oldkernel-exec`: close_range is ENOSYS, so the shim walks
/// /proc/self/fd) with RLIMIT_NOFILE lowered to 64 below fd 900 (soft and
/// hard: the descriptor outlives the limit), and without /proc (a private
/// mount namespace with an empty /proc) where the fallback closes up to
/// the hard limit. Under seccomp's no_new_privs the setuid bit is
/// ignored, so those runs are the spool user's own (as queue-send's
/// bounces are).
#[test]
fn descriptors_above_2_never_reach_queue_spool() {
    let i = spool::install();
    let leak = r#"exec 3<LEAK 5<LEAK 6>/dev/null 7<LEAK 63<LEAK 900<LEAK"#;
    let sub = (i.sub_uid, i.sub_gid);
    let (spool_uid, spool_gid) = spool::ids(spool::SPOOL_USER).unwrap();
    let want = (vec![], true, Some(0));
    // Current kernel, the setuid path.
    let got = descriptors_reaching_queue_spool(i, "fds-setuid", sub, &[], &format!(r#"{leak}; exec "$1""#));
    assert_eq!(got, want);
    // Soft limit 64 below fd 900, hard limit unchanged.
    let got = descriptors_reaching_queue_spool(
        i,
        "fds-setuid-soft64",
        sub,
        &[],
        &format!(r#"{leak}; ulimit -Sn 64; exec "$1""#),
    );
    assert_eq!(got, want);
    let xtask = xtask_bin();
    assert!(xtask.exists(), "{} (built by the spool install)", xtask.display());
    let ok = xtask.to_str().unwrap();
    // Old kernel: close_range is ENOSYS; /proc/self/fd is walked.
    let got = descriptors_reaching_queue_spool(
        i,
        "fds-oldkernel-nofile64",
        (spool_uid, spool_gid),
        &[],
        &format!(r#"{leak}; ulimit -n 64; exec {ok} oldkernel-exec "$1""#),
    );
    assert_eq!(got, want);
    // Old kernel, the table full but one slot (the launcher's dynamic
    // loader needs one to start; a completely full table can't be set up
    // through it), limit 64 soft and hard.
    // (One exec per number: bash lets a multi-redirection exec collide.)
    let full = r#"for n in 4 $(seq 8 61); do eval "exec $n<LEAK"; done"#;
    let got = descriptors_reaching_queue_spool(
        i,
        "fds-oldkernel-nearly-full-table",
        (spool_uid, spool_gid),
        &[],
        &format!(r#"{leak}; {full}; ulimit -n 64; exec {ok} oldkernel-exec "$1""#),
    );
    assert_eq!(got, want);
    // Old kernel and no /proc: the soft limit lowered under fd 900, the
    // hard one not: the fallback closes up to the hard limit.
    let no_proc = [
        "/usr/bin/unshare",
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        "mount -t tmpfs none /proc && exec \"$@\"",
        "_",
    ];
    let got = descriptors_reaching_queue_spool(
        i,
        "fds-oldkernel-noproc-soft64",
        (spool_uid, spool_gid),
        &no_proc,
        &format!(r#"{leak}; ulimit -Sn 64; exec {ok} oldkernel-exec "$1""#),
    );
    assert_eq!(got, want);
    eprintln!("descriptors: 5 cases passed");
}
