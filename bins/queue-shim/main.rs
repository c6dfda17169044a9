//! queue-shim — the one privileged program: installed setuid to the spool
//! user (mode 4711, never root), it turns "the caller asked" into "the
//! spool user does it" and nothing more. See queue-shim(8).
//!
//! SPEC §6, in this order and nothing else:
//! 1. fds 0–2 open: done by `entry!` (`Start` puts /dev/null on closed
//!    ones, or exits 81) before any of this runs;
//! 2. argv and the environment are never read; queue-spool gets a
//!    constant environment (`PATH=/usr/bin:/bin`);
//! 3. umask 077, every signal default (SIGPIPE and SIGXFSZ ignored),
//!    RLIMIT_CORE 0, every fd ≥ 3 closed except fd 6 when it is open;
//! 4. real, effective and saved gid and uid set to the effective ones,
//!    checked with getresgid/getresuid, and becoming the caller again must
//!    fail; any surprise is exit 81;
//! 5. exec the compiled-in `HOME/bin/queue-spool` with the caller's real
//!    uid as its one argument (for the Received line).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use picoq_core::die::Die;
use picoq_core::num::put_dec;
use picoq_core::qq;
use picoq_core::sys::Start;
use picoq_core::sys::privilege::{self, ResIds};

const DIE: Die = Die::new("queue-shim");

picoq_core::entry!("queue-shim", run);

fn run(start: Start) -> ! {
    // 3. A clean process: nothing inherited decides what happens next.
    if !privilege::restrict_files() {
        surprise(b"unable to set RLIMIT_CORE to 0");
    }
    privilege::reset_signals();
    privilege::close_from_3(start.fd6_open);

    // 4. Become the effective user for good, and prove it.
    let (Some(uid), Some(gid)) = (privilege::res_uid(), privilege::res_gid()) else {
        surprise(b"unable to read the process ids")
    };
    if uid.effective == 0 {
        surprise(b"refusing to run as root: install me setuid to the spool user");
    }
    if !privilege::set_all_gids(gid.effective) || !privilege::set_all_uids(uid.effective) {
        surprise(b"unable to set the process ids");
    }
    let all = |id| Some(ResIds { real: id, effective: id, saved: id });
    if privilege::res_uid() != all(uid.effective) || privilege::res_gid() != all(gid.effective) {
        surprise(b"process ids not as set");
    }
    if uid.real != uid.effective && !privilege::cannot_become(uid.real) {
        surprise(b"the caller's uid is still reachable");
    }

    // 5. The caller's uid, in decimal, is queue-spool's only argument.
    let mut arg = [0u8; 11];
    let at = put_dec(uid.real as u64, &mut arg[..10]);
    let Some(arg) = picoq_core::sys::c_str(&arg[at..]) else { surprise(b"uid text") };
    let program = picoq_core::spool::program_path();
    privilege::exec_clean(program, &[c"queue-spool", arg]);
    DIE.fatal(qq::CANNOT_EXEC, &[b"unable to run ", program.to_bytes()])
}

/// Anything unexpected about the process: stop (qmail-queue's 81).
fn surprise(what: &[u8]) -> ! {
    DIE.fatal(qq::INTERNAL_BUG, &[what])
}
