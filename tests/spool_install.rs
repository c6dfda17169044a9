//! The spool path as installed: `make install` (xtask install) into a
//! private prefix, then submissions as an unprivileged user through
//! `qmail-queue -> queue-shim -> queue-spool` (SPEC §6). Checks what a
//! security reviewer asks first: who owns the entry, who can read it, what
//! the Received line claims, that argv and the environment change nothing,
//! the qmail-queue exit codes, and that check-install notices a changed mode.
//! Needs root (see support/spool.rs).

#[path = "support/spool.rs"]
mod spool;
mod support;

use spool::{Install, parse_entry};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};
use support::envelope;

fn marker(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    )
}

fn message(marker: &str) -> Vec<u8> {
    format!("Subject: {marker}\nFrom: sub@example.org\n\nhello from {marker}\n").into_bytes()
}

fn one_entry(i: &Install, marker: &str) -> (std::path::PathBuf, Vec<u8>) {
    let mut e = i.entries_with(marker);
    assert_eq!(e.len(), 1, "exactly one entry with {marker}");
    e.pop().unwrap()
}

/// qmail-queue(8): "qmail-queue reads a mail message from descriptor 0. It
/// then reads envelope information from descriptor 1" — here through the
/// shim, as an ordinary user; the entry is the spool user's, mode 0600, and
/// the submitter cannot read it back.
#[test]
fn a_user_submits_through_the_shim_and_cannot_read_the_entry() {
    let i = spool::install();
    let m = marker("owner");
    let msg = message(&m);
    let env = envelope("sub@example.org", &["a@example.net", "b@example.net"]);
    let r = i.submit(&msg, &env);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (path, bytes) = one_entry(i, &m);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.uid(), i.spool_uid, "entry owned by the spool user");
    assert_eq!(meta.mode() & 0o7777, 0o600);
    // The name is time and inode, nothing from the envelope.
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(name, format!("{}.{}", name.split('.').next().unwrap(), meta.ino()));
    let entry = parse_entry(&bytes).expect("complete entry");
    assert!(entry.message.ends_with(&msg));
    assert_eq!(entry.envelope, env);
    let st = i
        .as_submitter(std::path::Path::new("/bin/cat"))
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success(), "the submitter must not read the spool");
    // Nor list it.
    let st = i
        .as_submitter(std::path::Path::new("/bin/ls"))
        .arg(i.new_dir())
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success());
    std::fs::remove_file(path).unwrap();
}

/// qmail-queue prepends `Received: (qmail PID invoked by uid UID); DATE`
/// with the caller's real uid; the shim hands it over.
#[test]
fn the_received_line_names_the_submitters_uid() {
    let i = spool::install();
    let m = marker("received");
    let r = i.submit(&message(&m), &envelope("sub@example.org", &["a@example.net"]));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (path, bytes) = one_entry(i, &m);
    let e = parse_entry(&bytes).unwrap();
    let text = String::from_utf8_lossy(&e.message).into_owned();
    let first = text.lines().next().unwrap();
    assert!(first.starts_with("Received: (qmail "), "{first}");
    assert!(first.contains(&format!(" invoked by uid {}); ", i.sub_uid)), "{first}");
    assert!(first.ends_with(" -0000"), "{first}");
    std::fs::remove_file(path).unwrap();
}

/// SPEC §6: no path, user or option comes from the environment or argv.
#[test]
fn arguments_and_environment_change_nothing() {
    let i = spool::install();
    let m = marker("env");
    let mut cmd = i.as_submitter(&i.prefix.join("bin/qmail-queue"));
    cmd.args(["-x", "/tmp/evil", "0"])
        .env("PICOQ_HOME", "/nonexistent")
        .env("PATH", "/nonexistent")
        .env("QMAILQUEUE", "/bin/false")
        .env("LD_PRELOAD", "/nonexistent.so")
        .env("TMPDIR", "/nonexistent");
    let (env_r, mut env_w) = std::io::pipe().unwrap();
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::from(env_r)).stderr(Stdio::piped()).spawn().unwrap();
    drop(cmd);
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&message(&m)).unwrap();
    env_w.write_all(&envelope("s@x", &["r@y"])).unwrap();
    drop(env_w);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (path, bytes) = one_entry(i, &m);
    // The uid is still the real one, not the "0" in argv.
    assert!(String::from_utf8_lossy(&bytes).contains(&format!("invoked by uid {})", i.sub_uid)));
    std::fs::remove_file(path).unwrap();
}

/// qmail-queue's exit codes (SPEC §3): 91 for a malformed envelope, 11 for
/// an address longer than 1003 bytes with its NUL, 54 is not reachable
/// through pipes; nothing visible is left behind by a refusal.
#[test]
fn envelope_errors_exit_like_qmail_queue_and_leave_nothing() {
    let i = spool::install();
    let long = "a".repeat(1003);
    let cases: [(&str, Vec<u8>, i32); 4] = [
        ("noF", b"Ta@b\0\0".to_vec(), 91),
        ("badT", b"Fa@b\0Xc@d\0\0".to_vec(), 91),
        ("truncated", b"Fa@b\0Tc@d\0".to_vec(), 91),
        ("long", envelope("s@x", &[&long]), 11),
    ];
    for (tag, env, code) in cases {
        let m = marker(tag);
        let r = i.submit(&message(&m), &env);
        assert_eq!(r.code, Some(code), "{tag}: {}", r.stderr);
        assert!(i.entries_with(&m).is_empty(), "{tag}: no entry");
        assert!(i.leftovers_with(&m).is_empty(), "{tag}: nothing left in tmp/");
    }
}

/// queue-spool run directly by someone other than the spool user (even
/// root) writes nothing: exit 61.
#[test]
fn queue_spool_refuses_to_run_as_anyone_but_the_spool_user() {
    let i = spool::install();
    for as_sub in [true, false] {
        let m = marker("direct");
        let prog = i.prefix.join("bin/queue-spool");
        let mut cmd = if as_sub { i.as_submitter(&prog) } else { Command::new(&prog) };
        let (env_r, mut env_w) = std::io::pipe().unwrap();
        let mut child =
            cmd.arg("0").stdin(Stdio::piped()).stdout(Stdio::from(env_r)).stderr(Stdio::piped()).spawn().unwrap();
        drop(cmd);
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(&message(&m));
        let _ = env_w.write_all(&envelope("s@x", &["r@y"]));
        drop(env_w);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(61), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(i.entries_with(&m).is_empty());
    }
}

/// qmail's instcheck: the fresh tree matches the manifest; a changed mode
/// does not.
#[test]
fn check_install_passes_then_catches_a_changed_mode() {
    let i = spool::install();
    let check = || {
        Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["run", "--quiet", "--locked", "-p", "xtask", "--target-dir"])
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/spooltest-xtask"))
            .args(["--", "check-install"])
            .arg(&i.prefix)
            .output()
            .unwrap()
    };
    let ok = check();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    let man = i.prefix.join("man/man8/qmqpc.8");
    std::fs::set_permissions(&man, std::fs::Permissions::from_mode(0o664)).unwrap();
    let bad = check();
    std::fs::set_permissions(&man, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stdout).contains("man/man8/qmqpc.8: mode 0664, want 0644"));
    let shim = i.prefix.join("bin/queue-shim");
    let meta = std::fs::metadata(&shim).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o4711);
    assert_eq!(meta.uid(), i.spool_uid);
}
