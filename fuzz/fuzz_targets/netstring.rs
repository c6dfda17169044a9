//! The bounded netstring decoder (qmqpd's packet, qmqpc's reply framing):
//! whatever `decode` accepts is a well-formed netstring of at most `max`
//! bytes that re-encodes to exactly what it consumed, and the streaming
//! length parser agrees with it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::netstring::{LenParser, decode, encode, encoded_len};

fuzz_target!(|data: &[u8]| {
    let max = data.first().map_or(0, |&b| b as u64 * 7);
    let input = data.get(1..).unwrap_or(&[]);
    if let Ok((body, rest)) = decode(input, max) {
        assert!(body.len() as u64 <= max);
        let used = input.len() - rest.len();
        assert_eq!(encoded_len(body.len() as u64), used as u64);
        let mut out = vec![0u8; used];
        assert_eq!(encode(body, &mut out), Some(&input[..used]));
    }
    let mut p = LenParser::new(max);
    for &b in input {
        match p.push(b) {
            Ok(Some(len)) => {
                assert!(len <= max);
                break;
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
});
