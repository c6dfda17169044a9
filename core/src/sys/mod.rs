//! The one place for `unsafe` in picoq.
//!
//! Everything here wraps a C-level fact that safe Rust cannot express: the
//! process's argv/envp handed over by musl's start-up code, descriptors the
//! process inherited, and the few calls rustix does not offer portably
//! (`_exit`, `signal`). Every `unsafe` block states why it is sound in a
//! `// SAFETY:` comment; the rest of picoq is `#![forbid(unsafe_code)]`.
//!
//! Start-up is the `entry!` macro: each binary expands it once, getting the
//! C `main` symbol, the panic handler and the personality stub that no_std
//! binaries linked against a prebuilt libcore need (rust-lang/rust#106864).

use core::ffi::{CStr, c_char, c_int};
use rustix::fd::{BorrowedFd, RawFd};

mod buf;
pub use buf::ByteBuf;

// Link musl (or the platform's libc): it provides the C start-up that calls
// our `main`, the setuid fd sanitizing and the mem* functions.
#[link(name = "c")]
unsafe extern "C" {
    fn _exit(code: c_int) -> !;
    fn signal(sig: c_int, handler: usize) -> usize;
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigaddset(set: *mut SigSet, sig: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
}

/// Room for any platform's `sigset_t` (musl: 128 bytes; glibc: 128;
/// the BSDs and illumos: 16), initialised by `sigemptyset`.
#[repr(C, align(8))]
struct SigSet([u8; 128]);

/// `SIG_BLOCK`: 0 on Linux except MIPS and SPARC, 1 there and on the BSDs
/// and illumos/Solaris.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc", target_arch = "sparc64"))
))]
const SIG_BLOCK: c_int = 0;
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc", target_arch = "sparc64"))
)))]
const SIG_BLOCK: c_int = 1;

/// The two signal dispositions picoq sets (privilege.rs): no handler code.
const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;

/// `_exit(code)`—ends the process at once, without running anything else.
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { _exit(code) }
}

/// Whether descriptor `fd` is open, by `fcntl(fd, F_GETFD)`.
fn raw_fd_is_open(fd: RawFd) -> bool {
    // SAFETY: the borrow lives for this one F_GETFD call, which only reads
    // the descriptor's flags and answers EBADF for a closed number; nothing
    // is read, written or closed through it.
    rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).is_ok()
}

/// Make sure fds 0, 1 and 2 are open, putting `/dev/null` on closed ones.
///
/// musl does this itself for setuid programs; doing it always means no file
/// picoq opens later can land on 0–2 and be mistaken for the message, the
/// envelope or the log. Returns false when `/dev/null` cannot be opened.
fn ensure_std_fds() -> bool {
    use rustix::fd::IntoRawFd;
    for fd in 0..3 {
        if !raw_fd_is_open(fd) {
            // open() returns the lowest free descriptor, which is `fd`: it
            // is closed and all lower ones are open (we go upwards). It is
            // kept open for the rest of the process.
            match rustix::fs::open(c"/dev/null", rustix::fs::OFlags::RDWR, rustix::fs::Mode::empty()) {
                Ok(null) => {
                    if null.into_raw_fd() != fd {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }
    true
}

/// What a program gets from the C start-up: arguments, environment and the
/// descriptors that matter to the qmail-queue interface.
pub struct Start {
    argc: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
    /// fd 6 was open before the program opened anything (notqmail's
    /// custom-error channel for qmail-queue programs).
    pub fd6_open: bool,
}

impl Start {
    /// Captures the C start-up's arguments.
    ///
    /// # Safety
    /// `argv` must point to `argc` valid NUL-terminated strings followed by
    /// a null pointer, and `envp` to a null-terminated array of
    /// NUL-terminated strings, both alive for the whole process and never
    /// modified (picoq never calls setenv/putenv). This is what the C
    /// start-up passes to `main`.
    pub unsafe fn from_c(argc: c_int, argv: *const *const c_char, envp: *const *const c_char) -> Start {
        // Check fd 6 first: once we open anything, a closed fd 6 could be
        // reused and look open.
        let fd6_open = raw_fd_is_open(6);
        if !ensure_std_fds() {
            exit(crate::qq::INTERNAL_BUG);
        }
        Start { argc: if argc > 0 { argc as usize } else { 0 }, argv, envp, fd6_open }
    }

    /// Argument `i` (0 is the program name), if present.
    pub fn arg(&self, i: usize) -> Option<&'static CStr> {
        if i >= self.argc || self.argv.is_null() {
            return None;
        }
        // SAFETY: i < argc and argv holds argc valid string pointers alive
        // for the process (contract of `from_c`).
        unsafe {
            let p = *self.argv.add(i);
            if p.is_null() { None } else { Some(CStr::from_ptr(p)) }
        }
    }

    /// The value of environment variable `name`, if set.
    ///
    /// Compares `name` in place, byte by byte, instead of measuring every
    /// variable with strlen: a program looks up two or three names, and the
    /// environment may be long.
    pub fn env(&self, name: &[u8]) -> Option<&'static CStr> {
        if self.envp.is_null() {
            return None;
        }
        let mut i = 0;
        loop {
            // SAFETY: envp is a null-terminated array of valid strings alive
            // for the process (contract of `from_c`); we stop at the null.
            let entry = unsafe { *self.envp.add(i) } as *const u8;
            if entry.is_null() {
                return None;
            }
            let mut k = 0;
            // SAFETY: `entry` is NUL-terminated and every byte compared
            // before it equalled a byte of `name`, which has no NUL, so
            // `entry + k` never goes past the terminating NUL.
            while k < name.len() && unsafe { *entry.add(k) } == name[k] {
                k += 1;
            }
            // SAFETY: as above, `entry + k` is within the string or its NUL.
            if k == name.len() && unsafe { *entry.add(k) } == b'=' {
                // SAFETY: the byte after '=' is within the same string
                // (possibly its NUL), so it starts a NUL-terminated suffix.
                return Some(unsafe { CStr::from_ptr(entry.add(k + 1).cast()) });
            }
            i += 1;
        }
    }
}

/// An inherited descriptor known to be open for the whole run.
///
/// fds 0–2 are guaranteed open by `Start::from_c` (which puts `/dev/null`
/// on closed ones) and picoq never closes them, so borrowing them for
/// `'static` is sound.
pub fn std_fd(fd: RawFd) -> BorrowedFd<'static> {
    assert!((0..3).contains(&fd));
    // SAFETY: see above: 0–2 are open from start-up to exit.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// fd 6, the custom-error channel, when `Start` saw it open.
///
/// Sound because the check ran before the program opened anything (so fd 6
/// is the caller's) and picoq never closes it.
pub fn error_fd(start: &Start) -> Option<BorrowedFd<'static>> {
    if start.fd6_open {
        // SAFETY: fd 6 was open at start-up and is never closed by picoq.
        Some(unsafe { BorrowedFd::borrow_raw(6) })
    } else {
        None
    }
}

/// Block SIGPIPE: a peer that closes early must give EPIPE, which picoq
/// maps to an exit code, not kill the program. (qmail ignores it; blocking
/// has the same effect on writes, and costs a fraction of the code of
/// musl's sigaction, which matters for the programs that need nothing else
/// of it. The mask is inherited across exec, like SIG_IGN would be.)
pub fn block_sigpipe() {
    let mut set = SigSet([0; 128]);
    // SAFETY: `set` is a writable buffer at least as large as the
    // platform's sigset_t and aligned for it; sigemptyset initialises it
    // before sigaddset and sigprocmask read it. A null `old` is allowed.
    unsafe {
        sigemptyset(&mut set);
        sigaddset(&mut set, rustix::process::Signal::PIPE.as_raw());
        sigprocmask(SIG_BLOCK, &set, core::ptr::null_mut());
    }
}

/// `signal(sig, SIG_DFL or SIG_IGN)` through libc: privilege.rs's
/// portable path (on Linux it uses raw rt_sigaction, far smaller).
#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
fn set_signal(sig: i32, handler: usize) {
    // SAFETY: SIG_IGN and SIG_DFL are the two handler values that need no
    // Rust code to run in signal context; `sig` is a plain integer (an
    // invalid one gives EINVAL, which we ignore: nothing to undo).
    unsafe {
        signal(sig, handler);
    }
}

/// Generates the C `main` for a picoq binary, its panic handler and the
/// `rust_eh_personality` stub.
///
/// `entry!("qmqpc", run)` calls `run(start: Start) -> !`. A panic (which
/// would be a bug: picoq code avoids panicking paths) prints
/// `NAME: fatal: internal bug` and exits 81, qmail-queue's "internal bug".
#[macro_export]
macro_rules! entry {
    ($name:literal, $run:path) => {
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        extern "C" fn main(
            argc: ::core::ffi::c_int,
            argv: *const *const ::core::ffi::c_char,
            envp: *const *const ::core::ffi::c_char,
        ) -> ::core::ffi::c_int {
            // SAFETY: called exactly once by the C start-up, which passes
            // the process's own argv and envp; picoq never modifies them.
            let start = unsafe { $crate::sys::Start::from_c(argc, argv, envp) };
            $run(start)
        }

        #[panic_handler]
        fn panic(_: &::core::panic::PanicInfo) -> ! {
            // The PanicInfo is not formatted: that keeps core::fmt out of
            // the binary.
            $crate::die::Die::new($name).fatal($crate::qq::INTERNAL_BUG, &[b"internal bug"])
        }

        // Needed by links that are not fully optimised (dev builds, zig
        // links): the prebuilt libcore references it (rust-lang/rust#106864).
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        extern "C" fn rust_eh_personality() {}
    };
}

// ---------------------------------------------------------------------------
// Running a child program (smtpd-front and qmqpd run a qmail-queue program).
// rustix keeps fork/execve in a hidden Linux-only module; musl's are
// portable and audited here (TOOLCHAIN.md).

#[link(name = "c")]
unsafe extern "C" {
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
    )))]
    fn fork() -> c_int;
    // Linux only (raw_fork, unix_time, privilege): on the BSDs and
    // illumos it would be an unused declaration (cargo xtask portcheck).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn syscall(number: core::ffi::c_long, ...) -> core::ffi::c_long;
    fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
}

/// Linux's `clone` system call number (flags are its first argument on
/// all of these).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const SYS_CLONE: core::ffi::c_long = 56;
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const SYS_CLONE: core::ffi::c_long = 220;
#[cfg(all(target_os = "linux", target_arch = "arm"))]
const SYS_CLONE: core::ffi::c_long = 120;
#[cfg(all(target_os = "linux", target_arch = "mips"))]
const SYS_CLONE: core::ffi::c_long = 4120;

/// fork(2) as the kernel does it: `clone(SIGCHLD)`.
///
/// musl's fork() wraps the same system call in atfork handlers, lock
/// resets and signal masking for multi-threaded programs: about 1.7 KB of
/// code picoq does not need, since it is single-threaded and the child
/// only places descriptors and execs. (musl's own state in the child, such
/// as its cached thread id, is stale, and nothing the child calls reads it.)
///
/// # Safety
/// The caller must be single-threaded and, in the child, call only
/// async-signal-safe system calls before execve or _exit.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
))]
unsafe fn raw_fork() -> c_int {
    let sigchld = rustix::process::Signal::CHILD.as_raw() as core::ffi::c_long;
    // SAFETY: clone with only an exit signal and no stack, no tid or tls
    // pointers creates a copy of the calling process, exactly like fork;
    // the remaining arguments are zero (null pointers).
    unsafe { syscall(SYS_CLONE, sigchld, 0usize, 0usize, 0usize, 0usize) as c_int }
}

/// # Safety
/// As the Linux version's: single-threaded caller, async-signal-safe child.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
)))]
unsafe fn raw_fork() -> c_int {
    // SAFETY: the caller's contract (see the Linux version) is fork's.
    unsafe { fork() }
}

/// The errno a libc call (not a rustix one) left behind.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn libc_errno() -> rustix::io::Errno {
    unsafe extern "C" {
        fn __errno_location() -> *mut c_int;
    }
    // SAFETY: __errno_location returns a valid pointer to this thread's
    // errno for the life of the thread (musl, glibc and bionic alike).
    rustix::io::Errno::from_raw_os_error(unsafe { *__errno_location() })
}

/// Elsewhere the errno accessor has other names; EAGAIN (a process limit)
/// is what fork fails with in practice.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn libc_errno() -> rustix::io::Errno {
    rustix::io::Errno::AGAIN
}

/// Most descriptors a child gets placed (`spawn`'s `fds`).
pub const SPAWN_FDS_MAX: usize = 4;

/// Runs `path` (no arguments beyond argv\[0\], the process's own
/// environment) in a child whose descriptors `fds[i].1` are `fds[i].0`,
/// qmail's `fd_move` + `execv`. Every other descriptor picoq opened is
/// close-on-exec, so the child sees only these and fds 0–2.
///
/// Returns the child's pid. A child that cannot place its descriptors or
/// exec exits 120 (qmail-queue's "unable to exec").
///
/// The targets must be placed in ascending order and no source may be a
/// lower target (callers pass fresh descriptors, which are ≥ 3, to 0, 1
/// and 6): a source is then never overwritten before it is moved.
pub fn spawn(
    start: &Start,
    path: &CStr,
    fds: &[(BorrowedFd<'_>, RawFd)],
) -> Result<rustix::process::Pid, rustix::io::Errno> {
    use rustix::fd::AsRawFd;
    assert!(fds.len() <= SPAWN_FDS_MAX);
    let argv: [*const c_char; 2] = [path.as_ptr(), core::ptr::null()];
    // SAFETY: picoq is single-threaded (SPEC §8), so the child is a full
    // copy of the only thread. The child then calls only async-signal-safe
    // functions (dup2, fcntl, execve, _exit) on memory it already owns, and
    // never returns into Rust code: it execs or exits.
    let pid = unsafe { raw_fork() };
    if pid < 0 {
        return Err(libc_errno());
    }
    if pid == 0 {
        for &(src, dst) in fds {
            let s = src.as_raw_fd();
            if s == dst {
                // dup2 onto itself keeps close-on-exec set: clear it.
                if rustix::io::fcntl_setfd(src, rustix::io::FdFlags::empty()).is_err() {
                    exit(crate::qq::CANNOT_EXEC);
                }
            // SAFETY: dup2 only manipulates this process's descriptor
            // table; both numbers are plain integers.
            } else if unsafe { dup2(s, dst) } != dst {
                exit(crate::qq::CANNOT_EXEC);
            }
        }
        // SAFETY: `path` is a valid NUL-terminated string, `argv` a
        // null-terminated array of such strings, and `envp` the process's
        // own null-terminated environment (contract of `Start::from_c`).
        // execve returns only on failure.
        unsafe {
            execve(path.as_ptr(), argv.as_ptr(), start.envp);
        }
        exit(crate::qq::CANNOT_EXEC);
    }
    // A positive pid is a valid Pid.
    rustix::process::Pid::from_raw(pid).ok_or(rustix::io::Errno::INVAL)
}

#[link(name = "c")]
unsafe extern "C" {
    // musl >= 1.2 on 32-bit targets (armv7, mips, mipsel): `time` is the
    // compatibility symbol with a 32-bit time_t, for binaries built
    // against older musl; the 64-bit one is `__time64`, which musl's
    // headers select for C code.
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    #[cfg_attr(all(target_env = "musl", target_pointer_width = "32"), link_name = "__time64")]
    fn time(t: *mut i64) -> i64;
}

/// Seconds since the epoch. On 64-bit Linux the kernel is asked
/// directly (clock_gettime system call: a few instructions); elsewhere
/// musl's time(). Both avoid rustix's clock_gettime, whose vDSO lookup
/// adds about 2 KiB to each program; a system call per use costs nothing
/// at picoq's few uses per message.
#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn unix_time() -> u64 {
    #[cfg(target_arch = "x86_64")]
    const SYS_CLOCK_GETTIME: core::ffi::c_long = 228;
    #[cfg(target_arch = "aarch64")]
    const SYS_CLOCK_GETTIME: core::ffi::c_long = 113;
    // The kernel's struct timespec on 64-bit Linux.
    let mut ts = [0i64; 2];
    // SAFETY: `ts` is a writable struct timespec (two 64-bit fields) for
    // the kernel to fill; CLOCK_REALTIME is 0.
    let r = unsafe { syscall(SYS_CLOCK_GETTIME, 0usize, ts.as_mut_ptr()) };
    if r < 0 || ts[0] < 0 { 0 } else { ts[0] as u64 }
}

/// `time(NULL)`: seconds since the epoch, from musl (vDSO-backed).
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub fn unix_time() -> u64 {
    // SAFETY: a null pointer asks time() for the return value only.
    let t = unsafe { time(core::ptr::null_mut()) };
    if t < 0 { 0 } else { t as u64 }
}

/// `dlsym` for static musl programs on MIPS, where rustix uses its libc
/// backend: rustix looks optional functions up with `dlsym(RTLD_DEFAULT,
/// name)` (e.g. `statx` for `fstat` on 32-bit targets) and falls back to
/// the plain system call or an older function when it gets null. A static
/// program has no dynamic symbols, so musl's own static `dlsym` also
/// returns null, but only after formatting an error message for
/// `dlerror` with `vsnprintf` into `malloc`ed memory: ~25 KB of printf and
/// malloc in every program for a lookup that cannot succeed. This one
/// answers null at once (the answer musl gives), and musl's is not linked.
#[cfg(all(not(test), target_os = "linux", target_env = "musl", target_arch = "mips"))]
#[allow(unsafe_code)]
#[unsafe(no_mangle)]
extern "C" fn dlsym(_handle: *mut core::ffi::c_void, _name: *const c_char) -> *mut core::ffi::c_void {
    core::ptr::null_mut()
}

/// `poll(fds)` waiting at most `secs` seconds: `rustix::event::poll` with
/// a whole-second timeout, except on MIPS musl.
///
/// There rustix uses its libc backend and hands musl its own `Timespec`
/// (`i64` seconds, then nanoseconds) where the libc crate's
/// `struct timespec` has a 32-bit `time_t`: on big-endian MIPS musl reads
/// the seconds' high word, 0, and every timeout expires at once (on
/// mipsel the low word comes first and it works by accident). Whole
/// seconds fit musl's `poll(fds, n, milliseconds)`, which takes no
/// structure at all.
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
pub fn poll_secs(fds: &mut [rustix::event::PollFd<'_>], secs: u32) -> Result<usize, rustix::io::Errno> {
    let timeout = rustix::time::Timespec { tv_sec: secs as _, tv_nsec: 0 };
    rustix::event::poll(fds, Some(&timeout))
}

#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
#[link(name = "c")]
unsafe extern "C" {
    fn poll(fds: *mut rustix::event::PollFd<'_>, n: core::ffi::c_ulong, timeout_ms: c_int) -> c_int;
}

#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
pub fn poll_secs(fds: &mut [rustix::event::PollFd<'_>], secs: u32) -> Result<usize, rustix::io::Errno> {
    // Up to ~24.8 days; longer timeouts are cut to that.
    let ms = secs.min(c_int::MAX as u32 / 1000) as c_int * 1000;
    // SAFETY: rustix's PollFd is `#[repr(C)]` with the layout of
    // `struct pollfd` (it is passed to the same libc call by rustix's own
    // libc backend); `fds` is a valid, writable array of `fds.len()` of
    // them for the duration of the call.
    let r = unsafe { poll(fds.as_mut_ptr(), fds.len() as core::ffi::c_ulong, ms) };
    if r >= 0 { Ok(r as usize) } else { Err(libc_errno()) }
}

// queue-shim's privileged primitives (reset, drop, verify, clean exec).
pub mod privilege;
