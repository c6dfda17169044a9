//! `cargo xtask fuzz [--seconds N] [TARGET...]`: every cargo-fuzz target
//! of `fuzz/` (its own workspace: libfuzzer-sys never enters the main
//! Cargo.lock) for N seconds each, seeded from `fuzz/seeds/TARGET/` (inputs
//! taken from the tests), growing a working corpus in
//! `target/fuzz-corpus/TARGET/`. Prints executions and crashes per target;
//! fails when any target crashed (the reproducer is in
//! `fuzz/artifacts/TARGET/`, run it with `cargo +nightly fuzz run TARGET
//! FILE` in fuzz/).
//!
//! Needs nightly and cargo-fuzz: `sh tests/deps.sh --fuzz`.

use crate::{root, target_dir};
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Seconds per target when none are given (what `make test` runs is
/// smaller: see the Makefile's fuzz-smoke).
const DEFAULT_SECONDS: u64 = 60;

/// Per-input time limit: a hang longer than this is a crash.
const TIMEOUT_SECONDS: u64 = 10;

/// The largest input libFuzzer generates.
const MAX_LEN: usize = 64 * 1024;

pub fn main(args: &[String]) -> ExitCode {
    let mut seconds = DEFAULT_SECONDS;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => match it.next().and_then(|s| s.parse().ok()) {
                Some(n) => seconds = n,
                None => return crate::usage("fuzz: --seconds takes a number"),
            },
            t if !t.starts_with('-') => only.push(t.to_string()),
            _ => return crate::usage("fuzz takes [--seconds N] [TARGET...]"),
        }
    }
    let root = root();
    let fuzz = root.join("fuzz");
    let targets = match list_targets(&fuzz) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask fuzz: {e}");
            return ExitCode::FAILURE;
        }
    };
    for t in &only {
        if !targets.contains(t) {
            eprintln!("xtask fuzz: no target {t} (have: {})", targets.join(", "));
            return ExitCode::FAILURE;
        }
    }
    let targets: Vec<String> = if only.is_empty() { targets } else { only };
    if !Command::new("cargo").args(["+nightly", "fuzz", "--version"]).output().is_ok_and(|o| o.status.success()) {
        eprintln!("xtask fuzz: cargo-fuzz (nightly) is missing: sh tests/deps.sh --fuzz");
        return ExitCode::FAILURE;
    }
    println!("$ cargo xtask fuzz --seconds {seconds} {}", targets.join(" "));
    // One build for every target (release with debug assertions, ASan).
    let t0 = Instant::now();
    let st = Command::new("cargo")
        .current_dir(&fuzz)
        .args(["+nightly", "fuzz", "build", "-O", "--debug-assertions"])
        .status();
    if !st.is_ok_and(|s| s.success()) {
        eprintln!("xtask fuzz: cargo fuzz build failed");
        return ExitCode::FAILURE;
    }
    println!("fuzz: built {} targets in {:.0} s", targets.len(), t0.elapsed().as_secs_f64());
    let mut rows = Vec::new();
    let mut failed = false;
    for t in &targets {
        let corpus = target_dir(&root).join("fuzz-corpus").join(t);
        let seeds = fuzz.join("seeds").join(t);
        let artifacts = fuzz.join("artifacts").join(t);
        let _ = std::fs::create_dir_all(&corpus);
        let _ = std::fs::create_dir_all(&artifacts);
        let before = count_crashes(&artifacts);
        let mut c = Command::new("cargo");
        c.current_dir(&fuzz).args(["+nightly", "fuzz", "run", "-O", "--debug-assertions", t]).arg(&corpus);
        if seeds.is_dir() {
            c.arg(&seeds);
        }
        c.arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-timeout={TIMEOUT_SECONDS}"))
            .arg(format!("-max_len={MAX_LEN}"))
            .arg("-print_final_stats=1");
        let out = match c.output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("xtask fuzz: {t}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let log = String::from_utf8_lossy(&out.stderr);
        let execs = stat(&log, "stat::number_of_executed_units:").unwrap_or(0);
        let crashes = count_crashes(&artifacts) - before;
        let ok = out.status.success() && crashes == 0;
        if !ok {
            failed = true;
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- {t} ---\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        let corpus_n = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
        rows.push((t.clone(), execs, crashes, corpus_n, ok));
    }
    println!("\n{:<14} {:>14} {:>10} {:>8} {:>8}  result", "target", "executions", "exec/s", "crashes", "corpus");
    for (t, execs, crashes, corpus, ok) in &rows {
        println!(
            "{t:<14} {:>14} {:>10} {crashes:>8} {corpus:>8}  {}",
            crate::thousands(*execs),
            crate::thousands(execs / seconds.max(1)),
            if *ok { "ok" } else { "FAIL (fuzz/artifacts/)" }
        );
    }
    println!("fuzz: {} targets, {seconds} s each, {:.0} s in all", rows.len(), t0.elapsed().as_secs_f64());
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The `[[bin]]` names of fuzz/Cargo.toml.
fn list_targets(fuzz: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(fuzz.join("Cargo.toml")).map_err(|e| format!("fuzz/Cargo.toml: {e}"))?;
    let mut v = Vec::new();
    let mut in_bin = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_bin = l == "[[bin]]";
        } else if in_bin && let Some(rest) = l.strip_prefix("name") {
            v.push(rest.trim_start().trim_start_matches('=').trim().trim_matches('"').to_string());
        }
    }
    if v.is_empty() { Err("no [[bin]] in fuzz/Cargo.toml".into()) } else { Ok(v) }
}

/// A number after `key` in libFuzzer's final stats.
fn stat(log: &str, key: &str) -> Option<u64> {
    log.lines().find_map(|l| l.trim().strip_prefix(key).and_then(|v| v.trim().parse().ok()))
}

fn count_crashes(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.starts_with("crash-")
                        || n.starts_with("timeout-")
                        || n.starts_with("oom-")
                        || n.starts_with("leak-")
                })
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_come_from_the_fuzz_manifest() {
        let t = list_targets(&crate::root().join("fuzz")).unwrap();
        for want in [
            "netstring",
            "envelope",
            "control",
            "qmqpservers",
            "smtp_command",
            "smtp_input",
            "cdb",
            "qmqp_reply",
            "smtp_reply",
            "smtproutes",
            "smtpd_session",
        ] {
            assert!(t.iter().any(|x| x == want), "{want} in {t:?}");
        }
        // Every target has seeds taken from the tests.
        for x in &t {
            let seeds = crate::root().join("fuzz/seeds").join(x);
            assert!(std::fs::read_dir(&seeds).map(|d| d.count()).unwrap_or(0) > 0, "{}", seeds.display());
        }
    }

    #[test]
    fn final_stats_are_read() {
        let log = "#123 DONE\nstat::number_of_executed_units: 4567\nstat::average_exec_per_sec:     76\n";
        assert_eq!(stat(log, "stat::number_of_executed_units:"), Some(4567));
        assert_eq!(stat(log, "stat::nope:"), None);
    }
}
