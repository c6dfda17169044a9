//! One SMTP command line: the verb split, qmail's address parser
//! (addrparse), SIZE=, the relay-hack rule, IP literals.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::smtp::{
    ADDR_MAX, IP_TEXT_MAX, ip_literal, ip_text, is_relay_hack, last_at, parse_address, size_param, split_command,
};

fuzz_target!(|data: &[u8]| {
    let (_verb, arg) = split_command(data);
    assert!(arg.len() <= data.len());
    let mut out = [0u8; ADDR_MAX + 1];
    if let Some((len, params)) = parse_address(arg, &mut out) {
        assert!(len <= ADDR_MAX);
        let addr = &out[..len];
        let _ = size_param(params);
        let _ = is_relay_hack(addr);
        if let Some(at) = last_at(addr) {
            assert_eq!(addr[at], b'@');
            if let Some(lit) = ip_literal(&addr[at + 1..]) {
                let mut buf = [0u8; IP_TEXT_MAX];
                let t = ip_text(lit, &mut buf);
                assert!(!t.is_empty());
            }
        }
    }
});
