//! `cargo xtask dist TRIPLE [--verify]`: one tarball per target,
//! `<target dir>/dist/picoq-VERSION-TRIPLE.tar.gz`, holding
//!
//! ```text
//! picoq-VERSION-TRIPLE/bin/<program>         every built program (0755)
//! picoq-VERSION-TRIPLE/man/man8/<program>.8  its man page, when it has one
//! picoq-VERSION-TRIPLE/SHA256SUMS            `sha256sum -c` format, sorted
//! ```
//!
//! Reproducible byte for byte: the programs come from `cargo xtask cross`
//! (no paths or timestamps end up in them: release, stripped, no build-id),
//! the tar is written here (ustar, sorted names, uid/gid 0, fixed modes,
//! every mtime the commit's time or `$SOURCE_DATE_EPOCH`), and gzip runs
//! with `-n` (no name, no time). `--verify` builds everything again from
//! scratch in another target directory (`target/dist-verify`) and compares
//! the two tarballs.

use crate::targets;
use crate::{root, show, target_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

pub fn main(args: &[String]) -> ExitCode {
    let (triple, verify) = match args {
        [t] if !t.starts_with('-') => (t.as_str(), false),
        [t, v] if !t.starts_with('-') && v == "--verify" => (t.as_str(), true),
        _ => return crate::usage("dist takes a target triple and optionally --verify"),
    };
    println!("$ cargo xtask dist {triple}{}", if verify { " --verify" } else { "" });
    let root = root();
    match run(&root, triple) {
        Ok(tarball) => {
            if !verify {
                return ExitCode::SUCCESS;
            }
            match verify_again(&root, triple, &tarball) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("xtask dist: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("xtask dist: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Builds and packs; returns the tarball's path.
fn run(root: &Path, triple: &str) -> Result<PathBuf, String> {
    let target = targets::load(root, triple)?;
    crate::cross::build(root, &target, &["--release"])?;
    let bin_dir = crate::size::bin_dir(root, triple, "release");
    let version = package_version(root)?;
    let top = format!("picoq-{version}-{triple}");
    let mtime = source_date(root);

    // (name in the archive, mode, contents), sorted by name.
    let mut files: Vec<(String, u32, Vec<u8>)> = Vec::new();
    for name in crate::cross::programs(root)? {
        let p = bin_dir.join(&name);
        let Ok(bytes) = std::fs::read(&p) else { continue };
        files.push((format!("bin/{name}"), 0o755, bytes));
        let man = root.join("man").join(format!("{name}.8"));
        if let Ok(page) = std::fs::read(&man) {
            files.push((format!("man/man8/{name}.8"), 0o644, page));
        }
    }
    if !files.iter().any(|f| f.0.starts_with("bin/")) {
        return Err(format!("no program built in {}", bin_dir.display()));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sums = String::new();
    for (name, _, bytes) in &files {
        sums.push_str(&format!("{}  {name}\n", sha256_hex(bytes)?));
    }
    files.push(("SHA256SUMS".into(), 0o644, sums.clone().into_bytes()));
    files.sort_by(|a, b| a.0.cmp(&b.0));

    // Directories first (sorted), then files (sorted): a stable order that
    // creates every directory before its files.
    let mut tar = Vec::new();
    tar_entry(&mut tar, &format!("{top}/"), 0o755, mtime, None)?;
    for dir in dirs_of(&files) {
        tar_entry(&mut tar, &format!("{top}/{dir}/"), 0o755, mtime, None)?;
    }
    for (name, mode, bytes) in &files {
        tar_entry(&mut tar, &format!("{top}/{name}"), *mode, mtime, Some(bytes))?;
    }
    tar.extend_from_slice(&[0u8; 1024]); // two zero blocks end the archive
    let out_dir = target_dir(root).join("dist");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let tarball = out_dir.join(format!("{top}.tar.gz"));
    let gz = gzip(&tar)?;
    std::fs::write(&tarball, &gz).map_err(|e| format!("{}: {e}", tarball.display()))?;
    print!("{sums}");
    println!(
        "dist: {} ({} bytes, sha256 {})",
        show(root, &tarball),
        crate::thousands(gz.len() as u64),
        sha256_hex(&gz)?
    );
    Ok(tarball)
}

/// Builds again from scratch in `target/dist-verify` (a fresh cargo target
/// directory: every crate and program compiled anew) and compares.
fn verify_again(root: &Path, triple: &str, first: &Path) -> Result<(), String> {
    let other = root.join("target").join("dist-verify");
    let _ = std::fs::remove_dir_all(&other);
    println!("$ CARGO_TARGET_DIR={} cargo xtask dist {triple}", show(root, &other));
    let status = Command::new("cargo")
        .args(["xtask", "dist", triple])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &other)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("the second build failed ({status})"));
    }
    let second = other.join("dist").join(first.file_name().unwrap());
    let a = std::fs::read(first).map_err(|e| format!("{}: {e}", first.display()))?;
    let b = std::fs::read(&second).map_err(|e| format!("{}: {e}", second.display()))?;
    if a == b {
        println!(
            "dist --verify: {} and {} are byte-identical ({} bytes)",
            show(root, first),
            show(root, &second),
            crate::thousands(a.len() as u64)
        );
        Ok(())
    } else {
        Err(format!("{} and {} differ: the build is not reproducible", first.display(), second.display()))
    }
}

/// `version` of the root package.
fn package_version(root: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(root.join("Cargo.toml")).map_err(|e| format!("Cargo.toml: {e}"))?;
    let mut in_package = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(v) = line.strip_prefix("version").map(str::trim_start).and_then(|v| v.strip_prefix('='))
        {
            return Ok(v.trim().trim_matches('"').to_string());
        }
    }
    Err("Cargo.toml: no [package] version".into())
}

/// `$SOURCE_DATE_EPOCH`, else the commit time of HEAD, else 0.
fn source_date(root: &Path) -> u64 {
    if let Some(t) = std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok()) {
        return t;
    }
    Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(root)
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

/// Every directory that holds one of `files`, parents included, sorted.
fn dirs_of(files: &[(String, u32, Vec<u8>)]) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    for (name, _, _) in files {
        let mut p = name.as_str();
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if !dirs.iter().any(|d| d == p) {
                dirs.push(p.to_string());
            }
        }
    }
    dirs.sort();
    dirs
}

/// Appends one ustar entry: a directory (`data` None, name ending in '/')
/// or a regular file.
fn tar_entry(out: &mut Vec<u8>, name: &str, mode: u32, mtime: u64, data: Option<&[u8]>) -> Result<(), String> {
    let mut h = [0u8; 512];
    // ustar: a name over 100 bytes goes into the 155-byte prefix field.
    let (prefix, base) = if name.len() <= 100 {
        ("", name)
    } else {
        let cut = name[..name.len().min(156)].rfind('/').ok_or_else(|| format!("name too long for ustar: {name}"))?;
        (&name[..cut], &name[cut + 1..])
    };
    if base.len() > 100 || prefix.len() > 155 {
        return Err(format!("name too long for ustar: {name}"));
    }
    h[..base.len()].copy_from_slice(base.as_bytes());
    let octal = |h: &mut [u8; 512], at: usize, len: usize, v: u64| {
        let s = format!("{v:0w$o}", w = len - 1);
        h[at..at + len - 1].copy_from_slice(s.as_bytes());
    };
    octal(&mut h, 100, 8, u64::from(mode));
    octal(&mut h, 108, 8, 0); // uid
    octal(&mut h, 116, 8, 0); // gid
    octal(&mut h, 124, 12, data.map_or(0, |d| d.len() as u64));
    octal(&mut h, 136, 12, mtime);
    h[156] = if data.is_some() { b'0' } else { b'5' };
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // Checksum: computed with the field itself as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    out.extend_from_slice(&h);
    if let Some(d) = data {
        out.extend_from_slice(d);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    Ok(())
}

/// `gzip -9 -n`: no file name, no timestamp in the header.
fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    pipe_through(&["gzip", "-9", "-n", "-c"], data)
}

/// SHA-256 of `data`, hex, by `sha256sum` (coreutils).
fn sha256_hex(data: &[u8]) -> Result<String, String> {
    let out = pipe_through(&["sha256sum", "-b", "-"], data)?;
    let text = String::from_utf8_lossy(&out);
    let hex = text.split_whitespace().next().unwrap_or("");
    if hex.len() == 64 { Ok(hex.to_string()) } else { Err(format!("sha256sum printed {text:?}")) }
}

fn pipe_through(argv: &[&str], data: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Write;
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|e| format!("{}: {e}", argv[0]))?;
    let _ = feeder.join();
    if out.status.success() { Ok(out.stdout) } else { Err(format!("{} failed ({})", argv[0], out.status)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_is_readable_by_tar() {
        let files = vec![
            ("SHA256SUMS".to_string(), 0o644, b"x\n".to_vec()),
            ("bin/qmqpc".to_string(), 0o755, vec![7u8; 700]),
            ("man/man8/qmqpc.8".to_string(), 0o644, b".TH\n".to_vec()),
        ];
        let mut tar = Vec::new();
        for d in dirs_of(&files) {
            tar_entry(&mut tar, &format!("top/{d}/"), 0o755, 1_700_000_000, None).unwrap();
        }
        for (n, m, b) in &files {
            tar_entry(&mut tar, &format!("top/{n}"), *m, 1_700_000_000, Some(b)).unwrap();
        }
        tar.extend_from_slice(&[0u8; 1024]);
        assert_eq!(dirs_of(&files), ["bin", "man", "man/man8"]);
        let listing = pipe_through(&["env", "TZ=UTC", "tar", "-tvf", "-"], &tar).unwrap();
        let listing = String::from_utf8(listing).unwrap();
        assert!(listing.contains("-rwxr-xr-x root/root       700 2023-11-14 22:13 top/bin/qmqpc"), "{listing}");
        assert!(listing.contains("top/man/man8/qmqpc.8"), "{listing}");
        assert!(listing.contains("drwxr-xr-x root/root         0 2023-11-14 22:13 top/man/man8/"), "{listing}");
    }

    #[test]
    fn long_names_use_the_prefix_field() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        let mut tar = Vec::new();
        tar_entry(&mut tar, &name, 0o644, 0, Some(b"hi")).unwrap();
        tar.extend_from_slice(&[0u8; 1024]);
        let listing = String::from_utf8(pipe_through(&["tar", "-tf", "-"], &tar).unwrap()).unwrap();
        assert_eq!(listing.trim(), name);
    }

    #[test]
    fn sha256_of_abc() {
        assert_eq!(sha256_hex(b"abc").unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn version_of_the_root_package() {
        assert!(!package_version(&crate::root()).unwrap().is_empty());
    }
}
