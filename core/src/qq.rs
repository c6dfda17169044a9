//! The qmail-queue exit codes and the texts callers report for them
//! (SPEC §3; qmail-smtpd's `qmail_close` texts). One table, used by every
//! program that runs or is a qmail-queue.
//!
//! 11–40 are permanent, everything else non-zero is temporary. A text starts
//! with `D` (permanent) or `Z` (temporary), as qmail's `qmail_close` returns.

pub const OK: i32 = 0;
pub const ADDRESS_TOO_LONG: i32 = 11;
pub const PERMANENT_REFUSAL: i32 = 31;
pub const OUT_OF_MEMORY: i32 = 51;
pub const TIMEOUT: i32 = 52;
pub const WRITE_ERROR: i32 = 53;
pub const READ_ERROR: i32 = 54;
pub const CONFIG_ERROR: i32 = 55;
pub const NETWORK_ERROR: i32 = 56;
pub const HOME_ERROR: i32 = 61;
pub const QUEUE_CREATE_ERROR: i32 = 62;
pub const TEMPORARY_REFUSAL: i32 = 71;
pub const CONNECT_TIMEOUT: i32 = 72;
pub const CONNECT_REFUSED: i32 = 73;
pub const COMMUNICATION_FAILED: i32 = 74;
pub const INTERNAL_BUG: i32 = 81;
pub const CUSTOM_ERROR: i32 = 82;
pub const ENVELOPE_FORMAT: i32 = 91;
pub const CANNOT_EXEC: i32 = 120;

/// Whether exit code `code` is a permanent failure.
pub const fn is_permanent(code: i32) -> bool {
    (code >= 11 && code <= 40) || code == 115
}

/// The callers' texts, NUL-separated (see `errtext::nth_text`); the last
/// one is for any code `CODES` does not name.
const TEXTS: &[u8] = b"Denvelope address too long for qq (#5.1.3)\0\
Dmail server permanently rejected message (#5.3.0)\0\
Dqq permanent problem (#5.3.0)\0\
Zqq out of memory (#4.3.0)\0\
Zqq timeout (#4.3.0)\0\
Zqq write error or disk full (#4.3.0)\0\
Zqq read error (#4.3.0)\0\
Zqq unable to read configuration (#4.3.0)\0\
Zqq trouble making network connection (#4.3.0)\0\
Zqq trouble in home directory (#4.3.0)\0\
Zqq trouble creating files in queue (#4.3.0)\0\
Zmail server temporarily rejected message (#4.3.0)\0\
Zconnection to mail server timed out (#4.4.1)\0\
Zconnection to mail server rejected (#4.4.1)\0\
Zcommunication with mail server failed (#4.4.2)\0\
Zqq internal bug (#4.3.0)\0\
Zunable to exec qq (#4.3.0)\0\
Zqq temporary problem (#4.3.0)";
const STARTS: [u16; 19] = crate::errtext::text_starts(TEXTS);

/// (lowest code, highest code, text number in `TEXTS`); the first range
/// that holds a code gives its text.
const CODES: [(u8, u8, u8); 19] = [
    // 115: an old qmail-queue code for the same failure (qmail.c).
    (ADDRESS_TOO_LONG as u8, ADDRESS_TOO_LONG as u8, 0),
    (115, 115, 0),
    (PERMANENT_REFUSAL as u8, PERMANENT_REFUSAL as u8, 1),
    (12, 40, 2),
    (OUT_OF_MEMORY as u8, OUT_OF_MEMORY as u8, 3),
    (TIMEOUT as u8, TIMEOUT as u8, 4),
    (WRITE_ERROR as u8, WRITE_ERROR as u8, 5),
    (READ_ERROR as u8, READ_ERROR as u8, 6),
    (CONFIG_ERROR as u8, CONFIG_ERROR as u8, 7),
    (NETWORK_ERROR as u8, NETWORK_ERROR as u8, 8),
    (HOME_ERROR as u8, HOME_ERROR as u8, 9),
    (62, 66, 10),
    (TEMPORARY_REFUSAL as u8, TEMPORARY_REFUSAL as u8, 11),
    (CONNECT_TIMEOUT as u8, CONNECT_TIMEOUT as u8, 12),
    (CONNECT_REFUSED as u8, CONNECT_REFUSED as u8, 13),
    (COMMUNICATION_FAILED as u8, COMMUNICATION_FAILED as u8, 14),
    (INTERNAL_BUG as u8, INTERNAL_BUG as u8, 15),
    (ENVELOPE_FORMAT as u8, ENVELOPE_FORMAT as u8, 15),
    (CANNOT_EXEC as u8, CANNOT_EXEC as u8, 16),
];

/// The caller's text for a queue program that exited with `code`
/// (for 82 the caller uses the text read from fd 6 instead).
pub fn exit_text(code: i32) -> &'static [u8] {
    let mut text = STARTS.len() - 2;
    for &(lo, hi, t) in &CODES {
        if lo as i32 <= code && code <= hi as i32 {
            text = t as usize;
            break;
        }
    }
    crate::errtext::nth_text(TEXTS, &STARTS, text)
}

/// The caller's text when the queue program was killed by a signal.
pub const CRASHED_TEXT: &[u8] = b"Zqq crashed (#4.3.0)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanence_follows_the_first_letter() {
        for code in 1..=255 {
            let t = exit_text(code);
            assert_eq!(is_permanent(code), t[0] == b'D', "code {code}");
            assert!(t[0] == b'D' || t[0] == b'Z');
        }
    }

    #[test]
    fn texts_match_spec_section_3() {
        assert_eq!(exit_text(11), b"Denvelope address too long for qq (#5.1.3)");
        assert_eq!(exit_text(31), b"Dmail server permanently rejected message (#5.3.0)");
        assert_eq!(exit_text(25), b"Dqq permanent problem (#5.3.0)");
        assert_eq!(exit_text(64), b"Zqq trouble creating files in queue (#4.3.0)");
        assert_eq!(exit_text(71), b"Zmail server temporarily rejected message (#4.3.0)");
        assert_eq!(exit_text(91), b"Zqq internal bug (#4.3.0)");
        assert_eq!(exit_text(120), b"Zunable to exec qq (#4.3.0)");
        assert_eq!(exit_text(99), b"Zqq temporary problem (#4.3.0)");
    }
}
