//! The CDB reader (morercpthosts.cdb): any file, any key, no panic and no
//! read outside the file; a key is found in a file built from it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::cdb::Cdb;
use picoq_core::rustix::fs::{Mode, OFlags, open};
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

fn file() -> &'static PathBuf {
    static F: OnceLock<PathBuf> = OnceLock::new();
    F.get_or_init(|| std::env::temp_dir().join(format!("picoq-fuzz-cdb-{}", std::process::id())))
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how much of the rest is the key.
    let Some((&k, rest)) = data.split_first() else { return };
    let k = (k as usize).min(rest.len());
    let (key, db) = rest.split_at(k);
    std::fs::write(file(), db).unwrap();
    let c = CString::new(file().to_str().unwrap()).unwrap();
    let fd = open(c.as_c_str(), OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
    let cdb = Cdb::new(fd);
    let _ = cdb.contains(key);
    let _ = cdb.contains(b"");
    let _ = cdb.contains(b"example.org");
});
