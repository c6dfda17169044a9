//! Shared helpers for picoq's black-box tests: where the programs are,
//! throw-away home directories, and running a qmail-queue program with the
//! message on fd 0, the envelope on fd 1 and, optionally, fd 6 open.
//!
//! The programs under test are `$PICOQ_BIN_DIR/<name>` when set (`make test`
//! points it at the musl release build, `cargo xtask cross-test` at a cross
//! build), else the binaries cargo built for this test run. `$PICOQ_RUNNER`
//! (e.g. `qemu-mips-static`) prefixes every program run.
#![allow(dead_code)]

pub mod qmqp_script;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The path of program `name`.
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PICOQ_BIN_DIR") {
        let p = Path::new(&dir).join(name);
        assert!(p.exists(), "PICOQ_BIN_DIR is set but {} does not exist", p.display());
        return p;
    }
    let built = match name {
        "qmqpc" => env!("CARGO_BIN_EXE_qmqpc"),
        "qmqpd" => env!("CARGO_BIN_EXE_qmqpd"),
        "smtpd-front" => env!("CARGO_BIN_EXE_smtpd-front"),
        "queue-shim" => env!("CARGO_BIN_EXE_queue-shim"),
        "queue-spool" => env!("CARGO_BIN_EXE_queue-spool"),
        other => panic!("unknown program {other}"),
    };
    PathBuf::from(built)
}

/// A command running program `name`, through `$PICOQ_RUNNER` if set.
pub fn command(name: &str) -> Command {
    match std::env::var("PICOQ_RUNNER") {
        Ok(runner) if !runner.is_empty() => {
            let mut words = runner.split_whitespace();
            let mut c = Command::new(words.next().unwrap());
            c.args(words).arg(bin(name));
            c
        }
        _ => Command::new(bin(name)),
    }
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("picoq-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A picoq home (`$PICOQ_HOME`) with a `control/` directory.
pub struct Home {
    pub dir: TempDir,
}

impl Home {
    pub fn new(tag: &str) -> Home {
        let dir = TempDir::new(tag);
        std::fs::create_dir(dir.path().join("control")).unwrap();
        Home { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    /// Writes `control/<name>`.
    pub fn control(&self, name: &str, body: &str) -> &Home {
        std::fs::write(self.path().join("control").join(name), body).unwrap();
        self
    }
}

/// Builds a qmail-queue envelope: `F` sender NUL, `T` recipient NUL..., NUL.
pub fn envelope(sender: &str, recipients: &[&str]) -> Vec<u8> {
    let mut e = Vec::new();
    e.push(b'F');
    e.extend_from_slice(sender.as_bytes());
    e.push(0);
    for r in recipients {
        e.push(b'T');
        e.extend_from_slice(r.as_bytes());
        e.push(0);
    }
    e.push(0);
    e
}

/// How the message reaches fd 0.
pub enum Message<'a> {
    /// Through a pipe.
    Pipe(&'a [u8]),
    /// As a regular file, opened from its start.
    File(&'a Path),
}

/// What a qmail-queue program did.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stderr: String,
    /// What it wrote to fd 6, when fd 6 was open.
    pub fd6: Option<Vec<u8>>,
}

/// Runs qmail-queue program `name` with `home` as `$PICOQ_HOME`, the
/// message on fd 0 and `env` (raw bytes) on fd 1 through a pipe. With
/// `open_fd6`, fd 6 is a file whose contents are returned.
pub fn run_queue(name: &str, home: &Path, message: Message<'_>, env: &[u8], open_fd6: bool) -> Outcome {
    run_queue_with(name, home, message, env, open_fd6, &[])
}

pub fn run_queue_with(
    name: &str,
    home: &Path,
    message: Message<'_>,
    env: &[u8],
    open_fd6: bool,
    extra_env: &[(&str, &str)],
) -> Outcome {
    let scratch = TempDir::new("run");
    let fd6_path = scratch.path().join("fd6");
    let mut cmd = if open_fd6 {
        // std::process can't place an arbitrary fd; the shell can.
        let mut c = Command::new("/bin/sh");
        let runner = std::env::var("PICOQ_RUNNER").unwrap_or_default();
        c.arg("-c").arg(format!("exec {runner} \"$0\" 6>\"$1\"")).arg(bin(name)).arg(&fd6_path);
        c
    } else {
        command(name)
    };
    cmd.env("PICOQ_HOME", home);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let (env_r, mut env_w) = std::io::pipe().unwrap();
    cmd.stdout(Stdio::from(env_r)).stderr(Stdio::piped());
    let mut pipe_body = None;
    match message {
        Message::Pipe(b) => {
            cmd.stdin(Stdio::piped());
            pipe_body = Some(b.to_vec());
        }
        Message::File(p) => {
            cmd.stdin(Stdio::from(std::fs::File::open(p).unwrap()));
        }
    }
    let mut child = cmd.spawn().expect("spawn program under test");
    drop(cmd);
    // Feed the message and then the envelope from threads, as a real caller
    // does: the program reads fd 0 to its end before it reads fd 1.
    let msg_thread = pipe_body.map(|b| {
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&b);
        })
    });
    let env_bytes = env.to_vec();
    let env_thread = std::thread::spawn(move || {
        let _ = env_w.write_all(&env_bytes);
    });
    let out = child.wait_with_output().unwrap();
    if let Some(t) = msg_thread {
        t.join().unwrap();
    }
    env_thread.join().unwrap();
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        fd6: if open_fd6 { Some(std::fs::read(&fd6_path).unwrap()) } else { None },
    }
}

/// Runs `cmd` with `input` written to its fd 0 from a thread (so a program
/// that answers while it reads can't deadlock the test), and collects
/// fds 1 and 2 and the exit status.
pub fn run_with_input(mut cmd: Command, input: &[u8]) -> std::process::Output {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the program under test");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// A message with the headers qmail-inject would add, `size` bytes in all,
/// ending in a newline; lines are at most 78 bytes.
pub fn message_of_size(id: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "Date: 21 Nov 2026 05:43:00 -0000\nMessage-Id: <{id}@test.picoq>\nFrom: a@example.org\nTo: b@example.org\nSubject: {id}\n\n"
    )
    .into_bytes();
    let mut i = 0u64;
    while m.len() < size {
        let line = format!("line {i:08} the quick brown fox jumps over the lazy dog\n");
        m.extend_from_slice(line.as_bytes());
        i += 1;
    }
    m.truncate(size - 1);
    m.push(b'\n');
    m
}
