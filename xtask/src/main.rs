//! `cargo xtask <verb>`: picoq's chores. Each verb is a module; this file
//! only dispatches and holds the few helpers they share.

mod audit;
mod bench;
mod cross;
mod demo;
mod dist;
mod elf;
mod fuzz;
mod install;
mod oldkernel;
mod portcheck;
mod size;
mod targets;
mod torture;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The host target: what `size` measures when no triple is given, and what
/// `bench` runs.
pub const HOST_TRIPLE: &str = "x86_64-unknown-linux-musl";

const USAGE: &str = "\
usage: cargo xtask <verb>

verbs:
  size [--hardening] [TRIPLE]
                  build release for TRIPLE (default x86_64-unknown-linux-musl),
                  print each program's size against its budget in
                  targets/TRIPLE.toml and check its ELF hardening;
                  exit 1 when a program is over budget or not hardened
                  (with --hardening: only when not hardened)
  bench           build release, then print sizes, callgrind instruction
                  counts and peak RSS, each with the command that reproduces
                  it, its target and qmail's reference figure
  demo            picoq's main job on loopback: swaks -> smtpd-front (the
                  firewall, under tcpserver) -> qmqpc -> qmqpd (the gateway)
                  -> a Maildir; what `make demo` runs
  cross TRIPLE    release build of every program for TRIPLE (any file in
                  targets/) into target/TRIPLE/release/, after installing the
                  pinned cross tools (tests/deps.sh --cross); then the sizes
  cross-test TRIPLE [-- ARGS]
                  cross, then the black-box tests with TRIPLE's programs run
                  under its runner (qemu-user), through PICOQ_BIN_DIR and
                  PICOQ_RUNNER; ARGS go to the test harnesses
  portcheck [TRIPLE...]
                  cargo +nightly check -Zbuild-std=core of core and the
                  programs for NetBSD, FreeBSD, OpenBSD, illumos and Solaris
  dist TRIPLE [--verify]
                  target/dist/picoq-VERSION-TRIPLE.tar.gz: programs, man
                  pages and SHA256SUMS, byte-for-byte reproducible; --verify
                  rebuilds from scratch elsewhere and compares the tarballs
  oldkernel [-- ARGS]
                  the black-box tests of the host programs under a seccomp
                  filter that answers like Linux 3.2 (ENOSYS for newer
                  system calls, EISDIR for O_TMPFILE opens)
  install PREFIX [--destdir DIR]
                  as root: release build with PREFIX compiled in (in
                  target/install-PREFIX/), then programs, links, man pages,
                  control/ and the spool under DESTDIR/PREFIX with the owners
                  and modes of install/manifest; creates the spool user
                  (picoq) when missing; what `make install` runs
  check-install DIR
                  compares an installed tree with install/manifest (type,
                  owner, group, mode, link targets; nothing world-writable)
  audit           the reviewer's report (SECURITY.md): every unsafe in
                  shipped code with its SAFETY comment (fails without one or
                  outside core/src/sys), dependencies with licences and
                  sources, every program static/PIE/RELRO/NX
  fuzz [--seconds N] [TARGET...]
                  every cargo-fuzz target of fuzz/ (nightly; tests/deps.sh
                  --fuzz) for N seconds each (default 60), seeded from
                  fuzz/seeds/; prints executions and crashes per target,
                  fails on a crash
  torture [--kills N]
                  as root: the spool's crash and fault evidence: N kill -9
                  at random instants (default 2,000), ENOSPC (tmpfs), EIO
                  (FUSE) and a device full beneath the filesystem (loop)
  oldkernel-exec PROGRAM [ARG...]
                  installs that filter and execs PROGRAM (the runner the
                  oldkernel verb puts in PICOQ_RUNNER)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or(&[]);
    match args.first().map(String::as_str) {
        Some("size") => size::main(rest),
        Some("audit") => audit::main(rest),
        Some("fuzz") => fuzz::main(rest),
        Some("torture") => torture::main(rest),
        Some("bench") => bench::main(rest),
        Some("demo") => demo::main(rest),
        Some("cross") => cross::main(rest),
        Some("cross-test") => cross::test_main(rest),
        Some("portcheck") => portcheck::main(rest),
        Some("dist") => dist::main(rest),
        Some("oldkernel") => oldkernel::main(rest),
        Some("oldkernel-exec") => oldkernel::exec_main(rest),
        Some("install") => install::main(rest),
        Some("check-install") => install::check_main(rest),
        Some("help" | "-h" | "--help") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => usage(&format!("unknown verb `{other}`")),
        None => usage("no verb given"),
    }
}

/// Prints the usage text on stderr; exit status 2.
pub fn usage(why: &str) -> ExitCode {
    eprint!("xtask: {why}\n{USAGE}");
    ExitCode::from(2)
}

/// The workspace root (xtask lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask is inside the workspace").to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` or `<root>/target`.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() { d } else { std::env::current_dir().unwrap_or_default().join(d) }
        }
        _ => root.join("target"),
    }
}

/// `p` relative to the workspace root when it is inside it (for display).
pub fn show(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

/// 1234567 -> "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1000), "1,000");
        assert_eq!(super::thousands(1_044_089), "1,044,089");
    }

    #[test]
    fn sh_quote() {
        assert_eq!(super::sh_quote("a/b-c.out"), "a/b-c.out");
        assert_eq!(super::sh_quote("it's"), r"'it'\''s'");
        assert_eq!(super::sh_quote(""), "''");
    }
}
