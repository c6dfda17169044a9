//! queue-send's reading of a relay's replies (multi-line `250-` ... `250 `,
//! EHLO keywords noted from the first) from a pipe holding the fuzz input,
//! until the first error. OpenSMTPD's CVE-2020-8794 was an out-of-bounds
//! read in exactly this place. Every reply must have a code from 200 to
//! 599 and a printable text (it goes into logs and bounces).
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::smtpclient::{Extensions, Session};

fuzz_target!(|data: &[u8]| {
    // A pipe holds 64 KiB; the writer must not block.
    let data = &data[..data.len().min(32 * 1024)];
    let (r, w) = picoq_core::rustix::pipe::pipe().unwrap();
    let mut done = 0;
    while done < data.len() {
        done += picoq_core::rustix::io::write(&w, &data[done..]).unwrap();
    }
    drop(w);
    let mut session = Session::new(r, 5);
    let mut ext = Extensions::default();
    let mut first = true;
    while let Ok(reply) = session.read_reply(if first { Some(&mut ext) } else { None }) {
        first = false;
        assert!((200..600).contains(&reply.code), "code {}", reply.code);
        assert!(reply.text.as_slice().iter().all(|&b| (0x20..0x7f).contains(&b)));
    }
});
