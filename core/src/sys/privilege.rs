//! What queue-shim, the one setuid program, needs and nothing else uses:
//! resetting the inherited process state (signals, umask, core dumps,
//! descriptors), dropping to the effective ids for good and proving it,
//! and exec with a constant environment.
//!
//! Each call is the plain system call (rustix's per-thread set*id: picoq is
//! single-threaded, SPEC §8) so that a reviewer reads exactly what runs.

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
)))]
use super::{SigSet, set_signal};
use core::ffi::{CStr, c_char, c_int};
use rustix::process::Resource;
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
use rustix::process::Rlimit;
#[cfg(any(target_os = "linux", target_os = "android"))]
use rustix::process::{Gid, Uid};

#[link(name = "c")]
unsafe extern "C" {
    fn getresuid(r: *mut u32, e: *mut u32, s: *mut u32) -> c_int;
    fn getresgid(r: *mut u32, e: *mut u32, s: *mut u32) -> c_int;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn setresuid(r: u32, e: u32, s: u32) -> c_int;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn setresgid(r: u32, e: u32, s: u32) -> c_int;
}

/// Highest signal number to reset: Linux has 64 signals (MIPS 128); the
/// BSDs and illumos fewer. Invalid numbers, SIGKILL and SIGSTOP answer
/// EINVAL, which is ignored.
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const SIGNAL_MAX: i32 = 127;
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
const SIGNAL_MAX: i32 = 64;

/// SIGXFSZ's number: 25 on Linux except MIPS (31), and on the BSDs and
/// illumos.
#[cfg(all(any(target_os = "linux", target_os = "android"), any(target_arch = "mips", target_arch = "mips64")))]
const SIGXFSZ: i32 = 31;
#[cfg(not(all(any(target_os = "linux", target_os = "android"), any(target_arch = "mips", target_arch = "mips64"))))]
const SIGXFSZ: i32 = 25;

/// Every signal back to its default action and unblocked, then SIGPIPE
/// and SIGXFSZ ignored (a write past RLIMIT_FSIZE then fails with EFBIG
/// instead of killing a half-written spool file). Ignored signals and the
/// mask survive exec; handlers do not exist in picoq.
pub fn reset_signals() {
    for sig in 1..=SIGNAL_MAX {
        set_action(sig, super::SIG_DFL);
    }
    unblock_all();
    set_action(rustix::process::Signal::PIPE.as_raw(), super::SIG_IGN);
    set_action(SIGXFSZ, super::SIG_IGN);
}

/// The kernel's `rt_sigaction` and `rt_sigprocmask` on the Linux targets
/// picoq builds for: musl's `signal` and `sigprocmask` wrap them in locks
/// and bookkeeping for multi-threaded programs and handlers, ~1 KB of the
/// shim's 12 KiB. Only SIG_DFL and SIG_IGN are ever set, so no restorer
/// and no flags are needed.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
))]
pub(super) mod raw {
    use core::ffi::c_long;
    #[cfg(target_arch = "x86_64")]
    pub const SYS: (c_long, c_long) = (13, 14);
    #[cfg(target_arch = "aarch64")]
    pub const SYS: (c_long, c_long) = (134, 135);
    #[cfg(target_arch = "arm")]
    pub const SYS: (c_long, c_long) = (174, 175);
    #[cfg(target_arch = "mips")]
    pub const SYS: (c_long, c_long) = (4194, 4195);
    /// The kernel's sigset_t: 64 signals, 128 on MIPS.
    #[cfg(not(target_arch = "mips"))]
    pub const MASK_BYTES: usize = 8;
    #[cfg(target_arch = "mips")]
    pub const MASK_BYTES: usize = 16;
    /// The kernel's `struct sigaction` as words: handler, flags, restorer,
    /// mask (MIPS: flags, handler, mask); all zero but the handler.
    pub const WORDS: usize = 3 + MASK_BYTES / core::mem::size_of::<usize>();
    #[cfg(not(target_arch = "mips"))]
    pub const HANDLER_WORD: usize = 0;
    #[cfg(target_arch = "mips")]
    pub const HANDLER_WORD: usize = 1;
    #[cfg(not(target_arch = "mips"))]
    pub const SIG_SETMASK: c_long = 2;
    #[cfg(target_arch = "mips")]
    pub const SIG_SETMASK: c_long = 3;
    #[cfg(not(target_arch = "mips"))]
    pub const SIG_BLOCK: c_long = 0;
    #[cfg(target_arch = "mips")]
    pub const SIG_BLOCK: c_long = 1;
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
))]
fn set_action(sig: i32, handler: usize) {
    let mut act = [0usize; raw::WORDS];
    act[raw::HANDLER_WORD] = handler;
    // SAFETY: `act` is a readable kernel struct sigaction (zero flags,
    // mask and restorer; the handler SIG_DFL or SIG_IGN, which run no code
    // of ours); a null old-action pointer is allowed. An invalid signal
    // number gives EINVAL, ignored.
    unsafe {
        super::syscall(raw::SYS.0, sig as core::ffi::c_long, act.as_ptr(), 0usize, raw::MASK_BYTES);
    }
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
))]
fn unblock_all() {
    let empty = [0u8; raw::MASK_BYTES];
    // SAFETY: `empty` is a readable kernel sigset_t of MASK_BYTES bytes;
    // a null old-mask pointer is allowed.
    unsafe {
        super::syscall(raw::SYS.1, raw::SIG_SETMASK, empty.as_ptr(), 0usize, raw::MASK_BYTES);
    }
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
)))]
fn set_action(sig: i32, handler: usize) {
    set_signal(sig, handler);
}

#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
)))]
fn unblock_all() {
    /// `SIG_SETMASK` on the BSDs and illumos.
    const SIG_SETMASK: c_int = 3;
    let mut set = SigSet([0; 128]);
    // SAFETY: `set` is a writable, aligned buffer at least as large as
    // sigset_t, initialised by sigemptyset before sigprocmask reads it; a
    // null `old` is allowed.
    unsafe {
        super::sigemptyset(&mut set);
        super::sigprocmask(SIG_SETMASK, &set, core::ptr::null_mut());
    }
}

/// Ignore SIGXFSZ (queue-spool run directly: a file-size limit gives
/// EFBIG, exit 53, never a kill in the middle of a write).
pub fn ignore_sigxfsz() {
    set_action(SIGXFSZ, super::SIG_IGN);
}

/// `umask(077)` and `setrlimit(RLIMIT_CORE, 0)`: nothing the spool user
/// writes is readable by others, and no core dump leaves a message lying
/// around. False when the limit can't be set.
pub fn restrict_files() -> bool {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    #[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
    {
        let zero = Rlimit { current: Some(0), maximum: Some(0) };
        rustix::process::setrlimit(Resource::Core, zero).is_ok()
    }
    // MIPS: the kernel's prlimit64, not musl's setrlimit (see `prlimit`).
    #[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
    super::prlimit(Resource::Core as i32, Some(&[0, 0]), None)
}

/// RLIMIT_NOFILE's soft and hard values; `None` when unlimited or unknown.
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
fn nofile_limits() -> (Option<u64>, Option<u64>) {
    let l = rustix::process::getrlimit(Resource::Nofile);
    (l.current, l.maximum)
}

#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
fn nofile_limits() -> (Option<u64>, Option<u64>) {
    let mut old = [u64::MAX; 2];
    // RLIM_INFINITY is all ones in the kernel's rlimit64.
    let _ = super::prlimit(Resource::Nofile as i32, None, Some(&mut old));
    let known = |v: u64| (v != u64::MAX).then_some(v);
    (known(old[0]), known(old[1]))
}

/// Closes every descriptor from 3 up, except 6 when `keep6` (the
/// custom-error channel). `close_range` (Linux 5.9) when the kernel has
/// it. Otherwise one `close` per number below the soft RLIMIT_NOFILE,
/// which also frees a slot for what follows even when the caller filled
/// the table; then every number listed in `/proc/self/fd`, because a limit
/// can't bound the scan: the caller may open fd 900 and then lower
/// RLIMIT_NOFILE (soft and hard) to 64 — the descriptor outlives the lower
/// limit. Without /proc, one `close` per number below the larger of the
/// two limits (at most `FD_SCAN_MAX`), which is all a portable program can
/// know.
pub fn close_from_3(keep6: bool) {
    let (a, b) = if keep6 { ((3, 5), (7, u32::MAX)) } else { ((3, u32::MAX), (1, 0)) };
    if close_range(a.0, a.1) && (b.0 > b.1 || close_range(b.0, b.1)) {
        return;
    }
    let (soft, hard) = nofile_limits();
    let cap = |n: Option<u64>| n.unwrap_or(FD_SCAN_MAX).min(FD_SCAN_MAX) as i32;
    close_below(cap(soft), keep6);
    if !close_listed(keep6) {
        close_below(cap(soft).max(cap(hard)), keep6);
    }
}

fn close_below(high: i32, keep6: bool) {
    for fd in 3..high {
        close_fd(fd, keep6);
    }
}

/// The most descriptor numbers the no-/proc fallback closes: Linux's
/// default `fs.nr_open` (no process can have a higher one unless root
/// raised that sysctl).
const FD_SCAN_MAX: u64 = 1 << 20;

fn close_fd(fd: i32, keep6: bool) {
    if fd >= 3 && (fd != 6 || !keep6) {
        // SAFETY: closing a number this process may or may not have
        // open; nothing in the program holds a descriptor ≥ 3 at this
        // point (the shim opened nothing), so no owner is left dangling.
        // EBADF for a closed number is ignored by rustix's close.
        unsafe { rustix::io::close(fd) };
    }
}

/// Closes every descriptor `/proc/self/fd` lists (but the listing's own,
/// close-on-exec, closed at the end); false when /proc can't be read.
/// One pass is enough: Linux lists that directory by descriptor number
/// from the read position, so closing an entry never hides a later one.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn close_listed(keep6: bool) -> bool {
    use rustix::fs::{Mode, OFlags};
    #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
    const SYS_GETDENTS64: core::ffi::c_long = 4219;
    #[cfg(target_arch = "aarch64")]
    const SYS_GETDENTS64: core::ffi::c_long = 61;
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64", target_arch = "aarch64")))]
    const SYS_GETDENTS64: core::ffi::c_long = 217;
    /// linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), name.
    const NAME_AT: usize = 19;
    let Ok(dir) =
        rustix::fs::open(c"/proc/self/fd", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
    else {
        return false;
    };
    let own = rustix::fd::AsRawFd::as_raw_fd(&dir);
    /// Room for the records of one getdents64 call, 8-aligned as they are.
    #[repr(align(8))]
    struct Records([u8; 512]);
    let mut buf = Records([0; 512]);
    loop {
        // SAFETY: getdents64 writes at most `buf.0.len()` bytes of records
        // into `buf`, which is writable and 8-aligned as the records need;
        // `own` is the open directory above.
        let n = unsafe { super::syscall(SYS_GETDENTS64, own, buf.0.as_mut_ptr(), buf.0.len()) };
        let Some(bytes) = buf.0.get(..n as usize) else { return false };
        if bytes.is_empty() {
            return true;
        }
        let mut at = 0;
        while let Some(rec) = bytes.get(at..at + NAME_AT) {
            let len = u16::from_ne_bytes([rec[16], rec[17]]) as usize;
            // A name of digits up to its NUL ("." and ".." give none).
            let mut fd: u32 = 0;
            let mut digits = 0;
            for &c in bytes.iter().skip(at + NAME_AT).take_while(|&&c| c.is_ascii_digit()) {
                fd = fd.saturating_mul(10).saturating_add((c - b'0') as u32);
                digits += 1;
            }
            if digits > 0 && fd < i32::MAX as u32 && fd as i32 != own {
                close_fd(fd as i32, keep6);
            }
            if len < NAME_AT {
                return false;
            }
            at += len;
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn close_listed(_keep6: bool) -> bool {
    false
}

/// `close_range(first, last, 0)`; false when the kernel lacks it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn close_range(first: u32, last: u32) -> bool {
    #[cfg(any(target_arch = "mips", target_arch = "mips64"))]
    const SYS_CLOSE_RANGE: core::ffi::c_long = 4436;
    #[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
    const SYS_CLOSE_RANGE: core::ffi::c_long = 436;
    // SAFETY: close_range takes three integers and closes descriptors of
    // this process; nothing in the shim owns a descriptor ≥ 3.
    unsafe { super::syscall(SYS_CLOSE_RANGE, first, last, 0u32) == 0 }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn close_range(_first: u32, _last: u32) -> bool {
    false
}

/// Real, effective and saved ids of this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResIds {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
}

/// `getresuid`, or `None` when it fails.
pub fn res_uid() -> Option<ResIds> {
    let mut ids = ResIds { real: u32::MAX, effective: u32::MAX, saved: u32::MAX };
    // SAFETY: three valid, writable u32s (uid_t is 32 bits on every
    // platform picoq builds for).
    let r = unsafe { getresuid(&mut ids.real, &mut ids.effective, &mut ids.saved) };
    (r == 0).then_some(ids)
}

/// `getresgid`, or `None` when it fails.
pub fn res_gid() -> Option<ResIds> {
    let mut ids = ResIds { real: u32::MAX, effective: u32::MAX, saved: u32::MAX };
    // SAFETY: as in `res_uid`, for gid_t.
    let r = unsafe { getresgid(&mut ids.real, &mut ids.effective, &mut ids.saved) };
    (r == 0).then_some(ids)
}

/// `setresgid(g, g, g)`.
pub fn set_all_gids(g: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let g = Gid::from_raw(g);
        rustix::thread::set_thread_res_gid(g, g, g).is_ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: three integers; changes only this process's credentials.
    unsafe {
        setresgid(g, g, g) == 0
    }
}

/// `setresuid(u, u, u)`.
pub fn set_all_uids(u: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let u = Uid::from_raw(u);
        rustix::thread::set_thread_res_uid(u, u, u).is_ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: three integers; changes only this process's credentials.
    unsafe {
        setresuid(u, u, u) == 0
    }
}

/// Whether `setresuid(-1, uid, -1)` (becoming `uid` again) is refused.
/// Used after a drop: if it succeeds the drop was not real.
pub fn cannot_become(uid: u32) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        rustix::thread::set_thread_res_uid(None, Uid::from_raw(uid), None).is_err()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: three integers; u32::MAX is -1, "leave unchanged".
    unsafe {
        setresuid(u32::MAX, uid, u32::MAX) != 0
    }
}

/// The only environment a program exec'd by the shim gets.
const CLEAN_ENV: &CStr = c"PATH=/usr/bin:/bin";

/// `execve(path, argv, {"PATH=/usr/bin:/bin"})`; returns only on failure.
pub fn exec_clean(path: &CStr, argv: &[&CStr; 2]) {
    let args: [*const c_char; 3] = [argv[0].as_ptr(), argv[1].as_ptr(), core::ptr::null()];
    let env: [*const c_char; 2] = [CLEAN_ENV.as_ptr(), core::ptr::null()];
    // SAFETY: `path`, every argv entry and the environment entry are valid
    // NUL-terminated strings, and both arrays end in a null pointer; all of
    // them outlive the call, which returns only on failure.
    unsafe {
        super::execve(path.as_ptr(), args.as_ptr(), env.as_ptr());
    }
}
