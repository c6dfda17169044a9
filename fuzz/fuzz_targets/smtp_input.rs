//! smtpd-front's input side over an in-memory client: command lines
//! (bounded, overlong ones dropped), the verb and address of each, and
//! after a DATA the message transform (CRLF, dot-unstuffing, bare-LF
//! refusal, hop counting) — everything of a session but the replies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::smtp::{ADDR_MAX, DataStats, Input, LINE_MAX, Line, Verb, parse_address, split_command};

/// smtpd-front's input buffer size.
const IN_BUF: usize = 4 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut inp: Input<&[u8], IN_BUF> = Input::new(data);
    let mut line = [0u8; LINE_MAX];
    let mut stored = 0u64;
    for _ in 0..data.len() + 1 {
        let n = match inp.read_line(&mut line) {
            Ok(Line::Ok(n)) => n,
            Ok(Line::TooLong) => continue,
            Err(_) => break,
        };
        assert!(n <= LINE_MAX);
        match split_command(&line[..n]) {
            (Verb::Mail | Verb::Rcpt, arg) => {
                let mut out = [0u8; ADDR_MAX + 1];
                let _ = parse_address(arg, &mut out);
            }
            (Verb::Data, _) => {
                let mut st = DataStats::default();
                let mut sink = |s: &[u8]| stored += s.len() as u64;
                let r = inp.read_data(&mut sink, &mut st);
                assert_eq!(st.bytes, stored);
                assert!(st.bytes <= data.len() as u64);
                if r.is_err() {
                    break;
                }
                stored = 0;
            }
            _ => {}
        }
    }
});
