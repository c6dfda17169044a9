//! SPEC §3/§6: a full disk is exit 53 ("qq write error or disk full") and
//! never leaves a visible partial entry — nor a leftover in tmp/. The
//! spool is put on a small tmpfs mounted over the installed `queue/`
//! (root only; unmounted however the test ends).

#[path = "support/spool.rs"]
mod spool;
mod support;

use std::process::Command;
use support::envelope;

/// Unmounts the tmpfs when dropped, even after a failed assertion.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_spool_is_exit_53_with_no_partial_entry() {
    let i = spool::install();
    let queue = i.prefix.join("queue");
    let (uid, gid) = spool::ids(spool::SPOOL_USER).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o"])
        .arg(format!("size=256k,mode=0700,uid={uid},gid={gid}"))
        .arg("picoq-test")
        .arg(&queue)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    let _guard = Mounted(queue.clone());
    for d in ["tmp", "new", "failed"] {
        let p = queue.join(d);
        std::fs::create_dir(&p).unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    }
    let env = envelope("s@example.org", &["r@example.net"]);

    // Fits: accepted.
    let small = b"Subject: small-diskfull\n\nsmall\n".to_vec();
    let r = i.submit(&small, &env);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(i.entries_with("small-diskfull").len(), 1);

    // Does not fit (1 MiB into 256 KiB): 53, nothing visible, nothing left.
    let mut big = b"Subject: big-diskfull\n\n".to_vec();
    big.resize(1 << 20, b'x');
    big.push(b'\n');
    let r = i.submit(&big, &env);
    assert_eq!(r.code, Some(53), "{}", r.stderr);
    assert!(r.stderr.contains("queue-spool: fatal: unable to write"), "{}", r.stderr);
    assert!(i.entries_with("big-diskfull").is_empty());
    assert_eq!(std::fs::read_dir(queue.join("tmp")).unwrap().count(), 0, "tmp/ is empty again");
    assert_eq!(std::fs::read_dir(queue.join("new")).unwrap().count(), 1, "only the small entry");

    // And the space is back: the next small message is accepted.
    let r = i.submit(b"Subject: again-diskfull\n\nx\n", &env);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}
