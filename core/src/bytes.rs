//! Searching bytes, eight at a time.
//!
//! The envelope, control files and SMTP data are scanned for one byte (NUL,
//! LF). A plain `iter().position()` costs ~4 instructions per byte at
//! opt-level "z"; looking at a u64 at a time costs about one, in safe code.

const LO: u64 = u64::from_ne_bytes([0x01; 8]);
const HI: u64 = u64::from_ne_bytes([0x80; 8]);

/// The index of the first `byte` in `hay`.
pub fn memchr(byte: u8, hay: &[u8]) -> Option<usize> {
    let pattern = LO * byte as u64;
    let mut at = 0;
    for chunk in hay.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word) ^ pattern;
        // Non-zero exactly when some byte of `x` is zero (the classic
        // "has a zero byte" test): `byte` is in this chunk.
        if x.wrapping_sub(LO) & !x & HI != 0 {
            break;
        }
        at += 8;
    }
    hay[at..].iter().position(|&b| b == byte).map(|i| at + i)
}

/// ASCII case-insensitive equality, byte by byte: the standard
/// library's version is unrolled for speed, several hundred bytes of code
/// for comparisons picoq makes a few times per message.
pub fn eq_ignore_case(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_plain_search() {
        let mut hay = [0u8; 40];
        for (i, b) in hay.iter_mut().enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
        for start in 0..hay.len() {
            for byte in [b'a', b'h', b'n', b'z', 0, 0xff, 0x80] {
                let want = hay[start..].iter().position(|&b| b == byte);
                assert_eq!(memchr(byte, &hay[start..]), want, "start {start} byte {byte}");
            }
        }
        assert_eq!(memchr(0, b""), None);
        assert_eq!(memchr(0, b"ab\0cd\0"), Some(2));
    }

    #[test]
    fn high_bytes_do_not_fool_the_word_test() {
        // 0x80 and 0x81 bytes next to the target must not trigger a false
        // hit in the wrong chunk nor hide the real one.
        let hay = [0x81u8, 0x80, 0x81, 0x80, 0x81, 0x80, 0x81, 0x80, 0x01, 0x00];
        assert_eq!(memchr(0x00, &hay), Some(9));
        assert_eq!(memchr(0x01, &hay), Some(8));
        assert_eq!(memchr(0x80, &hay), Some(1));
    }
}
