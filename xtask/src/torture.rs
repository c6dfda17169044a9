//! `cargo xtask torture [--kills N]`: the spool's crash and fault
//! evidence in one command (as root: it installs into a private prefix,
//! mounts and uses loop devices):
//! - kill -9 at random instants (`tests/spool_torture.rs`, N submissions,
//!   default 2,000; make test runs 240);
//! - a full spool (`tests/spool_diskfull.rs`: ENOSPC from a small tmpfs);
//! - a failing disk (`tests/spool_eio.rs`: EIO from a FUSE filesystem on
//!   write and fsync, before and during submissions; and a loop device
//!   whose backing store fills beneath the filesystem).
//! Prints each part's outcome lines and the totals.

use crate::{HOST_TRIPLE, root};
use std::process::{Command, ExitCode};
use std::time::Instant;

const DEFAULT_KILLS: usize = 2000;

/// The test binaries, and the lines of their output that are the figures.
const PARTS: [(&str, &str, &[&str]); 3] = [
    ("kill -9 at random instants", "spool_torture", &["torture seed", "submissions:"]),
    ("ENOSPC (256 KiB tmpfs)", "spool_diskfull", &[]),
    ("EIO (FUSE) and a device full beneath ext2 (loop)", "spool_eio", &["EIO", "loop device full"]),
];

pub fn main(args: &[String]) -> ExitCode {
    let kills = match args {
        [] => DEFAULT_KILLS,
        [flag, n] if flag == "--kills" => match n.parse() {
            Ok(n) => n,
            Err(_) => return crate::usage("torture: --kills takes a number"),
        },
        _ => return crate::usage("torture takes [--kills N]"),
    };
    println!("$ cargo xtask torture --kills {kills}");
    let root = root();
    let target = match crate::targets::load(&root, HOST_TRIPLE) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask torture: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = crate::size::build(&root, &target, &["--release"]) {
        eprintln!("xtask torture: {e}");
        return ExitCode::FAILURE;
    }
    let bin_dir = crate::size::bin_dir(&root, HOST_TRIPLE, "release");
    let t0 = Instant::now();
    let mut failed = Vec::new();
    for (what, test, figures) in PARTS {
        println!("\n== {what} (tests/{test}.rs)");
        let t = Instant::now();
        let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args(["test", "--locked", "-p", "picoq", "--test", test, "--", "--nocapture", "--test-threads=1"])
            .env("PICOQ_BIN_DIR", &bin_dir)
            .env("PICOQ_TORTURE_KILLS", kills.to_string())
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                eprintln!("xtask torture: cargo test: {e}");
                return ExitCode::FAILURE;
            }
        };
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        for l in text.lines() {
            let l = l.trim();
            if l.starts_with("test ") && (l.ends_with(" ok") || l.ends_with("FAILED"))
                || figures.iter().any(|f| l.contains(f))
                || l.contains("panicked")
            {
                println!("  {l}");
            }
        }
        println!("  ({:.0} s)", t.elapsed().as_secs_f64());
        if !out.status.success() {
            failed.push(test);
            let tail: Vec<&str> = text.lines().rev().take(25).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
    println!(
        "\ntorture: {} parts, {:.0} s: {}",
        PARTS.len(),
        t0.elapsed().as_secs_f64(),
        if failed.is_empty() { "ok".to_string() } else { format!("FAIL: {}", failed.join(", ")) }
    );
    if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
