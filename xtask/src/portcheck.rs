//! `cargo xtask portcheck`: picoq beyond Linux. `cargo +nightly check
//! -Zbuild-std=core` of core and of every program for the BSDs, illumos
//! and Solaris (SPARC, big-endian 64-bit). Nothing is linked or run: no
//! sysroot exists for these targets here, and the check is about the code
//! compiling against each platform's rustix/libc surface, with the
//! Linux-only calls behind their cfg gates and fallbacks. Warnings count
//! as failures (`-D warnings`).

use crate::{root, sh_quote};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// The non-Linux targets checked (SPEC §8).
pub const TRIPLES: [&str; 5] = [
    "x86_64-unknown-netbsd",
    "x86_64-unknown-freebsd",
    "x86_64-unknown-openbsd",
    "x86_64-unknown-illumos",
    "sparcv9-sun-solaris",
];

/// The check command for `triple`: the core library, then every program.
pub fn check_command(triple: &str) -> Vec<String> {
    [
        "cargo",
        "+nightly",
        "check",
        "--locked",
        "-Zbuild-std=core",
        // Warnings are failures: on these targets an unused import or
        // declaration is how a missing cfg gate shows.
        "--config",
        "build.rustflags=[\"-Dwarnings\"]",
        "--target",
        triple,
        "-p",
        "picoq-core",
        "--lib",
        "-p",
        "picoq",
        "--bins",
    ]
    .map(str::to_string)
    .to_vec()
}

pub fn main(args: &[String]) -> ExitCode {
    let triples: Vec<&str> = if args.is_empty() { TRIPLES.to_vec() } else { args.iter().map(String::as_str).collect() };
    println!("$ cargo xtask portcheck {}", args.join(" "));
    let root = root();
    if let Err(e) = crate::cross::install_tools(&root) {
        eprintln!("xtask portcheck: {e}");
        return ExitCode::FAILURE;
    }
    let mut results = Vec::new();
    for t in &triples {
        let argv = check_command(t);
        println!("$ {}", argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" "));
        let t0 = Instant::now();
        let ok = Command::new(&argv[0]).args(&argv[1..]).current_dir(&root).status().is_ok_and(|s| s.success());
        results.push((*t, ok, t0.elapsed().as_secs_f64()));
    }
    println!();
    println!("portcheck (core + programs, cargo +nightly check -Zbuild-std=core):");
    for (t, ok, secs) in &results {
        println!("  {t:<26} {}  {secs:.0} s", if *ok { "ok  " } else { "FAIL" });
    }
    let failed = results.iter().filter(|r| !r.1).count();
    println!("{} passed, {} failed", results.len() - failed, failed);
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command() {
        assert_eq!(
            super::check_command("sparcv9-sun-solaris").join(" "),
            "cargo +nightly check --locked -Zbuild-std=core --config build.rustflags=[\"-Dwarnings\"] --target \
             sparcv9-sun-solaris -p picoq-core --lib -p picoq --bins"
        );
    }
}
