//! `cargo xtask oldkernel`: the black-box tests as if on a Linux 3.2
//! kernel (SPEC §8: nothing newer than 3.2 may be required).
//!
//! `cargo xtask oldkernel-exec PROGRAM [ARG...]` installs a seccomp filter
//! and execs PROGRAM; the filter is inherited by everything PROGRAM runs
//! (a queue program). On x86-64 it answers
//! - ENOSYS to every system call newer than 3.2: 3.2's last one is 311
//!   (process_vm_writev); 312 (kcmp, 3.5) and up are renameat2, getrandom,
//!   memfd_create, execveat, copy_file_range, preadv2, statx, rseq, clone3,
//!   close_range, openat2, faccessat2 and every later one;
//! - EISDIR to open/openat with O_TMPFILE (3.11): O_TMPFILE is
//!   __O_TMPFILE | O_DIRECTORY, and an older kernel ignores the unknown bit
//!   and refuses a read-write open of a directory with EISDIR.
//!
//! `cargo xtask oldkernel [-- ARGS]` first checks the filter itself
//! (`tests/oldkernel_probe.py` run under it must see those answers), then
//! builds the host programs and runs the black-box tests with
//! `PICOQ_RUNNER` set to `xtask oldkernel-exec` (it composes with the
//! tests' own use of the runner: tcpserver, `sh -c 'exec $RUNNER ...'`).
//!
//! A Rust launcher rather than a script: the tests hand programs odd
//! standard descriptors (a directory as fd 1, closed fds), which an
//! interpreter's start-up chokes on, while this one only calls prctl and
//! execve. No dependency: prctl comes from the C library std links.

use crate::{HOST_TRIPLE, root, sh_quote, targets};
use std::ffi::c_int;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};
use std::time::Instant;

const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const LAST_SYSCALL_3_2: u32 = 311; // process_vm_writev
const SYS_OPEN: u32 = 2;
const SYS_OPENAT: u32 = 257;
const O_TMPFILE_BIT: u32 = 0o2000_0000; // __O_TMPFILE on x86-64
const ENOSYS: u32 = 38;
const EISDIR: u32 = 21;

const PR_SET_NO_NEW_PRIVS: c_int = 38;
const PR_SET_SECCOMP: c_int = 22;
const SECCOMP_MODE_FILTER: usize = 2;
const RET_ALLOW: u32 = 0x7fff_0000;
const RET_ERRNO: u32 = 0x0005_0000;

// Classic BPF opcodes.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGT_K: u16 = 0x25;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

// struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6]. x86-64 is
// little-endian: the low 32 bits of args[i] are at 16 + 8 * i.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn arg_low(i: u32) -> u32 {
    16 + 8 * i
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const fn op(code: u16, jt: u8, jf: u8, k: u32) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The filter; jump offsets count from the next instruction.
const FILTER: [SockFilter; 13] = [
    op(LD_W_ABS, 0, 0, OFF_ARCH),        // 0
    op(JEQ_K, 0, 8, AUDIT_ARCH_X86_64),  // 1: other arch -> 10 allow
    op(LD_W_ABS, 0, 0, OFF_NR),          // 2
    op(JGT_K, 7, 0, LAST_SYSCALL_3_2),   // 3: newer -> 11 ENOSYS
    op(JEQ_K, 3, 0, SYS_OPEN),           // 4: open -> 8
    op(JEQ_K, 0, 4, SYS_OPENAT),         // 5: neither -> 10 allow
    op(LD_W_ABS, 0, 0, arg_low(2)),      // 6: openat's flags
    op(JSET_K, 4, 2, O_TMPFILE_BIT),     // 7: -> 12 EISDIR, else 10
    op(LD_W_ABS, 0, 0, arg_low(1)),      // 8: open's flags
    op(JSET_K, 2, 0, O_TMPFILE_BIT),     // 9: -> 12 EISDIR, else 10
    op(RET_K, 0, 0, RET_ALLOW),          // 10
    op(RET_K, 0, 0, RET_ERRNO | ENOSYS), // 11
    op(RET_K, 0, 0, RET_ERRNO | EISDIR), // 12
];

unsafe extern "C" {
    fn prctl(option: c_int, ...) -> c_int;
}

fn install() -> Result<(), String> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err("the old-kernel filter is written for x86-64 Linux".into());
    }
    let prog = SockFprog { len: FILTER.len() as u16, filter: FILTER.as_ptr() };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only. For
    // PR_SET_SECCOMP, `prog` points to a valid sock_fprog whose filter
    // array (a static) outlives the call; the kernel copies it.
    unsafe {
        if prctl(PR_SET_NO_NEW_PRIVS, 1usize, 0usize, 0usize, 0usize) != 0 {
            return Err(format!("PR_SET_NO_NEW_PRIVS: {}", std::io::Error::last_os_error()));
        }
        if prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog as *const SockFprog, 0usize, 0usize) != 0 {
            return Err(format!("PR_SET_SECCOMP: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// `oldkernel-exec PROGRAM [ARG...]`: filter, then exec (PATH is searched
/// like a shell's exec). Only returns on failure.
pub fn exec_main(args: &[String]) -> ExitCode {
    let Some((prog, rest)) = args.split_first() else {
        return crate::usage("oldkernel-exec takes a program and its arguments");
    };
    if let Err(e) = install() {
        eprintln!("xtask oldkernel-exec: {e}");
        return ExitCode::from(111);
    }
    let e = Command::new(prog).args(rest).exec();
    eprintln!("xtask oldkernel-exec: cannot run {prog}: {e}");
    ExitCode::from(111)
}

/// `oldkernel [-- ARGS]`: probe the filter, build, run the tests under it.
pub fn main(args: &[String]) -> ExitCode {
    let extra = match args.split_first() {
        None => &[][..],
        Some((dd, rest)) if dd == "--" => rest,
        _ => return crate::usage("oldkernel takes only `-- ARGS` for the test harnesses"),
    };
    println!("$ cargo xtask oldkernel");
    let root = root();
    let me = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("xtask oldkernel: cannot find my own program: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runner = format!("{} oldkernel-exec", me.display());
    if me.to_string_lossy().contains(char::is_whitespace) {
        eprintln!("xtask oldkernel: {} has a space in its path: PICOQ_RUNNER cannot hold it", me.display());
        return ExitCode::FAILURE;
    }

    // 1. The filter answers what a 3.2 kernel would.
    let probe = root.join("tests/oldkernel_probe.py");
    println!("$ {runner} /usr/bin/python3 {}", sh_quote(&probe.to_string_lossy()));
    match Command::new(&me).arg("oldkernel-exec").arg("/usr/bin/python3").arg(&probe).status() {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("xtask oldkernel: the filter probe failed ({other:?})");
            return ExitCode::FAILURE;
        }
    }

    // 2. The host programs, then every black-box test through the filter.
    let target = match targets::load(&root, HOST_TRIPLE) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("xtask oldkernel: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = crate::size::build(&root, &target, &["--release"]) {
        eprintln!("xtask oldkernel: {e}");
        return ExitCode::FAILURE;
    }
    let dir = crate::size::bin_dir(&root, HOST_TRIPLE, "release");
    let mut argv: Vec<String> =
        ["cargo", "test", "--locked", "--no-fail-fast", "-p", "picoq", "--tests"].map(str::to_string).to_vec();
    if !extra.is_empty() {
        argv.push("--".into());
        argv.extend(extra.iter().cloned());
    }
    println!(
        "$ PICOQ_BIN_DIR={} PICOQ_RUNNER={} {}",
        sh_quote(&dir.to_string_lossy()),
        sh_quote(&runner),
        argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ")
    );
    let t0 = Instant::now();
    let status = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(&root)
        .env("PICOQ_BIN_DIR", &dir)
        .env("PICOQ_RUNNER", &runner)
        .status();
    println!("oldkernel: tests {:.0} s under the Linux 3.2 filter", t0.elapsed().as_secs_f64());
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        other => {
            eprintln!("xtask oldkernel: the tests failed ({other:?})");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every jump lands inside the program, and every path ends in a RET.
    #[test]
    fn filter_jumps_stay_inside() {
        for (i, f) in FILTER.iter().enumerate() {
            if f.code & 0x07 == 0x05 {
                for off in [f.jt, f.jf] {
                    let to = i + 1 + usize::from(off);
                    assert!(to < FILTER.len(), "instruction {i} jumps to {to}");
                }
            }
        }
        assert_eq!(FILTER.last().unwrap().code, RET_K);
        assert_eq!(FILTER[3 + 1 + 7], op(RET_K, 0, 0, RET_ERRNO | ENOSYS));
        assert_eq!(FILTER[7 + 1 + 4], op(RET_K, 0, 0, RET_ERRNO | EISDIR));
        assert_eq!(FILTER[1 + 1 + 8], op(RET_K, 0, 0, RET_ALLOW));
    }
}
