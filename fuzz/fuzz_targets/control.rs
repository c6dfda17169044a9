//! Control files (qmail's control.c rules) and the in-memory/rescanned
//! lists of smtpd-front (rcpthosts, badmailfrom): the fuzz input is the
//! file, written once per run into a private directory.
#![no_main]
use libfuzzer_sys::fuzz_target;
use picoq_core::control::{ControlDir, LINE_MAX};
use picoq_core::rustix::fs::{Mode, OFlags, open};
use picoq_core::smtp::ControlList;
use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("picoq-fuzz-control-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(dir().join("f"), data).unwrap();
    let c = CString::new(dir().to_str().unwrap()).unwrap();
    let fd = open(c.as_c_str(), OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap();
    let ctl = ControlDir::from_dir(fd);
    let mut line = [0u8; LINE_MAX];
    if let Ok(Some(l)) = ctl.read_line(c"f", &mut line) {
        assert!(l.len() <= LINE_MAX);
        assert!(!l.ends_with(b" ") && !l.ends_with(b"\t") && !l.ends_with(b"\n"));
    }
    let _ = ctl.read_u32(c"f", 7);
    let mut lines = 0;
    let _ = ctl.for_each_line(c"f", |l| {
        assert!(!l.is_empty() && l[0] != b'#');
        lines += 1;
        true
    });
    // A small list (rescanned) and a big one (in memory) must agree.
    let mut small: ControlList<16> = ControlList::new();
    let mut big: ControlList<65536> = ControlList::new();
    if small.load(&ctl, c"f").is_ok() && big.load(&ctl, c"f").is_ok() {
        let key = data.split(|&b| b == b'\n').next().unwrap_or(b"");
        for k in [key, b"example.org".as_slice(), b""] {
            assert_eq!(small.contains(&ctl, c"f", k).ok(), big.contains(&ctl, c"f", k).ok(), "{k:?}");
        }
    }
});
