//! `cargo xtask size [TRIPLE]`: builds release for TRIPLE, then checks every
//! program that has a budget in `targets/TRIPLE.toml` against it, and its
//! ELF hardening (static PIE, RELRO, non-executable stack, W^X).

use crate::elf::Elf;
use crate::targets::{self, Target};
use crate::{HOST_TRIPLE, root, sh_quote, show, target_dir, thousands};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

pub fn main(args: &[String]) -> ExitCode {
    // --hardening: fail only when a program is not static/PIE/RELRO/NX
    // (what `make test` checks on every run); budgets are still printed.
    let (hardening_only, args) = match args {
        [flag, rest @ ..] if flag == "--hardening" => (true, rest),
        _ => (false, args),
    };
    let triple = match args {
        [] => HOST_TRIPLE,
        [t] if !t.starts_with('-') => t.as_str(),
        _ => return crate::usage("size takes [--hardening] and at most one target triple"),
    };
    let flag = if hardening_only { "--hardening " } else { "" };
    println!("$ cargo xtask size {flag}{triple}");
    let root = root();
    let target = match targets::load(&root, triple) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask size: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = build(&root, &target, &["--release"]) {
        eprintln!("xtask size: {e}");
        return ExitCode::FAILURE;
    }
    let rows = measure(&root, &target);
    print_table(&root, &target, &rows);
    let failed = rows.iter().any(|r| if hardening_only { r.not_hardened() } else { r.failed() });
    if hardening_only {
        println!(
            "size --hardening: {}",
            if failed {
                "FAIL: a program is not hardened"
            } else {
                "every built program is static, PIE, RELRO and NX (budgets not enforced)"
            }
        );
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The `cargo build` command for `target` with `profile_args`
/// (`--release` or `--profile NAME`), run from the workspace root.
pub fn build_command(target: &Target, profile_args: &[&str]) -> Vec<String> {
    let mut v = vec!["cargo".to_string()];
    if let Some(tc) = &target.toolchain {
        v.push(format!("+{tc}"));
    }
    v.push("build".into());
    v.extend(profile_args.iter().map(|s| s.to_string()));
    v.extend(["--locked", "--target", &target.triple].map(str::to_string));
    v.extend(target.cargo_args.iter().cloned());
    v
}

/// Prints and runs the build command; cargo's own messages go to stderr.
pub fn build(root: &Path, target: &Target, profile_args: &[&str]) -> Result<(), String> {
    let argv = build_command(target, profile_args);
    println!("$ {}", argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" "));
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("the build failed ({status})")) }
}

/// Where `profile`'s programs for `triple` land.
pub fn bin_dir(root: &Path, triple: &str, profile: &str) -> PathBuf {
    target_dir(root).join(triple).join(profile)
}

/// One program with a budget.
pub struct Row {
    pub name: String,
    pub budget: u64,
    pub path: PathBuf,
    pub state: State,
}

pub enum State {
    NotBuilt,
    /// Exists but could not be read as ELF.
    Unreadable(String),
    Built(Figures),
}

pub struct Figures {
    pub bytes: u64,
    /// .text, .rodata, .data, .bss (None: no such section, or no section
    /// headers).
    pub sections: [Option<u64>; 4],
    pub bind_now: bool,
    /// "ELF64 little-endian x86-64 static PIE".
    pub format: String,
    pub problems: Vec<String>,
}

const SECTIONS: [&str; 4] = [".text", ".rodata", ".data", ".bss"];

impl Row {
    /// Not hardened, or unreadable.
    pub fn not_hardened(&self) -> bool {
        match &self.state {
            State::NotBuilt => false,
            State::Unreadable(_) => true,
            State::Built(f) => !f.problems.is_empty(),
        }
    }

    /// Over budget, not hardened, or unreadable.
    pub fn failed(&self) -> bool {
        match &self.state {
            State::NotBuilt => false,
            State::Unreadable(_) => true,
            State::Built(f) => f.bytes > self.budget || !f.problems.is_empty(),
        }
    }
}

/// Measures every program that has a budget, in the targets file's order.
pub fn measure(root: &Path, target: &Target) -> Vec<Row> {
    let dir = bin_dir(root, &target.triple, "release");
    target
        .budgets
        .iter()
        .map(|(name, budget)| {
            let path = dir.join(name);
            let state = match std::fs::read(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::NotBuilt,
                Err(e) => State::Unreadable(e.to_string()),
                Ok(bytes) => match Elf::parse(&bytes) {
                    Err(e) => State::Unreadable(e),
                    Ok(elf) => State::Built(Figures {
                        bytes: bytes.len() as u64,
                        sections: SECTIONS.map(|s| elf.section_size(s)),
                        bind_now: elf.bind_now(),
                        format: elf.describe(),
                        problems: elf.hardening_problems(),
                    }),
                },
            };
            Row { name: name.clone(), budget: *budget, path, state }
        })
        .collect()
}

/// Measures and prints the table; true when nothing failed.
pub fn report(root: &Path, target: &Target) -> bool {
    let rows = measure(root, target);
    print_table(root, target, &rows);
    !rows.iter().any(Row::failed)
}

pub fn print_table(root: &Path, target: &Target, rows: &[Row]) {
    let dir = bin_dir(root, &target.triple, "release");
    println!();
    println!(
        "sizes of {}/<program> (stripped, static), budgets from {}",
        show(root, &dir),
        show(root, &targets::path(root, &target.triple))
    );
    println!(
        "checks: PIE (ET_DYN), no PT_INTERP, no DT_NEEDED, PT_GNU_RELRO, non-executable PT_GNU_STACK, no writable+executable LOAD; BIND_NOW is reported only"
    );
    println!();
    let head = ["program", "bytes", "budget", "of budget", ".text", ".rodata", ".data", ".bss", "BIND_NOW", "result"];
    let mut table: Vec<[String; 10]> = vec![head.map(str::to_string)];
    let mut notes = Vec::new();
    for r in rows {
        let dash = || "-".to_string();
        let mut line =
            [r.name.clone(), dash(), thousands(r.budget), dash(), dash(), dash(), dash(), dash(), dash(), dash()];
        match &r.state {
            State::NotBuilt => line[9] = "not built".into(),
            State::Unreadable(e) => {
                line[9] = "FAIL: unreadable".into();
                notes.push(format!("{}: {}: {e}", r.name, show(root, &r.path)));
            }
            State::Built(f) => {
                line[1] = thousands(f.bytes);
                line[3] = format!("{:.1}%", f.bytes as f64 * 100.0 / r.budget as f64);
                for (i, s) in f.sections.iter().enumerate() {
                    line[4 + i] = s.map_or_else(dash, thousands);
                }
                line[8] = if f.bind_now { "yes" } else { "no" }.into();
                let mut result = Vec::new();
                if f.bytes > r.budget {
                    result.push(format!("OVER budget by {} B", thousands(f.bytes - r.budget)));
                }
                if f.problems.is_empty() {
                    notes.push(format!("{}: {}", r.name, f.format));
                } else {
                    result.push("NOT HARDENED".to_string());
                    notes.push(format!("{}: {}: {}", r.name, f.format, f.problems.join("; ")));
                }
                line[9] = if result.is_empty() { "ok".into() } else { format!("FAIL: {}", result.join(", ")) };
            }
        }
        table.push(line);
    }
    let mut width = [0usize; 10];
    for line in &table {
        for (w, cell) in width.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for line in &table {
        let mut out = String::new();
        for (i, cell) in line.iter().enumerate() {
            let pad = width[i] - cell.chars().count();
            match i {
                0 | 8 => out.push_str(&format!("{cell}{}  ", " ".repeat(pad))),
                9 => out.push_str(cell),
                _ => out.push_str(&format!("{}{cell}  ", " ".repeat(pad))),
            }
        }
        println!("{}", out.trim_end());
    }
    for n in &notes {
        println!("  {n}");
    }
    let failed: Vec<&str> = rows.iter().filter(|r| r.failed()).map(|r| r.name.as_str()).collect();
    let built = rows.iter().filter(|r| !matches!(r.state, State::NotBuilt)).count();
    println!();
    if failed.is_empty() {
        println!("size: ok ({built} of {} budgeted programs built, all within budget and hardened)", rows.len());
    } else {
        println!("size: FAIL: {}", failed.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_commands() {
        let t =
            Target { triple: "x86_64-unknown-linux-musl".into(), toolchain: None, cargo_args: vec![], budgets: vec![] };
        assert_eq!(
            build_command(&t, &["--release"]).join(" "),
            "cargo build --release --locked --target x86_64-unknown-linux-musl"
        );
        let t = Target { toolchain: Some("nightly".into()), cargo_args: vec!["-Zbuild-std=core".into()], ..t };
        assert_eq!(
            build_command(&t, &["--profile", "bench-symbols"]).join(" "),
            "cargo +nightly build --profile bench-symbols --locked --target x86_64-unknown-linux-musl -Zbuild-std=core"
        );
    }
}
