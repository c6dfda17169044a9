//! Delivery into a Maildir (cr.yp.to/proto/maildir.html), for qmqpd on
//! small gateways and the demo.
//!
//! The protocol: create `tmp/NAME` with a name nobody else uses, write and
//! fsync it, then link it to `new/NAME` and remove `tmp/NAME`; the link is
//! the moment of delivery, and a reader never sees a partial message. The
//! directory is fsynced after the link so the delivery survives a crash
//! (qmail's maildir code relied on the file system's ordering; picoq does
//! not). Names are `SECONDS.MmicrosecondsPpidQcount.HOST`, Maildir's
//! recommended form, with `/` and `:` in HOST written as `\057` and `\072`.

use crate::num::{U64_DIGITS, fmt_u64};
use crate::sys::ByteBuf;
use core::ffi::CStr;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, linkat, openat, unlinkat};
use rustix::io::Errno;

/// Longest file name picoq makes: digits, letters and a host name.
pub const NAME_MAX: usize = 200;
/// Longest host part; longer names are cut (the name stays unique through
/// time, pid and counter).
const HOST_MAX: usize = 32;
static_assertions::const_assert!(3 * U64_DIGITS + 8 + 4 * HOST_MAX < NAME_MAX);

/// An open Maildir: its `tmp/` and `new/` directories.
pub struct Maildir {
    tmp: OwnedFd,
    new: OwnedFd,
}

/// A message being written into `tmp/`.
pub struct Draft {
    file: OwnedFd,
    /// The file name and a NUL.
    name: Name,
}

/// A file name and its NUL, for the *at calls.
type Name = ByteBuf<{ NAME_MAX + 1 }>;

/// `name` for the *at calls (`unique_name` ends it with its only NUL).
#[inline(never)]
fn c_name(name: &Name) -> &CStr {
    crate::sys::c_str(name.as_slice()).unwrap_or(c"")
}

impl Maildir {
    /// Opens the Maildir at `path` (which must have `tmp/` and `new/`).
    pub fn open(path: &CStr) -> Result<Maildir, Errno> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = openat(rustix::fs::CWD, path, flags, Mode::empty())?;
        Ok(Maildir {
            tmp: openat(&dir, c"tmp", flags, Mode::empty())?,
            new: openat(&dir, c"new", flags, Mode::empty())?,
        })
    }

    /// Creates a new file in `tmp/`, named from the time (`secs`, `usecs`),
    /// the pid, a per-process `count` and `host`.
    pub fn create(&self, secs: u64, usecs: u32, count: u32, host: &[u8]) -> Result<Draft, Errno> {
        let name = unique_name(secs, usecs, rustix::process::getpid().as_raw_nonzero().get() as u32, count, host);
        let file = openat(
            &self.tmp,
            c_name(&name),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )?;
        Ok(Draft { file, name })
    }
}

impl Draft {
    /// Where to write the message.
    pub fn file(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Delivers: fsync the file, link it into `new/`, remove it from
    /// `tmp/`, fsync `new/`. On failure the draft is removed.
    pub fn commit(self, md: &Maildir) -> Result<(), Errno> {
        let name = c_name(&self.name);
        let done = rustix::fs::fsync(&self.file)
            .and_then(|_| linkat(&md.tmp, name, &md.new, name, AtFlags::empty()))
            .and_then(|_| rustix::fs::fsync(&md.new));
        let _ = unlinkat(&md.tmp, name, AtFlags::empty());
        done
    }

    /// Gives up: removes the file from `tmp/`.
    pub fn abort(self, md: &Maildir) {
        let _ = unlinkat(&md.tmp, c_name(&self.name), AtFlags::empty());
    }

    /// The file name (the same in `tmp/` and `new/`).
    pub fn name(&self) -> &[u8] {
        let n = self.name.as_slice();
        &n[..n.len().saturating_sub(1)]
    }
}

/// `SECS.MusecsPpidQcount.HOST`, HOST with `/` → `\057`, `:` → `\072`
/// (and any other byte outside printable ASCII, or `.` at the start,
/// written the same octal way so the name stays one path component).
fn unique_name(secs: u64, usecs: u32, pid: u32, count: u32, host: &[u8]) -> Name {
    let mut n = Name::new();
    let mut d = [0u8; U64_DIGITS];
    // The bound NAME_MAX leaves room for every part (const_assert above).
    n.extend(fmt_u64(secs, &mut d));
    n.extend(b".M");
    n.extend(fmt_u64(usecs as u64, &mut d));
    n.push(b'P');
    n.extend(fmt_u64(pid as u64, &mut d));
    n.push(b'Q');
    n.extend(fmt_u64(count as u64, &mut d));
    n.push(b'.');
    for &b in &host[..host.len().min(HOST_MAX)] {
        if b.is_ascii_graphic() && b != b'/' && b != b':' && b != b'\\' {
            n.push(b);
        } else {
            n.extend(&[b'\\', b'0' + (b >> 6), b'0' + ((b >> 3) & 7), b'0' + (b & 7)]);
        }
    }
    n.push(0);
    n
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn names_follow_the_maildir_recommendation() {
        assert_eq!(unique_name(1700000000, 42, 77, 3, b"gw.example").as_slice(), b"1700000000.M42P77Q3.gw.example\0");
        assert_eq!(unique_name(1, 2, 3, 4, b"a/b:c").as_slice(), b"1.M2P3Q4.a\\057b\\072c\0");
    }

    #[test]
    fn commit_moves_a_complete_file_into_new() {
        let base = std::env::temp_dir().join(std::format!("picoq-maildir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        for d in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        let path = std::ffi::CString::new(base.to_str().unwrap()).unwrap();
        let md = Maildir::open(&path).unwrap();
        let draft = md.create(1700000000, 5, 1, b"host").unwrap();
        crate::io::write_all_nointr(draft.file(), b"Subject: x\n\nhi\n").unwrap();
        let name = std::string::String::from_utf8(draft.name().to_vec()).unwrap();
        // Before the commit, only tmp/ has it.
        assert!(base.join("tmp").join(&name).exists());
        assert!(!base.join("new").join(&name).exists());
        draft.commit(&md).unwrap();
        assert!(!base.join("tmp").join(&name).exists());
        assert_eq!(std::fs::read(base.join("new").join(&name)).unwrap(), b"Subject: x\n\nhi\n");
        // A name in use is refused (O_EXCL), never overwritten.
        let first = md.create(1700000001, 5, 1, b"host").unwrap();
        assert_eq!(md.create(1700000001, 5, 1, b"host").err(), Some(Errno::EXIST));
        first.abort(&md);
        assert!(std::fs::read_dir(base.join("tmp")).unwrap().next().is_none());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn missing_maildir_is_an_error() {
        assert!(Maildir::open(c"/nonexistent/picoq/Maildir").is_err());
    }
}
