//! `cargo xtask bench`: sizes, callgrind instruction counts and peak RSS,
//! each printed with the command that reproduces it, its target and qmail's
//! reference figure (../shared/PEERS.md, "Measuring").
//!
//! Each program gets one function (see `PROGRAMS`) built from the helpers
//! here: `callgrind` (Ir of the program alone), `top_functions` (the
//! per-function view of a `bench-symbols` build) and `peak_rss` (VmHWM of
//! the program itself). Inputs live in `target/xtask-bench/`, which is kept
//! so that the printed commands can be rerun.
//!
//! Exit status: 0 when every figure was measured, whether or not it meets
//! its target; 1 when something could not be measured.

mod qmqp_stub;
mod qmqpc;
mod smtpd;
mod spool;

use crate::{HOST_TRIPLE, root, sh_quote, show, size, target_dir, targets, thousands};
use qmqp_stub::Stub;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitCode, Stdio};

/// One program's benchmarks.
type ProgramBench = fn(&mut Bench);

/// The programs with benchmarks, in the order they run.
const PROGRAMS: &[(&str, ProgramBench)] =
    &[("qmqpc", qmqpc::bench), ("smtpd-front", smtpd::bench), ("queue-send", spool::bench)];

/// Writes a message into the program's fd 0 pipe (then drops it: EOF).
pub type Feed = Box<dyn FnOnce(ChildStdin) + Send>;

pub fn main(args: &[String]) -> ExitCode {
    if !args.is_empty() {
        return crate::usage("bench takes no arguments");
    }
    println!("$ cargo xtask bench");
    let root = root();
    let target = match targets::load(&root, HOST_TRIPLE) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask bench: {e}");
            return ExitCode::FAILURE;
        }
    };

    heading("Sizes (same as `cargo xtask size`)");
    if let Err(e) = size::build(&root, &target, &["--release"]) {
        eprintln!("xtask bench: {e}");
        return ExitCode::FAILURE;
    }
    size::report(&root, &target);

    // Symbols only change what callgrind_annotate can name, not the code.
    println!();
    let symbols = match size::build(&root, &target, &["--profile", "bench-symbols"]) {
        Ok(()) => Some(size::bin_dir(&root, HOST_TRIPLE, "bench-symbols")),
        Err(e) => {
            println!("note: no per-function view: {e}");
            None
        }
    };

    let mut b = match Bench::new(root, symbols) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!();
    println!("Commands below run in {}/ (inputs are kept there).", show(&b.root, &b.work));
    println!(
        "The QMQP server is xtask's loopback stub on 127.0.0.1:{}: it reads one packet and answers 3:Kok,",
        b.stub.port
    );
    println!("(to rerun a command by hand, run any QMQP server there, or edit the home's control/qmqpservers).");
    for (name, f) in PROGRAMS {
        if b.release.join(name).exists() {
            f(&mut b);
        } else {
            b.unmeasured(name, &format!("{} is not built", show(&b.root, &b.release.join(name))));
        }
    }

    heading("Summary");
    println!(
        "{} figures: {} PASS, {} missed their target, {} without a target",
        b.counts.0 + b.counts.1 + b.counts.2,
        b.counts.0,
        b.counts.1,
        b.counts.2
    );
    if b.failures.is_empty() {
        println!("everything was measured");
        ExitCode::SUCCESS
    } else {
        println!("could not measure:");
        for f in &b.failures {
            println!("  {f}");
        }
        ExitCode::FAILURE
    }
}

fn heading(s: &str) {
    println!();
    println!("== {s} ==");
}

/// A measured figure compared with its target.
pub struct Figure<'a> {
    pub what: &'a str,
    /// How to reproduce it: a shell command (run in the work directory) or
    /// a description.
    pub how: &'a str,
    pub value: u64,
    pub unit: &'a str,
    /// The figure passes when `value <= target`.
    pub target: Option<u64>,
    /// qmail's figure for the same job, as text ("21,844").
    pub qmail: Option<&'a str>,
}

/// How the message reaches fd 0.
#[derive(Clone, Copy)]
pub enum Input<'a> {
    /// A regular file: `<file`.
    File(&'a Path),
    /// A pipe fed by `cat file |`.
    Pipe(&'a Path),
}

impl Input<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Input::File(_) => "file",
            Input::Pipe(_) => "pipe",
        }
    }
}

pub struct Bench {
    pub root: PathBuf,
    /// Release programs (stripped): what is measured.
    pub release: PathBuf,
    /// `bench-symbols` programs, for callgrind_annotate.
    pub symbols: Option<PathBuf>,
    /// `target/xtask-bench`: inputs, homes, callgrind output.
    pub work: PathBuf,
    pub stub: Stub,
    /// PASS, OVER, no target.
    counts: (usize, usize, usize),
    failures: Vec<String>,
    time_checked: Option<bool>,
}

impl Bench {
    fn new(root: PathBuf, symbols: Option<PathBuf>) -> Result<Bench, String> {
        let work = target_dir(&root).join("xtask-bench");
        for d in ["cg", "in", "home"] {
            std::fs::create_dir_all(work.join(d)).map_err(|e| format!("{}: {e}", work.join(d).display()))?;
        }
        let stub = Stub::start().map_err(|e| format!("cannot start the QMQP stub: {e}"))?;
        let release = size::bin_dir(&root, HOST_TRIPLE, "release");
        Ok(Bench { root, release, symbols, work, stub, counts: (0, 0, 0), failures: Vec::new(), time_checked: None })
    }

    pub fn heading(&self, s: &str) {
        heading(s);
    }

    /// Writes `in/<name>` (unless it already holds `body`); returns its
    /// path relative to the work directory.
    pub fn input(&mut self, name: &str, body: &[u8]) -> PathBuf {
        let rel = Path::new("in").join(name);
        let p = self.work.join(&rel);
        if std::fs::read(&p).ok().as_deref() != Some(body)
            && let Err(e) = std::fs::write(&p, body)
        {
            self.unmeasured(name, &format!("cannot write {}: {e}", p.display()));
        }
        rel
    }

    /// A fresh `home/<name>` with `control/<file>` = body for each pair;
    /// returns its absolute path (for `$PICOQ_HOME`).
    pub fn home(&mut self, name: &str, control: &[(&str, String)]) -> PathBuf {
        let h = self.work.join("home").join(name);
        let _ = std::fs::remove_dir_all(&h);
        let made = std::fs::create_dir_all(h.join("control"))
            .and_then(|()| control.iter().try_for_each(|(f, body)| std::fs::write(h.join("control").join(f), body)));
        if let Err(e) = made {
            self.unmeasured(name, &format!("cannot make {}: {e}", h.display()));
        }
        h
    }

    /// Records something that could not be measured (bench exits 1).
    pub fn unmeasured(&mut self, what: &str, why: &str) {
        println!("[ERROR] {what}: could not be measured: {why}");
        self.failures.push(format!("{what}: {why}"));
    }

    /// Prints a figure: marker, value, target, qmail's figure, then how to
    /// reproduce it.
    pub fn figure(&mut self, f: &Figure<'_>) {
        let (mark, target) = match f.target {
            Some(t) if f.value <= t => {
                self.counts.0 += 1;
                ("PASS", format!("target <= {} {}", thousands(t), f.unit))
            }
            Some(t) => {
                self.counts.1 += 1;
                ("OVER", format!("target <= {} {}", thousands(t), f.unit))
            }
            None => {
                self.counts.2 += 1;
                ("----", "no target".to_string())
            }
        };
        let qmail = f.qmail.map(|q| format!("; qmail: {q}")).unwrap_or_default();
        println!("[{mark}] {}: {} {} ({target}{qmail})", f.what, thousands(f.value), f.unit);
        for line in f.how.lines() {
            println!("       {line}");
        }
    }

    /// Prints a rate that passes when it is at least `min`.
    pub fn figure_min(&mut self, what: &str, how: &str, value: u64, unit: &str, min: u64, reference: &str) {
        let mark = if value >= min {
            self.counts.0 += 1;
            "PASS"
        } else {
            self.counts.1 += 1;
            "UNDER"
        };
        println!("[{mark}] {what}: {} {unit} (target >= {} {unit}; {reference})", thousands(value), thousands(min));
        for line in how.lines() {
            println!("       {line}");
        }
    }

    /// `dir/program` relative to the work directory, where commands run.
    pub fn rel_bin(&self, dir: &Path, program: &str) -> String {
        relative_to(&dir.join(program), &self.work).display().to_string()
    }

    /// The shell command that runs `program` from `dir` under callgrind with
    /// `input` on fd 0 and `env` on fd 1, writing `cg/<out>.out`.
    fn callgrind_command(
        &self,
        dir: &Path,
        program: &str,
        home: &Path,
        input: Input<'_>,
        env: &Path,
        out: &str,
    ) -> String {
        let bin = self.rel_bin(dir, program);
        // env -i: musl's start-up and the program's environment lookups
        // scan the whole environment, so cargo's variables would add
        // thousands of instructions.
        let run = format!(
            "env -i PICOQ_HOME={} valgrind --tool=callgrind --callgrind-out-file=cg/{out}.out {}",
            sh_quote(&home.display().to_string()),
            sh_quote(&bin)
        );
        let q = |p: &Path| sh_quote(&p.display().to_string());
        match input {
            Input::File(m) => format!("{run} <{} 1<{}", q(m), q(env)),
            Input::Pipe(m) => format!("cat {} | {run} 1<{}", q(m), q(env)),
        }
    }

    /// Runs a shell command in the work directory; Err names the failure
    /// and shows the command's stderr.
    fn sh(&self, cmd: &str) -> Result<std::process::Output, String> {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(&self.work)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!("`{cmd}` failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr).trim_end()))
        }
    }

    /// Instructions executed by `program` (release build) alone, from the
    /// `summary:`/`totals:` line of callgrind's output.
    pub fn callgrind(
        &mut self,
        program: &str,
        home: &Path,
        input: Input<'_>,
        env: &Path,
        out: &str,
    ) -> Result<(u64, String), String> {
        let cmd = self.callgrind_command(&self.release.clone(), program, home, input, env, out);
        let packets = self.stub.packets();
        self.sh(&cmd)?;
        if self.stub.packets() != packets + 1 {
            return Err(format!("`{cmd}` exited 0 but the QMQP stub got no packet"));
        }
        let text = std::fs::read_to_string(self.work.join("cg").join(format!("{out}.out")))
            .map_err(|e| format!("cannot read cg/{out}.out: {e}"))?;
        let ir = text
            .lines()
            .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("no summary:/totals: line in cg/{out}.out"))?;
        Ok((ir, cmd))
    }

    /// Runs the `bench-symbols` build of `program` under callgrind and
    /// prints its 10 most expensive functions (self cost).
    pub fn top_functions(&mut self, what: &str, program: &str, home: &Path, input: Input<'_>, env: &Path, out: &str) {
        let Some(dir) = self.symbols.clone() else { return };
        let cmd = self.callgrind_command(&dir, program, home, input, env, out);
        let result = self.sh(&cmd).and_then(|_| {
            let annotate = format!("callgrind_annotate --inclusive=no cg/{out}.out");
            let o = self.sh(&annotate)?;
            Ok((annotate, String::from_utf8_lossy(&o.stdout).into_owned()))
        });
        let (annotate, text) = match result {
            Ok(r) => r,
            Err(e) => {
                println!("note: no per-function view for {what}: {e}");
                return;
            }
        };
        let total = text
            .lines()
            .find(|l| l.contains("PROGRAM TOTALS"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("?");
        println!("top 10 functions by Ir (self), {what}, bench-symbols build ({total} Ir in all):");
        println!("       $ {cmd}");
        println!("       $ {annotate}");
        let root = format!("{}/", self.root.display());
        let rows = annotate_rows(&text, &root);
        let width = rows.iter().take(10).map(|r| r.0.len()).max().unwrap_or(0);
        for (ir, pct, func) in rows.iter().take(10) {
            println!("       {ir:>width$} {pct:>8}  {func}");
        }
    }

    /// Peak RSS (VmHWM, KiB) of `program` itself: spawned directly (no
    /// shell) with only `$PICOQ_HOME` = `home` in its environment, fd 0 a pipe that `feed` writes,
    /// fd 1 the file `env`. The QMQP stub reads `/proc/<pid>/status` when it
    /// has the whole packet, i.e. after the program did all its work but
    /// reading the 6-byte reply and exiting.
    pub fn peak_rss(&mut self, program: &str, home: &Path, env: &Path, feed: Feed) -> Result<u64, String> {
        let bin = self.release.join(program);
        let env_file = std::fs::File::open(self.work.join(env)).map_err(|e| format!("{}: {e}", env.display()))?;
        let mut child = Command::new(&bin)
            .env_clear()
            .env("PICOQ_HOME", home)
            .stdin(Stdio::piped())
            .stdout(env_file)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        // Registered before any input is written: the packet cannot arrive
        // earlier.
        self.stub.watch(child.id());
        let stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || feed(stdin));
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let _ = feeder.join();
        let hwm = self.stub.take_hwm();
        if !out.status.success() {
            return Err(format!(
                "{program} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ));
        }
        hwm.unwrap_or_else(|| Err("the QMQP stub got no packet".into()))
    }

    /// Max RSS in KiB as `/usr/bin/time -f %M` reports it for `program`
    /// fed like `peak_rss`. None when /usr/bin/time is unavailable.
    pub fn time_max_rss(&mut self, program: &str, home: &Path, env: &Path, feed: Feed) -> Option<Result<u64, String>> {
        if !self.have_time() {
            return None;
        }
        let bin = self.release.join(program);
        let run = || -> Result<u64, String> {
            let env_file = std::fs::File::open(self.work.join(env)).map_err(|e| format!("{}: {e}", env.display()))?;
            let mut child = Command::new("/usr/bin/time")
                .args(["-f", "%M"])
                .arg(&bin)
                .env_clear()
                .env("PICOQ_HOME", home)
                .stdin(Stdio::piped())
                .stdout(env_file)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot run /usr/bin/time: {e}"))?;
            let stdin = child.stdin.take().unwrap();
            let feeder = std::thread::spawn(move || feed(stdin));
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            let _ = feeder.join();
            let err = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                return Err(format!("{program} under /usr/bin/time failed ({}): {}", out.status, err.trim_end()));
            }
            err.lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .ok_or_else(|| format!("cannot read /usr/bin/time's output: {}", err.trim_end()))
        };
        Some(run())
    }

    /// /usr/bin/time exists, or was installed now (`apt-get install time`).
    fn have_time(&mut self) -> bool {
        if let Some(t) = self.time_checked {
            return t;
        }
        let mut ok = Path::new("/usr/bin/time").exists();
        if !ok {
            println!("/usr/bin/time is missing; installing Debian's `time` package:");
            println!("$ apt-get install -y time");
            let _ = std::io::stdout().flush();
            ok = Command::new("apt-get").args(["install", "-y", "time"]).status().is_ok_and(|s| s.success())
                && Path::new("/usr/bin/time").exists();
            if !ok {
                println!("note: could not install /usr/bin/time; its figures are left out");
            }
        }
        self.time_checked = Some(ok);
        ok
    }
}

/// `to` expressed relative to directory `from` (both absolute).
fn relative_to(to: &Path, from: &Path) -> PathBuf {
    let (a, b): (Vec<_>, Vec<_>) = (to.components().collect(), from.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut p = PathBuf::new();
    for _ in common..b.len() {
        p.push("..");
    }
    for c in &a[common..] {
        p.push(c);
    }
    p
}

/// The function rows of `callgrind_annotate` output: (Ir, "(percent)",
/// function), in its order (most expensive first), with shortened file
/// names.
fn annotate_rows(text: &str, root: &str) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let mut in_functions = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Ir") && t.contains("file:function") {
            in_functions = true;
            continue;
        }
        if !in_functions || t.is_empty() || t.starts_with("--") {
            continue;
        }
        // "1,234 (12.34%)  file:function [object]"
        let Some((ir, rest)) = t.split_once(' ') else { continue };
        if !ir.bytes().all(|c| c.is_ascii_digit() || c == b',') || t.contains("PROGRAM TOTALS") {
            continue;
        }
        let rest = rest.trim_start();
        let (pct, func) = match rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
            Some((pct, func)) => (format!("({})", pct.trim()), func.trim()),
            None => (String::new(), rest),
        };
        // Drop the " [/path/to/object]" suffix: it is always the program.
        let func = match func.rfind(" [/") {
            Some(i) if func.ends_with(']') => &func[..i],
            _ => func,
        };
        rows.push((ir.to_string(), pct, shorten(func, root)));
    }
    rows
}

/// `file:function` with the file relative to the workspace, musl's source
/// tree (`musl/...`) or Rust's (`rust/library/...`).
fn shorten(func: &str, root: &str) -> String {
    let Some((file, f)) = func.split_once(':') else { return func.to_string() };
    let file = if let Some(i) = file.find("/src_musl/") {
        format!("musl/{}", &file[i + "/src_musl/".len()..])
    } else if let Some(rest) = file.strip_prefix("/rustc/").and_then(|r| r.split_once('/')) {
        format!("rust/{}", rest.1)
    } else {
        file.strip_prefix(root).unwrap_or(file).to_string()
    };
    format!("{file}:{f}")
}

/// Writes `total` bytes of `chunk` repeated (the last one cut) into `w`.
pub fn feed_repeated(mut w: impl Write, head: &[u8], chunk: &[u8], total: usize) {
    let mut left = total;
    let h = &head[..head.len().min(left)];
    if w.write_all(h).is_err() {
        return;
    }
    left -= h.len();
    while left > 0 {
        let n = chunk.len().min(left);
        if w.write_all(&chunk[..n]).is_err() {
            return;
        }
        left -= n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotate_parsing() {
        let text = "\
--------------------------------------------------------------------------------
Profile data file 'cg/x.out' (creator: callgrind-3.19.0)
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
17,203 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir              file:function
--------------------------------------------------------------------------------
5,000 (29.07%)  ???:memcpy [/w/target/x/bench-symbols/qmqpc]
  812 ( 4.72%)  /w/core/src/netstring.rs:picoq_core::netstring::put [/w/qmqpc]
  612 ( 1.59%)  /rustc/5980/library/core/src/slice/cmp.rs:core::slice::<impl [T]>::eq
  607 ( 5.33%)  /build/m/obj_musl/../src_musl/src/env/__libc_start_main.c:__init_libc [/w/qmqpc]
";
        let rows = annotate_rows(text, "/w/");
        let want = [
            ("5,000", "(29.07%)", "???:memcpy"),
            ("812", "(4.72%)", "core/src/netstring.rs:picoq_core::netstring::put"),
            ("612", "(1.59%)", "rust/library/core/src/slice/cmp.rs:core::slice::<impl [T]>::eq"),
            ("607", "(5.33%)", "musl/src/env/__libc_start_main.c:__init_libc"),
        ];
        assert_eq!(rows, want.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to(Path::new("/a/t/x/release/p"), Path::new("/a/t/bench")), Path::new("../x/release/p"));
    }

    #[test]
    fn repeated_feed() {
        let mut v = Vec::new();
        feed_repeated(&mut v, b"HEAD\n", b"abc", 11);
        assert_eq!(v, b"HEAD\nabcabc");
    }
}
