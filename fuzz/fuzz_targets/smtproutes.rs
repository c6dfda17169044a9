//! queue-send's `control/smtproutes`: each line of the fuzz input through
//! the route parser (bounded domain bytes and lines), then lookups of
//! every line's domain, of subdomains and of an address literal. A line
//! the parser accepted must route its own domain (unless an earlier line
//! for the same domain, which wins, has no relay).
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::routes::{Dest, Routes};

fuzz_target!(|data: &[u8]| {
    let mut routes = Routes::new();
    let mut accepted = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        if routes.push_line(line).is_ok() {
            accepted.push(line);
        }
    }
    for line in &accepted {
        let (domain, relay) = line.split_at(line.iter().position(|&b| b == b':').unwrap());
        let d = routes.lookup(domain);
        let first_for_domain = accepted
            .iter()
            .find(|l| l.split(|&b| b == b':').next().is_some_and(|x| x.eq_ignore_ascii_case(domain)))
            .unwrap();
        if first_for_domain == line && relay.len() > 1 {
            assert!(matches!(d, Dest::Smtp(_)), "{:?} routes nowhere", String::from_utf8_lossy(line));
        }
        let mut sub = b"x.".to_vec();
        sub.extend_from_slice(domain);
        let _ = routes.lookup(&sub);
    }
    let _ = routes.lookup(b"[10.0.0.1]");
    let _ = routes.lookup(b"");
});
