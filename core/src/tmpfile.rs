//! Anonymous temporary files: a file with no name, gone when closed.
//!
//! Linux's `O_TMPFILE` creates one directly; elsewhere, or on kernels before
//! 3.11, a file is created with `O_EXCL|O_NOFOLLOW` (never following a
//! planted symlink, never reusing someone else's file) and unlinked at once.

use core::ffi::CStr;
use rustix::fd::OwnedFd;
use rustix::fs::{AtFlags, Mode, OFlags, openat, unlinkat};
use rustix::io::Errno;

/// Attempts at a unique name before giving up (names are pid plus a
/// counter; each collision means a leftover file or someone racing us).
const NAME_TRIES: u32 = 100;
static_assertions::const_assert!(NAME_TRIES <= 0x100);

/// Writes `v` as fixed-width lowercase hex into `out` (high digits first).
fn put_hex(out: &mut [u8], mut v: u64) {
    for o in out.iter_mut().rev() {
        *o = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// Opens an anonymous read-write file in directory `dir`.
pub fn anonymous(dir: &CStr) -> Result<OwnedFd, Errno> {
    let dirfd = openat(rustix::fs::CWD, dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match openat(&dirfd, c".", OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC, Mode::RUSR | Mode::WUSR) {
        Ok(fd) => return Ok(fd),
        // Kernel or file system without O_TMPFILE (old kernels answer
        // EISDIR, since they see O_DIRECTORY only).
        Err(Errno::ISDIR) | Err(Errno::OPNOTSUPP) | Err(Errno::INVAL) | Err(Errno::NOSYS) => {}
        Err(e) => return Err(e),
    }
    // The name only has to be unused: O_EXCL guarantees the file is ours,
    // and a collision (a leftover of a dead process with our pid) moves on
    // to the next counter value. Pid and counter are one hex number.
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u64;
    let mut name = *b"picoq.tmp.0000000000000000\0";
    for attempt in 0..NAME_TRIES as u64 {
        put_hex(&mut name[10..26], pid << 8 | attempt);
        let name = crate::sys::c_str(&name).ok_or(Errno::INVAL)?;
        match openat(
            &dirfd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        ) {
            Ok(fd) => {
                unlinkat(&dirfd, name, AtFlags::empty())?;
                return Ok(fd);
            }
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EXIST)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn anonymous_file_is_writable_and_leaves_no_name() {
        let dir = std::env::temp_dir().join(std::format!("picoq-tmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cdir = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        let fd = anonymous(&cdir).unwrap();
        crate::io::write_all_nointr(rustix::fd::AsFd::as_fd(&fd), b"hello").unwrap();
        let mut b = [0u8; 5];
        assert_eq!(rustix::io::pread(&fd, &mut b, 0).unwrap(), 5);
        assert_eq!(&b, b"hello");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn missing_directory_is_an_error() {
        assert_eq!(anonymous(c"/nonexistent/picoq").unwrap_err(), Errno::NOENT);
    }
}
