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

/// The caller's text for a queue program that exited with `code`
/// (for 82 the caller uses the text read from fd 6 instead).
pub fn exit_text(code: i32) -> &'static [u8] {
    match code {
        // 115: an old qmail-queue code for the same failure (qmail.c).
        ADDRESS_TOO_LONG | 115 => b"Denvelope address too long for qq (#5.1.3)",
        PERMANENT_REFUSAL => b"Dmail server permanently rejected message (#5.3.0)",
        12..=40 => b"Dqq permanent problem (#5.3.0)",
        OUT_OF_MEMORY => b"Zqq out of memory (#4.3.0)",
        TIMEOUT => b"Zqq timeout (#4.3.0)",
        WRITE_ERROR => b"Zqq write error or disk full (#4.3.0)",
        READ_ERROR => b"Zqq read error (#4.3.0)",
        CONFIG_ERROR => b"Zqq unable to read configuration (#4.3.0)",
        NETWORK_ERROR => b"Zqq trouble making network connection (#4.3.0)",
        HOME_ERROR => b"Zqq trouble in home directory (#4.3.0)",
        62..=66 => b"Zqq trouble creating files in queue (#4.3.0)",
        TEMPORARY_REFUSAL => b"Zmail server temporarily rejected message (#4.3.0)",
        CONNECT_TIMEOUT => b"Zconnection to mail server timed out (#4.4.1)",
        CONNECT_REFUSED => b"Zconnection to mail server rejected (#4.4.1)",
        COMMUNICATION_FAILED => b"Zcommunication with mail server failed (#4.4.2)",
        INTERNAL_BUG | ENVELOPE_FORMAT => b"Zqq internal bug (#4.3.0)",
        CANNOT_EXEC => b"Zunable to exec qq (#4.3.0)",
        _ => b"Zqq temporary problem (#4.3.0)",
    }
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
