//! `cargo xtask install PREFIX [--destdir DIR]` (what `make install`
//! runs) and `cargo xtask check-install DIR`: one manifest,
//! `install/manifest`, says what goes where with which owner, group and
//! mode; install applies it, check-install compares a tree with it (qmail's
//! hier.c + instcheck).
//!
//! Install builds the programs with `PICOQ_HOME_DEFAULT=PREFIX` (the home
//! and queue-shim's path to queue-spool are compiled in) in a target
//! directory of its own, `target/install-<prefix>/`, so the everyday build
//! is never disturbed. As root it creates the spool user and group
//! (`picoq`) when missing and sets every owner; with `--destdir` and not
//! root (a staging tree for a package) owners are left to the packager.
//! Files are written beside their final name, given owner and mode, then
//! renamed into place, so a running system never sees a half-copied
//! program or a setuid bit on the wrong owner.

use crate::{HOST_TRIPLE, root, target_dir};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The spool user and group.
pub const SPOOL_USER: &str = "picoq";

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Dir,
    File,
    Link,
    Fifo,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub kind: Kind,
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub source: String,
}

/// Reads `install/manifest`.
pub fn manifest(root: &Path) -> Result<Vec<Entry>, String> {
    let path = root.join("install/manifest");
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text)
}

fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("install/manifest line {}: {line:?}", n + 1);
        let kind = match w.first() {
            Some(&"d") => Kind::Dir,
            Some(&"f") => Kind::File,
            Some(&"l") => Kind::Link,
            Some(&"p") => Kind::Fifo,
            _ => return Err(bad()),
        };
        let want = if matches!(kind, Kind::File | Kind::Link) { 6 } else { 5 };
        if w.len() != want || w[1].starts_with('/') || w[1].split('/').any(|c| c == "..") {
            return Err(bad());
        }
        let mode = if kind == Kind::Link { 0 } else { u32::from_str_radix(w[4], 8).map_err(|_| bad())? };
        if mode & 0o002 != 0 {
            return Err(format!("{}: world-writable modes are not allowed", bad()));
        }
        out.push(Entry {
            kind,
            path: w[1].to_string(),
            owner: w[2].to_string(),
            group: w[3].to_string(),
            mode,
            source: w.get(5).unwrap_or(&"").to_string(),
        });
    }
    Ok(out)
}

/// The numeric id of `name` in `/etc/passwd` (field 3) or `/etc/group`.
fn lookup_id(db: &str, name: &str) -> Option<u32> {
    let text = fs::read_to_string(db).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() > 2 && f[0] == name { f[2].parse().ok() } else { None }
    })
}

pub fn uid(name: &str) -> Option<u32> {
    lookup_id("/etc/passwd", name)
}

pub fn gid(name: &str) -> Option<u32> {
    lookup_id("/etc/group", name)
}

fn is_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let st = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if st.success() { Ok(()) } else { Err(format!("{cmd:?}: {st}")) }
}

/// Creates the spool group and user when missing (system account, no
/// home, no login shell).
fn ensure_spool_user() -> Result<(), String> {
    if gid(SPOOL_USER).is_none() {
        run(Command::new("groupadd").args(["--system", SPOOL_USER]))?;
    }
    if uid(SPOOL_USER).is_none() {
        run(Command::new("useradd").args([
            "--system",
            "--gid",
            SPOOL_USER,
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SPOOL_USER,
        ]))?;
    }
    Ok(())
}

/// `target/install-<prefix with / as _>/`.
pub fn build_dir(root: &Path, prefix: &str) -> PathBuf {
    let name: String = prefix.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    target_dir(root).join(format!("install{name}"))
}

/// Release build with `prefix` compiled in; the programs' directory.
pub fn build(root: &Path, prefix: &str) -> Result<PathBuf, String> {
    let dir = build_dir(root, prefix);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--locked", "--target", HOST_TRIPLE, "-p", "picoq", "--bins"])
        .arg("--target-dir")
        .arg(&dir)
        .env("PICOQ_HOME_DEFAULT", prefix))?;
    Ok(dir.join(HOST_TRIPLE).join("release"))
}

pub fn main(args: &[String]) -> ExitCode {
    let (prefix, destdir) = match args {
        [p] => (p.clone(), None),
        [p, flag, d] if flag == "--destdir" => (p.clone(), Some(d.clone())),
        _ => return crate::usage("usage: install PREFIX [--destdir DIR]"),
    };
    match install(&prefix, destdir.as_deref().filter(|d| !d.is_empty())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask install: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn install(prefix: &str, destdir: Option<&str>) -> Result<(), String> {
    if !prefix.starts_with('/') || prefix.split('/').any(|c| c == "..") {
        return Err(format!("PREFIX must be an absolute path without .., got {prefix:?}"));
    }
    let prefix = prefix.trim_end_matches('/');
    let prefix = if prefix.is_empty() { "/" } else { prefix };
    let root = root();
    let entries = manifest(&root)?;
    let as_root = is_root();
    if !as_root && destdir.is_none() {
        return Err("run as root (or stage with --destdir DIR)".into());
    }
    if as_root {
        ensure_spool_user()?;
    }
    let bins = build(&root, prefix)?;
    let base = match destdir {
        Some(d) => PathBuf::from(format!("{}/{}", d.trim_end_matches('/'), prefix.trim_start_matches('/'))),
        None => PathBuf::from(prefix),
    };
    fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    for e in &entries {
        let path = if e.path == "." { base.clone() } else { base.join(&e.path) };
        let err = |x: std::io::Error| format!("{}: {x}", path.display());
        match e.kind {
            Kind::Dir => {
                if !path.is_dir() {
                    fs::create_dir(&path).map_err(err)?;
                }
                set_owner_mode(&path, e, as_root)?;
            }
            Kind::File => {
                let from = if e.source.contains('/') { root.join(&e.source) } else { bins.join(&e.source) };
                let staged = path.with_file_name(format!(".{}.picoq-new", path.file_name().unwrap().to_string_lossy()));
                let _ = fs::remove_file(&staged);
                fs::copy(&from, &staged).map_err(|x| format!("{} -> {}: {x}", from.display(), staged.display()))?;
                set_owner_mode(&staged, e, as_root)?;
                fs::rename(&staged, &path).map_err(err)?;
            }
            Kind::Link => {
                if fs::symlink_metadata(&path).is_ok() {
                    fs::remove_file(&path).map_err(err)?;
                }
                std::os::unix::fs::symlink(&e.source, &path).map_err(err)?;
            }
            Kind::Fifo => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if std::os::unix::fs::FileTypeExt::is_fifo(&m.file_type()) => {}
                    Ok(_) => return Err(format!("{}: exists and is not a FIFO", path.display())),
                    Err(_) => run(Command::new("mkfifo").arg("-m").arg("0600").arg(&path))?,
                }
                set_owner_mode(&path, e, as_root)?;
            }
        }
    }
    println!("installed into {} (programs built in {})", base.display(), crate::show(&root, &bins));
    Ok(())
}

/// chown (when root), then chmod: chown clears the setuid bit, so the mode
/// comes last.
fn set_owner_mode(path: &Path, e: &Entry, as_root: bool) -> Result<(), String> {
    if as_root {
        let u = uid(&e.owner).ok_or_else(|| format!("no user {}", e.owner))?;
        let g = gid(&e.group).ok_or_else(|| format!("no group {}", e.group))?;
        chown(path, Some(u), Some(g)).map_err(|x| format!("chown {}: {x}", path.display()))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(e.mode)).map_err(|x| format!("chmod {}: {x}", path.display()))
}

pub fn check_main(args: &[String]) -> ExitCode {
    let [dir] = args else { return crate::usage("usage: check-install DIR") };
    let entries = match manifest(&root()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("xtask check-install: {e}");
            return ExitCode::FAILURE;
        }
    };
    let problems = check(Path::new(dir), &entries);
    for p in &problems {
        println!("check-install: {p}");
    }
    if problems.is_empty() {
        println!("check-install: {dir} matches install/manifest ({} entries)", entries.len());
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Every difference between the tree at `base` and the manifest, and every
/// world-writable file or directory in the tree.
pub fn check(base: &Path, entries: &[Entry]) -> Vec<String> {
    let mut out = Vec::new();
    for e in entries {
        let path = if e.path == "." { base.to_path_buf() } else { base.join(&e.path) };
        let m = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(x) => {
                out.push(format!("{}: {x}", e.path));
                continue;
            }
        };
        let ft = m.file_type();
        let kind_ok = match e.kind {
            Kind::Dir => ft.is_dir(),
            Kind::File => ft.is_file(),
            Kind::Link => ft.is_symlink(),
            Kind::Fifo => std::os::unix::fs::FileTypeExt::is_fifo(&ft),
        };
        if !kind_ok {
            out.push(format!("{}: wrong type ({ft:?})", e.path));
            continue;
        }
        if e.kind == Kind::Link {
            let target = fs::read_link(&path).map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
            if target != e.source {
                out.push(format!("{}: points to {target:?}, want {:?}", e.path, e.source));
            }
            continue;
        }
        let mode = m.mode() & 0o7777;
        if mode != e.mode {
            out.push(format!("{}: mode {mode:04o}, want {:04o}", e.path, e.mode));
        }
        match uid(&e.owner) {
            Some(u) if u == m.uid() => {}
            _ => out.push(format!("{}: owner uid {}, want {}", e.path, m.uid(), e.owner)),
        }
        match gid(&e.group) {
            Some(g) if g == m.gid() => {}
            _ => out.push(format!("{}: group gid {}, want {}", e.path, m.gid(), e.group)),
        }
    }
    world_writable(base, base, &mut out);
    out
}

fn world_writable(base: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for d in rd.flatten() {
        let p = d.path();
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if m.file_type().is_symlink() {
            continue;
        }
        if m.mode() & 0o002 != 0 {
            out.push(format!("{}: world-writable", p.strip_prefix(base).unwrap_or(&p).display()));
        }
        if m.is_dir() {
            world_writable(base, &p, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_parses_and_has_one_setuid_program() {
        let e = manifest(&root()).unwrap();
        let setuid: Vec<_> = e.iter().filter(|e| e.mode & 0o6000 != 0).collect();
        assert_eq!(setuid.len(), 1);
        assert_eq!(setuid[0].path, "bin/queue-shim");
        assert_eq!(setuid[0].owner, SPOOL_USER);
        assert!(e.iter().any(|e| e.path == "queue" && e.mode == 0o700 && e.owner == SPOOL_USER));
    }

    #[test]
    fn world_writable_and_escaping_entries_are_refused() {
        assert!(parse("d x root root 0777\n").is_err());
        assert!(parse("d ../x root root 0755\n").is_err());
        assert!(parse("f /bin/x root root 0755 x\n").is_err());
        assert!(parse("d x root root 0755\n").is_ok());
    }
}
