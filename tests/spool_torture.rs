//! SPEC §6, the commit protocol: "a kill -9 at any instant leaves either no
//! visible entry or a complete one". 240 submissions through the installed
//! qmail-queue -> queue-shim -> queue-spool, each killed (SIGKILL, by root)
//! at a random instant between 0 and 12 ms after it starts, message sizes
//! from 1 byte to 96 KiB. Every submission that exited 0 has exactly one
//! complete entry; a killed one has none or one complete entry; no visible
//! entry is ever truncated.

#[path = "support/spool.rs"]
mod spool;
mod support;

use support::envelope;

/// xorshift64*: reproducible randomness without a crate (the seed is
/// printed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

#[test]
fn kill_9_at_random_instants_never_loses_or_truncates() {
    let i = spool::install();
    let seed = std::env::var("PICOQ_TORTURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("torture seed {seed} (PICOQ_TORTURE_SEED to repeat)");
    let mut rng = Rng(seed);
    let run = format!("torture-{}-{seed}", std::process::id());
    // `cargo xtask torture --kills N` runs more.
    let n_kills: usize = std::env::var("PICOQ_TORTURE_KILLS").ok().and_then(|s| s.parse().ok()).unwrap_or(240);
    let mut exited_ok = Vec::new();
    let mut killed = 0;
    for n in 0..n_kills {
        let tag = format!("{run}-{n:04}-end");
        let size = 1 + (rng.next() % (96 * 1024)) as usize;
        let mut msg = format!("Subject: {tag}\n\n").into_bytes();
        while msg.len() < size {
            msg.extend_from_slice(b"0123456789abcdefghijklmnopqrstuvwxyz\n");
        }
        // The tag also ends the message, so a truncated one can't match.
        msg.extend_from_slice(tag.as_bytes());
        msg.push(b'\n');
        let env = envelope("s@example.org", &[&format!("{tag}@example.net")]);
        let (mut child, threads) = i.spawn_submit(&msg, &env);
        std::thread::sleep(std::time::Duration::from_micros(rng.next() % 12_000));
        let _ = child.kill();
        let status = child.wait().unwrap();
        for t in threads {
            t.join().unwrap();
        }
        if status.code() == Some(0) {
            exited_ok.push((tag.clone(), msg.clone(), env.clone()));
        } else {
            killed += 1;
        }
        let found = i.entries_with(&tag);
        assert!(found.len() <= 1, "{tag}: {} entries", found.len());
        for (path, bytes) in &found {
            let e = spool::parse_entry(bytes).unwrap_or_else(|| panic!("{}: incomplete entry", path.display()));
            assert!(e.message.starts_with(b"Received: (qmail "), "{tag}");
            assert!(e.message.ends_with(&msg), "{tag}: message damaged");
            assert_eq!(e.envelope, env, "{tag}");
        }
        if status.code() == Some(0) {
            assert_eq!(found.len(), 1, "{tag} exited 0 but has no entry");
        }
        // Checked: removed, so that each scan of new/ stays short (the
        // scan reads every entry; thousands of kills made it quadratic).
        for (path, _) in found {
            std::fs::remove_file(path).unwrap();
        }
    }
    eprintln!("{n_kills} submissions: {} exited 0, {killed} killed or failed", exited_ok.len());
    assert!(!exited_ok.is_empty() && killed > 0, "the kills should land both before and after the commit");
    // Clean up this run's entries (and tmp/ leftovers of killed writers,
    // which queue-send would remove after 36 hours).
    // This test binary is alone on the spool: every tmp/ file is ours.
    for (path, _) in i.entries_with(&run) {
        let _ = std::fs::remove_file(path);
    }
    for e in std::fs::read_dir(i.prefix.join("queue/tmp")).unwrap().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
}
