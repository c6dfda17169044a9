//! The qmail-queue envelope reader (queue-spool's fd 1, qmqpc's fd 1):
//! every item it returns is within `ADDR_MAX` and NUL-free; it ends on
//! the empty item or an error, never reads past the input.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::envelope::{ADDR_MAX, EnvelopeReader};
use picoq_core::io::STD_BUF;

fuzz_target!(|data: &[u8]| {
    let mut r: EnvelopeReader<&[u8], STD_BUF> = EnvelopeReader::new(data);
    let Ok(sender) = r.sender() else { return };
    assert!(sender.len() <= ADDR_MAX && !sender.contains(&0));
    for _ in 0..data.len() + 1 {
        match r.recipient() {
            Ok(Some(a)) => assert!(a.len() <= ADDR_MAX && !a.contains(&0)),
            Ok(None) | Err(_) => return,
        }
    }
    panic!("more recipients than input bytes");
});
