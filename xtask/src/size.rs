//! `cargo xtask size [TRIPLE]`: builds release for TRIPLE, then checks every
//! program that has a budget in `targets/TRIPLE.toml` against it, and its
//! ELF hardening (static PIE, RELRO, non-executable stack, W^X, nothing but
//! code in the pages mapped executable).

use crate::elf::Elf;
use crate::targets::{self, Target};
use crate::{HOST_TRIPLE, root, show, target_dir, thousands};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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
        let accepted = rows.iter().any(|r| matches!(&r.state, State::Built(f) if !f.accepted.is_empty()));
        println!(
            "size --hardening: {}",
            if failed {
                "FAIL: a program is not hardened"
            } else if accepted {
                "every built program is static, PIE, RELRO and NX, but for the accepted deviations above (budgets not enforced)"
            } else {
                "every built program is static, PIE, RELRO and NX, and maps only code executable (budgets not enforced)"
            }
        );
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Builds every program for `target` (see `cross::build`: the target's
/// builder, flags and post-link steps).
pub fn build(root: &Path, target: &Target, profile_args: &[&str]) -> Result<(), String> {
    crate::cross::build(root, target, profile_args).map(|_| ())
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
    /// headers; then .text is the code's size, see `text_from_load`).
    pub sections: [Option<u64>; 4],
    /// No section headers (x86_64 cuts them after the link): .text is the
    /// executable PT_LOADs' p_filesz instead.
    pub text_from_load: bool,
    pub bind_now: bool,
    /// "ELF64 little-endian x86-64 static PIE".
    pub format: String,
    /// Hardening problems not accepted by the target file.
    pub problems: Vec<String>,
    /// Hardening problems the target file accepts (`hardening_exceptions`).
    pub accepted: Vec<String>,
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
                    Ok(elf) => {
                        let (accepted, problems) = split_problems(target, &elf.hardening_problems());
                        let mut sections = SECTIONS.map(|s| elf.section_size(s));
                        let text_from_load = elf.sections.is_empty();
                        if text_from_load {
                            sections[0] = Some(elf.code_bytes());
                        }
                        State::Built(Figures {
                            bytes: bytes.len() as u64,
                            sections,
                            text_from_load,
                            bind_now: elf.bind_now(),
                            format: elf.describe(),
                            problems,
                            accepted,
                        })
                    }
                },
            };
            Row { name: name.clone(), budget: *budget, path, state }
        })
        .collect()
}

/// (accepted by the target file, the others).
pub fn split_problems(target: &Target, problems: &[String]) -> (Vec<String>, Vec<String>) {
    problems.iter().cloned().partition(|p| target.hardening_exceptions.iter().any(|x| p.starts_with(x.as_str())))
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
        "checks: PIE (ET_DYN), no PT_INTERP, no DT_NEEDED, PT_GNU_RELRO, non-executable PT_GNU_STACK, no writable+executable LOAD, nothing but code in the file pages an executable LOAD maps; BIND_NOW is reported only"
    );
    println!();
    let head = ["program", "bytes", "budget", "of budget", ".text", ".rodata", ".data", ".bss", "BIND_NOW", "result"];
    let mut table: Vec<[String; 10]> = vec![head.map(str::to_string)];
    let mut notes = Vec::new();
    let mut text_from_load = false;
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
                if f.text_from_load {
                    line[4].push('*');
                    text_from_load = true;
                }
                line[8] = if f.bind_now { "yes" } else { "no" }.into();
                let mut result = Vec::new();
                if f.bytes > r.budget {
                    result.push(format!("OVER budget by {} B", thousands(f.bytes - r.budget)));
                }
                if !f.accepted.is_empty() {
                    notes.push(format!(
                        "{}: accepted deviation (hardening_exceptions in the target file): {}",
                        r.name,
                        f.accepted.join("; ")
                    ));
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
    if text_from_load {
        println!(
            "  *: no section headers (removed after the link, see targets/x86_64-linux-musl-ld): .text is the executable LOAD's p_filesz, the code"
        );
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
    fn accepted_deviations() {
        let t = Target { hardening_exceptions: vec!["no PT_GNU_RELRO".into()], ..Default::default() };
        let (accepted, rest) = split_problems(&t, &["no PT_GNU_RELRO".into(), "not PIE (ET_EXEC)".into()]);
        assert_eq!(accepted, ["no PT_GNU_RELRO"]);
        assert_eq!(rest, ["not PIE (ET_EXEC)"]);
    }
}
