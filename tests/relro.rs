//! RELRO at run time: musl's static-PIE start-up never makes PT_GNU_RELRO
//! read-only, so picoq's start-up (`sys::Start::from_c`, shared by every
//! program) does. A running program's RELRO pages must be mapped `r--`.
//!
//! Under qemu-user (`PICOQ_RUNNER`), /proc/PID/maps describes qemu, not
//! the program: the cross targets list this test in their `test_skip`.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

/// (p_vaddr, p_memsz) of the PT_GNU_RELRO header, from `readelf -lW`.
fn relro_of(path: &std::path::Path) -> (u64, u64) {
    let out = Command::new("readelf").arg("-lW").arg(path).output().expect("readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.trim_start().starts_with("GNU_RELRO")).expect("a GNU_RELRO header");
    let f: Vec<&str> = line.split_whitespace().collect();
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    // GNU_RELRO Offset VirtAddr PhysAddr FileSiz MemSiz Flg Align
    (hex(f[2]), hex(f[5]))
}

#[test]
fn relro_pages_are_read_only_while_a_program_runs() {
    let bin = support::bin("qmqpd");
    let (vaddr, memsz) = relro_of(&bin);
    // qmqpd waits for a packet on fd 0: it has finished its start-up.
    let mut child = support::command("qmqpd")
        .env_clear()
        .env("PICOQ_HOME", "/nonexistent")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"");
    let _ = child.kill();
    let _ = child.wait();

    let real = std::fs::canonicalize(&bin).unwrap();
    let mine: Vec<(u64, u64, &str)> = maps
        .lines()
        .filter(|l| l.ends_with(real.to_str().unwrap()))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (a, b) = f[0].split_once('-').unwrap();
            (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap(), f[1])
        })
        .collect();
    let base = mine.iter().map(|m| m.0).min().expect("the program's own mappings");
    // Every page from the one holding RELRO's start up to the one holding
    // its end (the linker pads RELRO's end to a page; the page holding it,
    // if partial, also holds .data and stays writable) is read-only.
    let first = (base + vaddr) / 4096 * 4096;
    let last = (base + vaddr + memsz) / 4096 * 4096;
    assert!(last > first, "RELRO ({vaddr:#x}, {memsz} bytes) ends in its first page: nothing to check");
    let mut page = first;
    while page < last {
        let m = mine.iter().find(|m| m.0 <= page && page < m.1).expect("RELRO page mapped");
        assert_eq!(m.2, "r--p", "RELRO page {page:#x} is mapped {}:\n{maps}", m.2);
        page += 4096;
    }
}
