//! Constant databases (cr.yp.to/cdb/cdb.txt), read-only lookups.
//!
//! qmail-smtpd consults `control/morercpthosts.cdb` (made by
//! qmail-newmrh) for recipient domains beyond `rcpthosts`. Only existence
//! of a key matters there, so this reader answers "is `key` present" and
//! never copies data. Lookups are `pread`s on an open descriptor: no
//! mapping, no memory proportional to the file.
//!
//! Format: 256 (position, slots) pairs of little-endian u32 at the start;
//! the hash `h = ((h << 5) + h) ^ byte` from 5381 picks table `h & 255`
//! and, inside it, the first slot `(h >> 8) % slots`; slots are
//! (hash, record position) pairs, position 0 meaning empty; a record is
//! key length, data length, key, data. A malformed file is a read error
//! (qmail: "unable to read controls"), never an out-of-bounds access.

use rustix::fd::{AsFd, OwnedFd};
use rustix::io::Errno;

/// Longest key looked up (a domain); longer keys are never present
/// because qmail-smtpd's addresses are at most 900 bytes.
pub const KEY_MAX: usize = 1024;

/// cdb's hash function.
pub fn hash(key: &[u8]) -> u32 {
    key.iter().fold(5381u32, |h, &b| (h.wrapping_shl(5).wrapping_add(h)) ^ b as u32)
}

/// An open constant database.
pub struct Cdb {
    fd: OwnedFd,
}

impl Cdb {
    pub fn new(fd: OwnedFd) -> Cdb {
        Cdb { fd }
    }

    fn read_exact(&self, buf: &mut [u8], mut pos: u64) -> Result<(), Errno> {
        let mut done = 0;
        while done < buf.len() {
            match rustix::io::pread(self.fd.as_fd(), &mut buf[done..], pos) {
                // A short file is a corrupt one.
                Ok(0) => return Err(Errno::PROTO),
                Ok(n) => {
                    done += n;
                    pos += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn pair(&self, pos: u64) -> Result<(u32, u32), Errno> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b, pos)?;
        Ok((u32::from_le_bytes([b[0], b[1], b[2], b[3]]), u32::from_le_bytes([b[4], b[5], b[6], b[7]])))
    }

    /// Whether `key` is in the database (qmail's `cdb_seek` != 0).
    pub fn contains(&self, key: &[u8]) -> Result<bool, Errno> {
        if key.len() > KEY_MAX {
            return Ok(false);
        }
        let h = hash(key);
        let (table, slots) = self.pair(((h & 255) * 8) as u64)?;
        if slots == 0 {
            return Ok(false);
        }
        let mut slot = (h >> 8) % slots;
        let mut stored = [0u8; KEY_MAX];
        for _ in 0..slots {
            let (sh, rec) = self.pair(table as u64 + slot as u64 * 8)?;
            if rec == 0 {
                return Ok(false);
            }
            if sh == h {
                let (klen, _) = self.pair(rec as u64)?;
                if klen as usize == key.len() {
                    let k = &mut stored[..key.len()];
                    self.read_exact(k, rec as u64 + 8)?;
                    if k == key {
                        return Ok(true);
                    }
                }
            }
            slot += 1;
            if slot == slots {
                slot = 0;
            }
        }
        Ok(false)
    }
}

/// Builds a cdb in memory (tests only: the real ones come from
/// qmail-newmrh or tinycdb's `cdb -m`).
#[cfg(test)]
pub fn make(keys: &[&[u8]]) -> std::vec::Vec<u8> {
    extern crate std;
    use std::vec::Vec;
    let mut out = Vec::from([0u8; 2048]);
    let mut entries: Vec<(u32, u32)> = Vec::new();
    for k in keys {
        let pos = out.len() as u32;
        out.extend((k.len() as u32).to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out.extend_from_slice(k);
        out.push(b'1');
        entries.push((hash(k), pos));
    }
    for t in 0..256u32 {
        let mine: Vec<&(u32, u32)> = entries.iter().filter(|e| e.0 & 255 == t).collect();
        let n = mine.len() as u32 * 2;
        let mut slots = std::vec![(0u32, 0u32); n as usize];
        for e in mine {
            let mut s = (e.0 >> 8) % n;
            while slots[s as usize].1 != 0 {
                s = (s + 1) % n;
            }
            slots[s as usize] = *e;
        }
        let pos = out.len() as u32;
        out[(t * 8) as usize..(t * 8 + 4) as usize].copy_from_slice(&pos.to_le_bytes());
        out[(t * 8 + 4) as usize..(t * 8 + 8) as usize].copy_from_slice(&n.to_le_bytes());
        for (h, p) in slots {
            out.extend(h.to_le_bytes());
            out.extend(p.to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    fn cdb_of(keys: &[&[u8]], tag: &str) -> Cdb {
        let p = std::env::temp_dir().join(std::format!("picoq-cdb-{}-{tag}", std::process::id()));
        std::fs::write(&p, make(keys)).unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        let fd = crate::testutil::open(&c);
        std::fs::remove_file(&p).unwrap();
        Cdb::new(fd)
    }

    #[test]
    fn hash_matches_djb() {
        assert_eq!(hash(b""), 5381);
        assert_eq!(hash(b"a"), (5381u32 * 33) ^ 97);
    }

    #[test]
    fn finds_present_keys_only() {
        let keys: std::vec::Vec<std::vec::Vec<u8>> =
            (0..500).map(|i| std::format!("host{i}.example").into_bytes()).collect();
        let refs: std::vec::Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        let db = cdb_of(&refs, "many");
        for k in &refs {
            assert!(db.contains(k).unwrap(), "{:?}", std::str::from_utf8(k));
        }
        assert!(!db.contains(b"host500.example").unwrap());
        assert!(!db.contains(b"").unwrap());
        assert!(!db.contains(&[b'x'; 2000]).unwrap());
    }

    #[test]
    fn empty_database_has_nothing() {
        let db = cdb_of(&[], "empty");
        assert!(!db.contains(b"example.org").unwrap());
    }

    #[test]
    fn truncated_file_is_an_error() {
        let p = std::env::temp_dir().join(std::format!("picoq-cdb-{}-short", std::process::id()));
        std::fs::write(&p, [1u8; 100]).unwrap();
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        let db = Cdb::new(crate::testutil::open(&c));
        std::fs::remove_file(&p).unwrap();
        assert!(db.contains(b"a").is_err());
    }
}
