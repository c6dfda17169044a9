//! control/qmqpservers lines (and smtproutes-style relay addresses):
//! `IPv4[:port]`, `[IPv6][:port]`; the IP parsers on their own.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::addr::{parse_ipv4, parse_ipv6, parse_ipv6_octets, parse_server, server_text};

fuzz_target!(|data: &[u8]| {
    let text = server_text(data);
    assert!(text.len() <= data.len());
    let _ = parse_server(data, 628);
    if let Some(o) = parse_ipv4(data) {
        // Round trip through the dotted quad.
        let s = format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3]);
        assert_eq!(parse_ipv4(s.as_bytes()), Some(o));
    }
    let a = parse_ipv6(data);
    let b = parse_ipv6_octets(data);
    assert_eq!(a.is_some(), b.is_some());
});
