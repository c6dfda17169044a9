//! Test relays for queue-send: `tests/relay.py` (aiosmtpd, Debian's
//! python3-aiosmtpd) started on a port, and its log read back.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A port nothing listens on now: the kernel picks it, the probe socket
/// is closed at once.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A peer process, killed when dropped.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("picoq-send-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// tests/relay.py on `port`, logging into `log`, with `rules` (JSON).
pub fn relay(port: u16, log: &Path, rules: &str) -> Peer {
    let rules_path = log.with_extension("rules.json");
    std::fs::write(&rules_path, rules).unwrap();
    let mut child = Command::new("/usr/bin/python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/relay.py"))
        .arg(port.to_string())
        .arg(log)
        .arg(&rules_path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "relay.py did not start");
    Peer(child)
}

/// The messages relay.py logged.
pub fn relayed(log: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| b.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
        .collect()
}

pub fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let s: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for ch in s.chunks(4) {
        let v: Vec<u32> = ch.iter().map(|&c| val(c) as u32).collect();
        let n = v.iter().enumerate().fold(0u32, |a, (i, &x)| a | x << (18 - 6 * i));
        for i in 0..ch.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}
