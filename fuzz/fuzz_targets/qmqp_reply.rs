//! qmqpc's reading of a QMQP server's reply (a netstring starting with
//! K, Z or D), from a pipe holding the fuzz input; then the text
//! sanitiser that keeps a server from injecting line breaks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::qmqp::{REPLY_MAX, REPLY_TEXT_MAX, Reply, read_reply, sanitize_text};
use picoq_core::rustix::fd::AsFd;

fuzz_target!(|data: &[u8]| {
    // A pipe holds 64 KiB; more than REPLY_MAX is never read anyway.
    let data = &data[..data.len().min(16 * 1024)];
    let (r, w) = picoq_core::rustix::pipe::pipe().unwrap();
    let mut done = 0;
    while done < data.len() {
        done += picoq_core::rustix::io::write(&w, &data[done..]).unwrap();
    }
    drop(w);
    let mut buf = [0u8; REPLY_MAX];
    if let Ok(Reply::Accepted(t) | Reply::Temporary(t) | Reply::Permanent(t)) = read_reply(r.as_fd(), 5, &mut buf) {
        let mut out = [0u8; REPLY_TEXT_MAX];
        let s = sanitize_text(t, &mut out);
        assert!(s.iter().all(|&b| (0x20..0x7f).contains(&b)));
    }
});
