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
    #[cfg_attr(
        all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
        ),
        allow(dead_code)
    )]
    fn sigemptyset(set: *mut SigSet) -> c_int;
    #[cfg_attr(
        all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
        ),
        allow(dead_code)
    )]
    fn sigaddset(set: *mut SigSet, sig: c_int) -> c_int;
    #[cfg_attr(
        all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
        ),
        allow(dead_code)
    )]
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
}

/// Room for any platform's `sigset_t` (musl: 128 bytes; glibc: 128;
/// the BSDs and illumos: 16), initialised by `sigemptyset`.
#[cfg_attr(
    all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
    ),
    allow(dead_code)
)]
#[repr(C, align(8))]
struct SigSet([u8; 128]);

/// `SIG_BLOCK`: 0 on Linux except MIPS and SPARC, 1 there and on the BSDs
/// and illumos/Solaris.
#[cfg(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc", target_arch = "sparc64"))
))]
#[cfg_attr(
    all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
    ),
    allow(dead_code)
)]
const SIG_BLOCK: c_int = 0;
#[cfg(not(all(
    any(target_os = "linux", target_os = "android"),
    not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc", target_arch = "sparc64"))
)))]
#[cfg_attr(
    all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
    ),
    allow(dead_code)
)]
const SIG_BLOCK: c_int = 1;

/// The two signal dispositions picoq sets (privilege.rs): no handler code.
const SIG_DFL: usize = 0;
const SIG_IGN: usize = 1;

/// `_exit(code)`—ends the process at once, without running anything else.
pub fn exit(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { _exit(code) }
}

/// Whether descriptor `fd` is open, by `fcntl(fd, F_GETFD)`. Out of line:
/// start-up asks it for fd 6 and in a loop for 0-2.
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
#[inline(never)]
fn raw_fd_is_open(fd: RawFd) -> bool {
    // SAFETY: the borrow lives for this one F_GETFD call, which only reads
    // the descriptor's flags and answers EBADF for a closed number; nothing
    // is read, written or closed through it.
    rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) }).is_ok()
}

/// Clears close-on-exec on `fd` (`fcntl(fd, F_SETFD, 0)`).
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
fn clear_cloexec(fd: BorrowedFd<'_>) -> bool {
    rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).is_ok()
}

/// MIPS o32 system call numbers for the calls picoq makes directly there:
/// rustix goes through musl on MIPS, and musl's `fcntl` (emulations of
/// F_DUPFD_CLOEXEC and F_GETOWN_EX, ~730 B) and `setrlimit` (applied to
/// every thread through `__synccall`, which brings semaphores, timed waits
/// and the vDSO clock: ~5 KB) are far more than picoq needs.
#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
mod mips_nr {
    pub const FCNTL: core::ffi::c_long = 4055;
    pub const PRLIMIT64: core::ffi::c_long = 4338;
    pub const FSTAT64: core::ffi::c_long = 4215;
    pub const PIPE2: core::ffi::c_long = 4328;
    pub const CLOCK_GETTIME32: core::ffi::c_long = 4263;
    pub const CLOCK_GETTIME64: core::ffi::c_long = 4403;
    pub const SOCKET: core::ffi::c_long = 4183;
    pub const GETSOCKOPT: core::ffi::c_long = 4173;
    pub const SETSOCKOPT: core::ffi::c_long = 4181;
    /// MIPS's own SOL_SOCKET and SO_ERROR; IPPROTO_TCP and TCP_NODELAY
    /// are the usual ones.
    pub const SOL_SOCKET: core::ffi::c_long = 0xffff;
    pub const SO_ERROR: core::ffi::c_long = 0x1007;
    pub const IPPROTO_TCP: core::ffi::c_long = 6;
    pub const TCP_NODELAY: core::ffi::c_long = 1;
    /// F_GETFD and F_SETFD (the same numbers as everywhere on Linux).
    pub const F_GETFD: core::ffi::c_long = 1;
    pub const F_SETFD: core::ffi::c_long = 2;
}

#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
fn raw_fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor's flags and answers EBADF
    // for a closed number; nothing is read, written or closed.
    unsafe { syscall(mips_nr::FCNTL, fd as core::ffi::c_long, mips_nr::F_GETFD) >= 0 }
}

#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
fn clear_cloexec(fd: BorrowedFd<'_>) -> bool {
    use rustix::fd::AsRawFd;
    // SAFETY: F_SETFD with 0 only clears close-on-exec on a descriptor the
    // caller borrows (it is open for the call).
    unsafe { syscall(mips_nr::FCNTL, fd.as_raw_fd() as core::ffi::c_long, mips_nr::F_SETFD, 0usize) >= 0 }
}

/// The parts of `fstat(2)` picoq uses.
#[derive(Clone, Copy, Debug)]
pub struct FileStat {
    /// `st_mode`: type and permission bits.
    pub mode: u32,
    pub size: u64,
    pub uid: u32,
    pub ino: u64,
    /// `st_mtime`, unix seconds.
    pub mtime: i64,
}

/// `fstat(fd)`: rustix's, except on MIPS (below).
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
pub fn fstat<Fd: rustix::fd::AsFd>(fd: Fd) -> Result<FileStat, rustix::io::Errno> {
    let st = rustix::fs::fstat(fd)?;
    Ok(FileStat {
        mode: st.st_mode as u32,
        size: st.st_size as u64,
        uid: st.st_uid,
        ino: st.st_ino as u64,
        mtime: st.st_mtime as i64,
    })
}

/// `fstat(fd)` on MIPS: the kernel's fstat64 into its o32 `struct stat64`.
/// rustix's libc backend asks musl for `statx` (through `dlsym`, null in
/// a static program) and then calls musl's `fstat`, which is `fstatat`
/// with a /proc/self/fd fallback: ~1.9 KB for four fields.
#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
pub fn fstat<Fd: rustix::fd::AsFd>(fd: Fd) -> Result<FileStat, rustix::io::Errno> {
    use rustix::fd::AsRawFd;
    /// The kernel's o32 `struct stat64` (musl's arch/mips/kstat.h): 104
    /// bytes, 160 with musl's reserve.
    #[repr(C, align(8))]
    struct Stat64([u8; 160]);
    let mut st = Stat64([0; 160]);
    // SAFETY: `st` is a writable buffer larger than the kernel's struct
    // stat64, aligned for its 64-bit fields; `fd` is open for the call.
    let r = unsafe { syscall(mips_nr::FSTAT64, fd.as_fd().as_raw_fd() as core::ffi::c_long, st.0.as_mut_ptr()) };
    if r < 0 {
        return Err(libc_errno());
    }
    let b = &st.0;
    let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    // st_ino at 16, st_mode at 24, st_uid at 32, st_size at 56, st_mtime
    // at 72 (the kernel's 32-bit seconds, read unsigned: past 2038).
    Ok(FileStat { mode: u32_at(24), size: u64_at(56), uid: u32_at(32), ino: u64_at(16), mtime: u32_at(72) as i64 })
}

/// A TCP socket for `family`, non-blocking and close-on-exec.
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
pub fn tcp_socket(family: rustix::net::AddressFamily) -> Result<rustix::fd::OwnedFd, rustix::io::Errno> {
    use rustix::net::{SocketFlags, SocketType};
    rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC, None)
}

/// The pending error of a socket (`getsockopt(SO_ERROR)`): `Ok(Ok(()))`
/// when there is none.
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
pub fn socket_error(fd: BorrowedFd<'_>) -> Result<Result<(), rustix::io::Errno>, rustix::io::Errno> {
    rustix::net::sockopt::socket_error(fd)
}

/// Sets TCP_NODELAY on `fd`; failures are ignored.
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
pub fn set_nodelay(fd: BorrowedFd<'_>) {
    let _ = rustix::net::sockopt::set_tcp_nodelay(fd, true);
}

/// MIPS: the kernel's socket call. musl's `socket` retries without
/// SOCK_CLOEXEC/SOCK_NONBLOCK for kernels before 2.6.27 (which picoq does
/// not support: Linux 3.2 is its oldest) and pulls in fcntl.
#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
pub fn tcp_socket(family: rustix::net::AddressFamily) -> Result<rustix::fd::OwnedFd, rustix::io::Errno> {
    use rustix::fd::FromRawFd;
    use rustix::net::{SocketFlags, SocketType};
    let kind = SocketType::STREAM.as_raw() | (SocketFlags::NONBLOCK | SocketFlags::CLOEXEC).bits();
    // SAFETY: plain integers in; a non-negative result is a new
    // descriptor that nothing else owns.
    unsafe {
        let fd = syscall(mips_nr::SOCKET, family.as_raw() as core::ffi::c_long, kind as core::ffi::c_long, 0usize);
        if fd < 0 { Err(libc_errno()) } else { Ok(rustix::fd::OwnedFd::from_raw_fd(fd as RawFd)) }
    }
}

/// MIPS: the kernel's getsockopt (musl's converts 32/64-bit time options:
/// ~420 B).
#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
pub fn socket_error(fd: BorrowedFd<'_>) -> Result<Result<(), rustix::io::Errno>, rustix::io::Errno> {
    use rustix::fd::AsRawFd;
    let mut err: c_int = 0;
    let mut len = core::mem::size_of::<c_int>() as u32;
    // SAFETY: `err` and `len` are writable and `len` holds err's size;
    // `fd` is open for the call.
    let r = unsafe {
        syscall(
            mips_nr::GETSOCKOPT,
            fd.as_raw_fd() as core::ffi::c_long,
            mips_nr::SOL_SOCKET,
            mips_nr::SO_ERROR,
            &mut err as *mut c_int,
            &mut len as *mut u32,
        )
    };
    if r < 0 {
        Err(libc_errno())
    } else if err == 0 {
        Ok(Ok(()))
    } else {
        Ok(Err(rustix::io::Errno::from_raw_os_error(err)))
    }
}

/// MIPS: the kernel's setsockopt (musl's converts time options: ~460 B).
#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
pub fn set_nodelay(fd: BorrowedFd<'_>) {
    use rustix::fd::AsRawFd;
    let one: c_int = 1;
    // SAFETY: `one` is a readable int and its size is passed; `fd` is open
    // for the call. A failure is ignored (Nagle only adds latency).
    unsafe {
        syscall(
            mips_nr::SETSOCKOPT,
            fd.as_raw_fd() as core::ffi::c_long,
            mips_nr::IPPROTO_TCP,
            mips_nr::TCP_NODELAY,
            &one as *const c_int,
            core::mem::size_of::<c_int>(),
        );
    }
}

/// A close-on-exec pipe: (read end, write end). Out of line: a queue
/// hand-off makes two.
#[cfg(not(all(target_os = "linux", target_env = "musl", target_arch = "mips")))]
#[inline(never)]
pub fn pipe_cloexec() -> Result<(rustix::fd::OwnedFd, rustix::fd::OwnedFd), rustix::io::Errno> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
}

/// MIPS: the kernel's pipe2 (musl's falls back to pipe + fcntl for
/// kernels before 2.6.27: ~300 B).
#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
pub fn pipe_cloexec() -> Result<(rustix::fd::OwnedFd, rustix::fd::OwnedFd), rustix::io::Errno> {
    use rustix::fd::FromRawFd;
    let mut fds: [c_int; 2] = [-1, -1];
    let flags = rustix::pipe::PipeFlags::CLOEXEC.bits() as core::ffi::c_long;
    // SAFETY: `fds` is a writable int[2]; on success both are new
    // descriptors that nothing else owns.
    unsafe {
        if syscall(mips_nr::PIPE2, fds.as_mut_ptr(), flags) < 0 {
            return Err(libc_errno());
        }
        Ok((rustix::fd::OwnedFd::from_raw_fd(fds[0]), rustix::fd::OwnedFd::from_raw_fd(fds[1])))
    }
}

/// `prlimit64(0, resource, new, old)`: the calling process's limit
/// `resource` (a kernel RLIMIT_* number), set to `new` when given, read
/// into `old` when given; limits are `[current, maximum]`.
#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
pub(crate) fn prlimit(resource: i32, new: Option<&[u64; 2]>, old: Option<&mut [u64; 2]>) -> bool {
    let new = new.map_or(core::ptr::null(), |n| n.as_ptr());
    let old = old.map_or(core::ptr::null_mut(), |o| o.as_mut_ptr());
    // SAFETY: pid 0 is this process; `new` is null or a readable struct
    // rlimit64 (two u64), `old` null or a writable one.
    unsafe { syscall(mips_nr::PRLIMIT64, 0usize, resource as core::ffi::c_long, new, old) >= 0 }
}

/// Makes the program's PT_GNU_RELRO pages read-only.
///
/// musl's static-PIE start-up (rcrt1.o) applies the relocations itself but,
/// unlike its dynamic linker, never mprotects RELRO: the GOT, `.init_array`
/// and `.data.rel.ro` (the vtables behind `&dyn` calls) would stay writable
/// for the whole run. Called first thing in `main`, when every relocation
/// is done and nothing writes there any more. A failure leaves the pages
/// as they were (writable), as before this existed; it is not fatal.
#[cfg(all(target_os = "linux", target_env = "musl"))]
fn protect_relro() {
    unsafe extern "C" {
        /// The ELF header, defined by the linker when the header is in a
        /// loaded segment (else the link fails: no silent miss).
        static __ehdr_start: u8;
        fn getauxval(kind: core::ffi::c_ulong) -> core::ffi::c_ulong;
        fn mprotect(addr: *mut core::ffi::c_void, len: usize, prot: c_int) -> c_int;
    }
    const PT_LOAD: u32 = 1;
    const PT_GNU_RELRO: u32 = 0x6474_e552;
    const AT_PAGESZ: core::ffi::c_ulong = 6;
    const PROT_READ: c_int = 1;
    // Offsets in the ELF header (e_phoff, e_phnum) and in a program header
    // (p_offset, p_vaddr, p_memsz), and a program header's size: ELF64's
    // or ELF32's, as wide as a pointer. The words are in native order.
    #[cfg(target_pointer_width = "64")]
    mod layout {
        pub const E_PHOFF: usize = 32;
        pub const E_PHNUM: usize = 56;
        pub const P_OFFSET: usize = 8;
        pub const P_VADDR: usize = 16;
        pub const P_MEMSZ: usize = 40;
        pub const PHENT: usize = 56;
    }
    #[cfg(target_pointer_width = "32")]
    mod layout {
        pub const E_PHOFF: usize = 28;
        pub const E_PHNUM: usize = 44;
        pub const P_OFFSET: usize = 4;
        pub const P_VADDR: usize = 8;
        pub const P_MEMSZ: usize = 20;
        pub const PHENT: usize = 32;
    }
    use layout::*;
    let base = &raw const __ehdr_start;
    // SAFETY: `base` is this program's ELF header, mapped read-only by the
    // kernel with the rest of its first PT_LOAD (the linker defines
    // `__ehdr_start` only then); e_phoff and e_phnum locate the program
    // headers, which the kernel mapped too (it read them from there, AT_PHDR).
    // Reads are unaligned-safe. mprotect only ever lowers the protection of
    // whole pages inside the RELRO range, which nothing writes after start-up.
    unsafe {
        let word = |at: *const u8| at.cast::<usize>().read_unaligned();
        let phdrs = base.add(word(base.add(E_PHOFF)));
        let count = base.add(E_PHNUM).cast::<u16>().read_unaligned() as usize;
        let mut bias = None;
        let mut relro = None;
        for i in 0..count {
            let ph = phdrs.add(i * PHENT);
            match ph.cast::<u32>().read_unaligned() {
                PT_LOAD if word(ph.add(P_OFFSET)) == 0 => bias = Some(base as usize - word(ph.add(P_VADDR))),
                PT_GNU_RELRO => relro = Some((word(ph.add(P_VADDR)), word(ph.add(P_MEMSZ)))),
                _ => {}
            }
        }
        let page = getauxval(AT_PAGESZ) as usize;
        if let (Some(bias), Some((vaddr, len))) = (bias, relro)
            && page.is_power_of_two()
        {
            // Whole pages only: the page holding RELRO's end may hold .data.
            let start = (bias + vaddr) & !(page - 1);
            let end = (bias + vaddr + len) & !(page - 1);
            if end > start {
                mprotect(start as *mut core::ffi::c_void, end - start, PROT_READ);
            }
        }
    }
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
        #[cfg(all(target_os = "linux", target_env = "musl"))]
        protect_relro();
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
            if p.is_null() { None } else { Some(c_str_at(p.cast())) }
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
                // (possibly its NUL), so it starts a NUL-terminated suffix
                // alive for the process.
                return Some(unsafe { c_str_at(entry.add(k + 1)) });
            }
            i += 1;
        }
    }
}

/// `buf` as a C string when its only NUL byte is its last byte.
///
/// `CStr::from_bytes_with_nul` does the same check with core's generic
/// memchr: ~500 B of code in a program that needs only this, for the
/// short names (file names, numbers) picoq builds; a plain loop does.
pub fn c_str(buf: &[u8]) -> Option<&CStr> {
    if buf.iter().position(|&b| b == 0)? + 1 != buf.len() {
        return None;
    }
    // SAFETY: just checked: `buf` ends in a NUL and has no other.
    Some(unsafe { CStr::from_bytes_with_nul_unchecked(buf) })
}

/// The NUL-terminated string at `p` as a `CStr`, measured with a plain
/// loop (`CStr::from_ptr` links musl's strlen, several times larger for
/// picoq's few short strings).
///
/// # Safety
/// `p` must point to a NUL-terminated string that lives, unmodified, for
/// the rest of the process.
unsafe fn c_str_at(p: *const u8) -> &'static CStr {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated (the caller's contract): every
    // byte up to and including the NUL is readable.
    // Volatile reads: LLVM would turn a plain loop back into strlen.
    while unsafe { p.add(n).read_volatile() } != 0 {
        n += 1;
    }
    // SAFETY: `p[..=n]` is the string and its NUL, alive for the process.
    unsafe { CStr::from_bytes_with_nul_unchecked(core::slice::from_raw_parts(p, n + 1)) }
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
///
/// On the Linux targets picoq builds for this is the kernel's
/// rt_sigprocmask itself: musl's sigemptyset/sigaddset/sigprocmask/
/// pthread_sigmask are ~150 B more in every program.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
))]
pub fn block_sigpipe() {
    use privilege::raw;
    const WORD_BITS: usize = usize::BITS as usize;
    // The kernel's sigset_t: an array of longs, signal n at bit n - 1.
    let mut mask = [0usize; raw::MASK_BYTES / core::mem::size_of::<usize>()];
    let bit = rustix::process::Signal::PIPE.as_raw() as usize - 1;
    mask[bit / WORD_BITS] |= 1 << (bit % WORD_BITS);
    // SAFETY: `mask` is a readable kernel sigset_t of MASK_BYTES bytes; a
    // null old-mask pointer is allowed.
    unsafe {
        syscall(raw::SYS.1, raw::SIG_BLOCK, mask.as_ptr(), 0usize, raw::MASK_BYTES);
    }
}

/// Elsewhere: libc's sigprocmask.
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm", target_arch = "mips")
)))]
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
                if !clear_cloexec(src) {
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
    #[cfg(not(any(
        all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")),
        all(target_os = "linux", target_env = "musl", target_arch = "mips")
    )))]
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

/// MIPS: the kernel's clock_gettime64 (Linux 5.1), else the 32-bit
/// clock_gettime of older kernels. musl's time() looks the clock up in the
/// vDSO first: ~1.7 KB (symbol lookup, strcmp, 32-bit wrappers).
#[cfg(all(target_os = "linux", target_env = "musl", target_arch = "mips"))]
pub fn unix_time() -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: `ts` is a writable struct __kernel_timespec (two 64-bit
    // fields); CLOCK_REALTIME is 0.
    if unsafe { syscall(mips_nr::CLOCK_GETTIME64, 0usize, ts.as_mut_ptr()) } >= 0 {
        return if ts[0] < 0 { 0 } else { ts[0] as u64 };
    }
    let mut old = [0i32; 2];
    // SAFETY: `old` is a writable 32-bit struct timespec.
    let r = unsafe { syscall(mips_nr::CLOCK_GETTIME32, 0usize, old.as_mut_ptr()) };
    // Before 2038 the 32-bit seconds are non-negative.
    if r < 0 || old[0] < 0 { 0 } else { old[0] as u64 }
}

/// `time(NULL)`: seconds since the epoch, from musl (vDSO-backed).
#[cfg(not(any(
    all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")),
    all(target_os = "linux", target_env = "musl", target_arch = "mips")
)))]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_str_wants_exactly_one_nul_at_the_end() {
        assert_eq!(c_str(b"abc\0"), Some(c"abc"));
        assert_eq!(c_str(b"\0"), Some(c""));
        assert_eq!(c_str(b"abc"), None);
        assert_eq!(c_str(b""), None);
        assert_eq!(c_str(b"a\0c\0"), None);
        assert_eq!(c_str(b"abc\0\0"), None);
    }

    #[test]
    fn c_str_at_measures_up_to_the_nul() {
        static S: &[u8] = b"PICOQ_HOME=/var/qmail\0";
        // SAFETY: S is a NUL-terminated static.
        let s = unsafe { c_str_at(S.as_ptr()) };
        assert_eq!(s.to_bytes(), b"PICOQ_HOME=/var/qmail");
    }
}
