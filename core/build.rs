//! Compiles the install prefix into the programs: `PICOQ_HOME_DEFAULT`
//! at build time (set by `make install PREFIX=...`), else `/var/qmail`.
use std::{env, fs, path::Path};

fn main() {
    println!("cargo:rerun-if-env-changed=PICOQ_HOME_DEFAULT");
    let home = env::var("PICOQ_HOME_DEFAULT").unwrap_or_else(|_| "/var/qmail".to_string());
    assert!(home.starts_with('/'), "PICOQ_HOME_DEFAULT must be an absolute path, got {home:?}");
    assert!(
        home.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'"' && b != b'\\'),
        "PICOQ_HOME_DEFAULT must be printable ASCII without spaces, quotes or backslashes, got {home:?}"
    );
    let out = Path::new(&env::var("OUT_DIR").unwrap()).join("home.rs");
    fs::write(out, format!("c\"{home}\"")).unwrap();
}
