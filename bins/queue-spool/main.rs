//! queue-spool — the spool writer: takes a message through the qmail-queue
//! interface (message on fd 0, envelope on fd 1) and exits 0 only when one
//! complete, durable entry for it is in `HOME/queue/new/`. Run by
//! queue-shim as the spool user. See queue-spool(8) for the spool format.
//!
//! Flow: open the spool (the compiled-in home only: `$PICOQ_HOME` is not
//! honoured, this program writes as the spool user), decide whose uid
//! goes into the Received line, create `tmp/SECS.PID`, write the Received
//! line and the message, then the validated envelope, commit (fsync, link
//! into `new/`, fsync `new/`), poke queue-send. Reads of fd 0 and fd 1 share
//! one 24-hour deadline (qmail-queue's `alarm(86400)`), polled rather than
//! signalled so that a timeout is exit 52, not a crash.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use picoq_core::control::ControlDir;
use picoq_core::die::Die;
use picoq_core::envelope::{EnvelopeError, EnvelopeReader};
use picoq_core::io::{IoError, Read, STD_BUF};
use picoq_core::num::parse_u64;
use picoq_core::rustix::io::Errno;
use picoq_core::rustix::process::{geteuid, getpid, getuid};
use picoq_core::spool::{DeadlineReader, Draft, FileWriter, Spool, SpoolError, write_received};
use picoq_core::sys::{self, Start, privilege};
use picoq_core::{HOME, qq};

const DIE: Die = Die::new("queue-spool");
/// qmail-queue's `alarm(86400)`: the whole submission within a day.
const DEADLINE: u64 = 86400;
/// Bytes read from fd 0 at a time.
const COPY_BUF: usize = 16 * 1024;
/// The file writer's buffer: the Received line and envelope items.
const WRITE_BUF: usize = 4096;

picoq_core::entry!("queue-spool", run);

fn run(start: Start) -> ! {
    // A file-size limit must give EFBIG (exit 53), never a kill.
    privilege::ignore_sigxfsz();
    sys::block_sigpipe();
    let deadline = sys::unix_time() + DEADLINE;
    let spool = Spool::open(HOME).unwrap_or_else(|e| spool_fatal(b"unable to open the spool", e));
    // Entries must belong to the spool user (queue-send reads them as it):
    // even root running this directly gets no entry.
    if spool.owner().ok() != Some(geteuid().as_raw()) {
        DIE.fatal(qq::HOME_ERROR, &[b"not running as the spool's owner: run me through queue-shim"]);
    }
    let uid = submitter(&start);
    let network = uid == smtpd_uid();

    let secs = sys::unix_time();
    let pid = getpid().as_raw_nonzero().get() as u32;
    let draft = spool.create(secs, pid).unwrap_or_else(|e| spool_fatal(b"unable to create an entry", e));
    let mut out: FileWriter<'_, WRITE_BUF> = FileWriter::new(draft.file());
    write_received(&mut |b: &[u8]| out.put(b), pid, (!network).then_some(uid), secs);

    // The message, to its end.
    let mut input = DeadlineReader { fd: sys::std_fd(0), deadline };
    let mut buf = [0u8; COPY_BUF];
    loop {
        match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.put(&buf[..n]),
            Err(e) => read_fatal(&spool, &draft, b"message", e),
        }
        if let Some(e) = out.error {
            write_fatal(&spool, &draft, e);
        }
    }
    let message_len = out.written;

    // The envelope, validated item by item and stored as it came.
    let mut env: EnvelopeReader<_, STD_BUF> = EnvelopeReader::new(DeadlineReader { fd: sys::std_fd(1), deadline });
    let mut item = env.sender().map(|a| (b'F', a));
    loop {
        match item {
            Ok((kind, addr)) => {
                out.put(&[kind]);
                out.put(addr);
                out.put(&[0]);
            }
            Err(EnvelopeError::Read(e)) => read_fatal(&spool, &draft, b"envelope", e),
            Err(e) => {
                draft.abort(&spool);
                let why: &[u8] = if e == EnvelopeError::AddressTooLong { b"address too long" } else { b"bad envelope" };
                DIE.fatal(e.exit_code(), &[why])
            }
        }
        item = match env.recipient() {
            Ok(Some(a)) => Ok((b'T', a)),
            Ok(None) => break,
            Err(e) => Err(e),
        };
    }
    out.put(&[0]);
    if let Some(e) = out.flush() {
        write_fatal(&spool, &draft, e);
    }

    if let Err(e) = draft.commit(&spool, secs, message_len) {
        spool_fatal(b"unable to commit the entry", e);
    }
    spool.poke();
    sys::exit(qq::OK)
}

/// Whose submission this is, for the Received line: the argument
/// queue-shim passes (the caller's real uid), else our own real uid. Only
/// the spool's owner gets this far (checked above): through the shim, or
/// the spool user itself, who could write any entry anyway.
fn submitter(start: &Start) -> u32 {
    match start.arg(1) {
        None => getuid().as_raw(),
        Some(a) => match parse_u64(a.to_bytes()) {
            Some(u) if u <= u32::MAX as u64 => u as u32,
            _ => DIE.fatal(qq::INTERNAL_BUG, &[b"bad uid argument"]),
        },
    }
}

/// `control/smtpduid`: the SMTP daemon's uid, whose submissions say
/// `invoked from network` (qmail compiles qmaild's uid in). Missing means
/// none; an unreadable control directory is exit 55.
fn smtpd_uid() -> u32 {
    const NONE: u32 = u32::MAX;
    match ControlDir::open(HOME) {
        Ok(Ok(c)) => c.read_u32(c"smtpduid", NONE).unwrap_or_else(|_| config_fatal()),
        Ok(Err(_)) => config_fatal(),
        Err(e) => spool_fatal(b"unable to open the home", SpoolError::Home(e.0)),
    }
}

fn config_fatal() -> ! {
    DIE.fatal(qq::CONFIG_ERROR, &[b"unable to read control/smtpduid"])
}

fn spool_fatal(what: &[u8], e: SpoolError) -> ! {
    let (SpoolError::Home(errno) | SpoolError::Create(errno) | SpoolError::Write(errno)) = e;
    DIE.fatal_io(e.exit_code(), what, b"", IoError::Os(errno))
}

fn read_fatal(spool: &Spool, draft: &Draft, what: &[u8], e: IoError) -> ! {
    draft.abort(spool);
    let code = if e == IoError::Timeout { qq::TIMEOUT } else { qq::READ_ERROR };
    DIE.fatal_io(code, b"unable to read the ", what, e)
}

fn write_fatal(spool: &Spool, draft: &Draft, e: Errno) -> ! {
    draft.abort(spool);
    DIE.fatal_io(qq::WRITE_ERROR, b"unable to write the entry", b"", IoError::Os(e))
}
