//! `cargo xtask cross TRIPLE` and `cargo xtask cross-test TRIPLE`: release
//! builds for any target in `targets/`; the black-box tests run with that
//! target's programs under its runner (qemu-user), then core's unit tests
//! built for the target and run the same way.
//!
//! The build itself (used by `size`, `bench` and `dist` too) is
//! `cargo [+toolchain] build|zigbuild --release --locked --target T` plus the
//! target file's `cargo_args` and `rustflags`, then its `post_link` objcopy
//! steps on every program. For a non-host target, `tests/deps.sh --cross`
//! first installs the pinned tools (it is quick when they are there) and
//! names the venv whose zig cargo-zigbuild must use.

use crate::targets::{self, Target};
use crate::{HOST_TRIPLE, root, sh_quote, show};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// Environment for the build: PATH with the zig venv first, and
/// cargo-zigbuild told which Python (hence which ziglang) to use.
#[derive(Default)]
pub struct ToolEnv {
    pub vars: Vec<(String, OsString)>,
}

impl ToolEnv {
    pub fn apply(&self, c: &mut Command) {
        for (k, v) in &self.vars {
            c.env(k, v);
        }
    }
}

/// Installs what a cross build needs (`tests/deps.sh --cross`) and returns
/// the environment for cargo. Nothing to do for the host target.
pub fn prepare(root: &Path, target: &Target) -> Result<ToolEnv, String> {
    if target.triple == HOST_TRIPLE {
        return Ok(ToolEnv::default());
    }
    install_tools(root)
}

/// `tests/deps.sh --cross`: nightly's rust-src, the zig venv, qemu-user.
pub fn install_tools(root: &Path) -> Result<ToolEnv, String> {
    println!("$ sh tests/deps.sh --cross");
    let out = Command::new("sh")
        .arg("tests/deps.sh")
        .arg("--cross")
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run tests/deps.sh: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines: Vec<&str> = text.lines().collect();
    if !out.status.success() {
        print!("{text}");
        return Err(format!("tests/deps.sh --cross failed ({})", out.status));
    }
    let venv = PathBuf::from(lines.pop().unwrap_or_default());
    for l in lines {
        println!("{l}");
    }
    if !venv.join("bin").is_dir() {
        return Err(format!("tests/deps.sh --cross did not name a venv (got {})", venv.display()));
    }
    let mut path = OsString::from(venv.join("bin"));
    if let Some(p) = std::env::var_os("PATH") {
        path.push(":");
        path.push(p);
    }
    Ok(ToolEnv {
        vars: vec![
            ("PATH".into(), path),
            ("CARGO_ZIGBUILD_PYTHON_PATH".into(), venv.join("bin/python").into_os_string()),
        ],
    })
}

/// `rustc [+toolchain] --print sysroot`.
pub fn sysroot(target: &Target) -> Result<PathBuf, String> {
    let mut c = Command::new("rustc");
    if let Some(tc) = &target.toolchain {
        c.arg(format!("+{tc}"));
    }
    let out = c.args(["--print", "sysroot"]).output().map_err(|e| format!("cannot run rustc: {e}"))?;
    if !out.status.success() {
        return Err(format!("rustc --print sysroot failed ({})", out.status));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `cargo build` (or `zigbuild`) command for `target` with
/// `profile_args` (`--release` or `--profile NAME`), run from the workspace
/// root; `self_contained` replaces `{self_contained}` in the rustflags.
pub fn build_command(target: &Target, profile_args: &[&str], self_contained: &str) -> Vec<String> {
    let mut v = vec!["cargo".to_string()];
    if let Some(tc) = &target.toolchain {
        v.push(format!("+{tc}"));
    }
    v.push(if target.builder.is_empty() { "build".into() } else { target.builder.clone() });
    v.extend(profile_args.iter().map(|s| s.to_string()));
    v.extend(["--locked", "--target", &target.triple].map(str::to_string));
    v.extend(target.cargo_args.iter().cloned());
    if !target.rustflags.is_empty() {
        let flags: Vec<String> =
            target.rustflags.iter().map(|f| toml_str(&f.replace("{self_contained}", self_contained))).collect();
        v.push("--config".into());
        v.push(format!("target.{}.rustflags=[{}]", target.triple, flags.join(", ")));
    }
    v
}

/// The programs: every `[[bin]]` name in the root Cargo.toml, in order.
pub fn programs(root: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    Ok(bin_names(&text))
}

fn bin_names(cargo_toml: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bin = false;
    for line in cargo_toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            continue;
        }
        if in_bin && let Some(rest) = line.strip_prefix("name") {
            let value = rest.trim_start().strip_prefix('=').map(str::trim).unwrap_or("");
            if let Some(name) = value.strip_prefix('"').and_then(|v| v.split('"').next()) {
                names.push(name.to_string());
            }
            in_bin = false;
        }
    }
    names
}

/// Builds every program for `target` with `profile_args`, then applies
/// the target's post-link steps in `profile`'s directory. Returns the tool
/// environment it used (for further cargo runs).
pub fn build(root: &Path, target: &Target, profile_args: &[&str]) -> Result<ToolEnv, String> {
    let env = prepare(root, target)?;
    let self_contained = if target.rustflags.iter().any(|f| f.contains("{self_contained}")) {
        sysroot(target)?.join("lib/rustlib").join(&target.triple).join("lib/self-contained")
    } else {
        PathBuf::new()
    };
    let argv = build_command(target, profile_args, &self_contained.to_string_lossy());
    println!("$ {}", argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" "));
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).current_dir(root);
    env.apply(&mut c);
    let status = c.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("the build failed ({status})"));
    }
    let profile = match profile_args {
        ["--profile", p] => p,
        _ => "release",
    };
    post_link(root, target, &crate::size::bin_dir(root, &target.triple, profile))?;
    Ok(env)
}

/// Runs `rust-objcopy <post_link args> PROGRAM` on each built program.
pub fn post_link(root: &Path, target: &Target, dir: &Path) -> Result<(), String> {
    if target.post_link.is_empty() {
        return Ok(());
    }
    // rust-objcopy ships with every rustup toolchain, in the host's bin
    // directory, and needs the toolchain's libLLVM.
    let host_sysroot = sysroot(&Target::default())?;
    let objcopy = host_sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-objcopy");
    for name in programs(root)? {
        let p = dir.join(&name);
        if !p.exists() {
            continue;
        }
        println!(
            "$ rust-objcopy {} {}",
            target.post_link.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" "),
            show(root, &p)
        );
        let status = Command::new(&objcopy)
            .args(&target.post_link)
            .arg(&p)
            .env("LD_LIBRARY_PATH", host_sysroot.join("lib"))
            .status()
            .map_err(|e| format!("cannot run {}: {e}", objcopy.display()))?;
        if !status.success() {
            return Err(format!("rust-objcopy failed on {} ({status})", p.display()));
        }
    }
    Ok(())
}

fn one_triple(args: &[String], verb: &str) -> Result<String, ExitCode> {
    match args {
        [t] if !t.starts_with('-') => Ok(t.clone()),
        _ => Err(crate::usage(&format!("{verb} takes one argument, a target triple"))),
    }
}

/// `cargo xtask cross TRIPLE`: build, post-link, size table. Fails only
/// when the build fails (`cargo xtask size TRIPLE` is the budget gate).
pub fn main(args: &[String]) -> ExitCode {
    let triple = match one_triple(args, "cross") {
        Ok(t) => t,
        Err(code) => return code,
    };
    println!("$ cargo xtask cross {triple}");
    let root = root();
    let target = match targets::load(&root, &triple) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask cross: {e}");
            return ExitCode::FAILURE;
        }
    };
    let t0 = Instant::now();
    if let Err(e) = build(&root, &target, &["--release"]) {
        eprintln!("xtask cross: {e}");
        return ExitCode::FAILURE;
    }
    println!("cross: built in {:.0} s", t0.elapsed().as_secs_f64());
    crate::size::report(&root, &target);
    ExitCode::SUCCESS
}

/// `cargo xtask cross-test TRIPLE [-- cargo test args]`: builds the
/// target's programs, then runs the black-box tests (host test harnesses)
/// with them.
///
/// binfmt_misc is not registered on these machines, so a target program
/// can only run as `qemu-ARCH-static PROGRAM`, and a program that execs
/// another one (smtpd-front and qmqpd run qmqpc as their queue program)
/// would fail. Each program therefore gets a host shell wrapper,
/// `target/TRIPLE/cross-test-bin/PROGRAM`, that execs the runner on the
/// real binary; `PICOQ_BIN_DIR` points at the wrappers. `PICOQ_RUNNER` is
/// set to `env` (a no-op prefix) so that tests that adapt to a runner
/// (memory limits measured on the native build) know one is in use.
/// `PICOQ_RUNNER` already in the environment goes in front of the target's
/// runner inside the wrappers.
///
/// Then core's unit tests, built for the target and run under its runner.
pub fn test_main(args: &[String]) -> ExitCode {
    let (mine, extra) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let triple = match one_triple(mine, "cross-test") {
        Ok(t) => t,
        Err(code) => return code,
    };
    println!("$ cargo xtask cross-test {triple}");
    let root = root();
    let target = match targets::load(&root, &triple) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask cross-test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let t0 = Instant::now();
    let env = match build(&root, &target, &["--release"]) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("xtask cross-test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let built = t0.elapsed();
    let dir = crate::size::bin_dir(&root, &triple, "release");
    let outer = std::env::var("PICOQ_RUNNER").unwrap_or_default();
    let (bin_dir, runner) = if target.runner.trim().is_empty() {
        (dir, outer)
    } else {
        match runner_wrappers(&root, &target, &dir, &outer) {
            Ok(w) => (w, "env".to_string()),
            Err(e) => {
                eprintln!("xtask cross-test: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let mut argv: Vec<String> =
        ["cargo", "test", "--locked", "--no-fail-fast", "-p", "picoq", "--tests"].map(str::to_string).to_vec();
    if !target.test_skip.is_empty() || !extra.is_empty() {
        argv.push("--".into());
        argv.extend(extra.iter().cloned());
        for t in &target.test_skip {
            argv.extend(["--skip".to_string(), t.clone()]);
        }
    }
    println!(
        "$ PICOQ_BIN_DIR={} PICOQ_RUNNER={} {}",
        sh_quote(&bin_dir.to_string_lossy()),
        sh_quote(&runner),
        argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
    );
    let t1 = Instant::now();
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(&root)
        .env("PICOQ_BIN_DIR", &bin_dir)
        .env("PICOQ_RUNNER", &runner)
        .status();
    let tested = t1.elapsed();
    let mut ok = match status {
        Ok(s) if s.success() => true,
        Ok(s) => {
            eprintln!("xtask cross-test: the black-box tests failed ({s})");
            false
        }
        Err(e) => {
            eprintln!("xtask cross-test: cannot run cargo test: {e}");
            false
        }
    };

    // core's unit tests, compiled for the target and run under its runner
    // (the host's run in `make unit`): byte order, word size and the
    // target's libc where the black-box tests do not reach.
    let t2 = Instant::now();
    if !target.runner.trim().is_empty() {
        let (argv, vars) = unit_command(&target);
        println!(
            "$ {}{}",
            vars.iter().map(|(k, v)| format!("{k}={} ", sh_quote(v))).collect::<String>(),
            argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
        );
        let mut c = Command::new(&argv[0]);
        // `cargo xtask` runs with $CARGO naming the (stable) cargo that
        // started it, and cargo-zigbuild prefers $CARGO over the rustup
        // proxy that honours RUSTUP_TOOLCHAIN.
        c.args(&argv[1..]).current_dir(&root).envs(vars).env_remove("CARGO");
        env.apply(&mut c);
        if !c.status().is_ok_and(|s| s.success()) {
            eprintln!("xtask cross-test: core's unit tests failed under {}", target.runner);
            ok = false;
        }
    }
    let unit = t2.elapsed();
    println!(
        "cross-test {triple}: {}; build {:.0} s, black-box tests {:.0} s, core unit tests {:.0} s, runner `{}`{}",
        if ok { "ok" } else { "FAILED" },
        built.as_secs_f64(),
        tested.as_secs_f64(),
        unit.as_secs_f64(),
        if target.runner.is_empty() { runner.as_str() } else { target.runner.as_str() },
        if target.test_skip.is_empty() { String::new() } else { format!(", skipped: {}", target.test_skip.join(" ")) }
    );
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `cargo test` of core's library for `target`, run by its runner: the
/// prebuilt std where there is one; elsewhere nightly's build-std of std
/// with unwinding (the test harness needs it), through cargo-zigbuild.
pub fn unit_command(target: &Target) -> (Vec<String>, Vec<(String, String)>) {
    let t = &target.triple;
    let runner: Vec<String> = target.runner_words().iter().map(|w| toml_str(w)).collect();
    let runner = format!("target.{t}.runner=[{}]", runner.join(", "));
    let common = ["--locked", "-p", "picoq-core", "--lib", "--target", t].map(str::to_string);
    if target.builder == "zigbuild" {
        // cargo-zigbuild's own `test`: the toolchain comes from RUSTUP_TOOLCHAIN.
        let mut v = vec!["cargo-zigbuild".to_string(), "test".into()];
        v.extend(common);
        v.extend([
            "-Zbuild-std=std,panic_unwind".to_string(),
            "--config".into(),
            "profile.dev.panic=\"unwind\"".into(),
            "--config".into(),
            format!("target.{t}.rustflags=[\"-C\", \"link-self-contained=no\"]"),
            "--config".into(),
            runner,
        ]);
        let tc = target.toolchain.clone().unwrap_or_else(|| "stable".into());
        (v, vec![("RUSTUP_TOOLCHAIN".into(), tc)])
    } else {
        let mut v = vec!["cargo".to_string()];
        if let Some(tc) = &target.toolchain {
            v.push(format!("+{tc}"));
        }
        v.push("test".into());
        v.extend(common);
        v.extend(["--config".to_string(), runner]);
        (v, Vec::new())
    }
}

/// Writes `<target dir>/<triple>/cross-test-bin/<program>` for every built
/// program: `exec [OUTER] RUNNER -0 "$0" /abs/program "$@"` (qemu's `-0`
/// keeps the program's argv[0]). The runner is resolved to an absolute
/// path, since some tests run programs with a minimal PATH.
fn runner_wrappers(root: &Path, target: &Target, dir: &Path, outer: &str) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut words = target.runner_words();
    let exe = which(&words[0]).ok_or_else(|| {
        format!("runner `{}` not found in PATH (tests/deps.sh --cross installs qemu-user-static)", words[0])
    })?;
    words[0] = exe.to_string_lossy().into_owned();
    let wdir = dir.parent().unwrap_or(dir).join("cross-test-bin");
    std::fs::create_dir_all(&wdir).map_err(|e| format!("{}: {e}", wdir.display()))?;
    for name in programs(root)? {
        let real = dir.join(&name);
        if !real.exists() {
            continue;
        }
        let mut cmd: Vec<String> = outer.split_whitespace().map(sh_quote).collect();
        cmd.extend(words.iter().map(|w| sh_quote(w)));
        let script = format!(
            "#!/bin/sh\n# Written by cargo xtask cross-test: runs the {} build of {name}.\nexec {} -0 \"$0\" {} \"$@\"\n",
            target.triple,
            cmd.join(" "),
            sh_quote(&real.to_string_lossy())
        );
        let w = wdir.join(&name);
        std::fs::write(&w, script).map_err(|e| format!("{}: {e}", w.display()))?;
        std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", w.display()))?;
    }
    Ok(wdir)
}

/// The first `name` in PATH (or `name` itself when it has a slash).
fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_commands() {
        let t = Target { triple: "x86_64-unknown-linux-musl".into(), builder: "build".into(), ..Default::default() };
        assert_eq!(
            build_command(&t, &["--release"], "").join(" "),
            "cargo build --release --locked --target x86_64-unknown-linux-musl"
        );
        let t = Target {
            triple: "mips-unknown-linux-musl".into(),
            toolchain: Some("nightly".into()),
            builder: "zigbuild".into(),
            cargo_args: vec!["--config".into(), "targets/cargo/build-std.toml".into()],
            rustflags: vec!["-C".into(), "link-arg={self_contained}/rcrt1.o".into(), "a\"b".into()],
            ..Default::default()
        };
        assert_eq!(
            build_command(&t, &["--release"], "/s c").join(" "),
            "cargo +nightly zigbuild --release --locked --target mips-unknown-linux-musl --config \
             targets/cargo/build-std.toml --config target.mips-unknown-linux-musl.rustflags=[\"-C\", \
             \"link-arg=/s c/rcrt1.o\", \"a\\\"b\"]"
        );
    }

    #[test]
    fn unit_commands() {
        let t = Target {
            triple: "mips-unknown-linux-musl".into(),
            toolchain: Some("nightly".into()),
            builder: "zigbuild".into(),
            runner: "qemu-mips-static".into(),
            ..Default::default()
        };
        let (argv, vars) = unit_command(&t);
        assert_eq!(
            argv.join(" "),
            "cargo-zigbuild test --locked -p picoq-core --lib --target mips-unknown-linux-musl \
             -Zbuild-std=std,panic_unwind --config profile.dev.panic=\"unwind\" --config \
             target.mips-unknown-linux-musl.rustflags=[\"-C\", \"link-self-contained=no\"] --config \
             target.mips-unknown-linux-musl.runner=[\"qemu-mips-static\"]"
        );
        assert_eq!(vars, [("RUSTUP_TOOLCHAIN".to_string(), "nightly".to_string())]);
        let t = Target {
            triple: "aarch64-unknown-linux-musl".into(),
            builder: "build".into(),
            runner: "qemu-aarch64-static".into(),
            ..Default::default()
        };
        assert_eq!(
            unit_command(&t).0.join(" "),
            "cargo test --locked -p picoq-core --lib --target aarch64-unknown-linux-musl --config \
             target.aarch64-unknown-linux-musl.runner=[\"qemu-aarch64-static\"]"
        );
    }

    #[test]
    fn bin_names_from_cargo_toml() {
        let toml = "[package]\nname = \"picoq\"\n\n[[bin]]\nname = \"qmqpc\"\npath = \"x\"\n\n\
                    [[bin]]\npath = \"y\"\nname=\"smtpd-front\" # c\n\n[dependencies]\nname = \"no\"\n";
        assert_eq!(bin_names(toml), ["qmqpc", "smtpd-front"]);
    }

    #[test]
    fn repository_programs() {
        let names = programs(&crate::root()).unwrap();
        assert!(names.iter().any(|n| n == "qmqpc"), "{names:?}");
    }
}
