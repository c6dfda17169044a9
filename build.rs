//! Link settings for picoq's programs (bins only; the test harnesses are
//! ordinary std programs and keep their defaults).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let target = std::env::var("TARGET").unwrap_or_default();
    // The linker cargo resolved for the target, when one is configured
    // (rust-lld for aarch64; cargo-zigbuild's zig cc wrapper for armv7 and
    // mips*, which it names zigcc-<triple>-....sh).
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_default();
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    println!("cargo:rerun-if-changed=targets/picoq.ld");
    println!("cargo:rerun-if-changed=targets/picoq-lld.ld");
    println!("cargo:rerun-if-changed=targets/picoq-code-last.ld");
    // core's `#[link(name = "c")]` puts -lc right after core on the link
    // line; rustix and core's other dependencies come later and need
    // memcpy/memcmp too. A final -lc resolves them (static archives are
    // scanned in order).
    println!("cargo:rustc-link-arg-bins=-lc");
    // x86_64 musl with `-C link-self-contained=no` (.cargo/config.toml):
    // rustc then adds none of its start files, and the programs get only
    // musl's self-relocating rcrt1.o from rustc's self-contained directory
    // (and libc.a from there). gcc's crtbeginS/crtendS (transactional
    // memory clones, frame registration, a .fini_array walker) and
    // crti/crtn (an empty _init/_fini, for which musl has weak dummies)
    // do nothing for picoq: ~170 B of code and a RELRO entry per program.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    println!("cargo:rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    if target == "x86_64-unknown-linux-musl" && flags.split('\x1f').any(|f| f == "link-self-contained=no") {
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let out = std::process::Command::new(rustc)
            .args(["--print", "target-libdir", "--target", &target])
            .output()
            .expect("rustc --print target-libdir");
        let libdir = String::from_utf8(out.stdout).expect("utf-8 path");
        let dir = format!("{}/self-contained", libdir.trim());
        println!("cargo:rustc-link-arg-bins=-L{dir}");
        println!("cargo:rustc-link-arg-bins={dir}/rcrt1.o");
    }
    if target.ends_with("-linux-musl") || target.ends_with("-linux-musleabihf") {
        // `-T<script>` in one word: understood alike by cc, zig cc and a
        // bare (rust-)lld, which rejects cc's `-Wl,` form.
        let script = if linker.contains("zigcc") { "picoq-lld.ld" } else { "picoq.ld" };
        println!("cargo:rustc-link-arg-bins=-T{dir}/targets/{script}");
    }
    // x86_64: the code last in the file, from a page boundary; the linker
    // .cargo/config.toml names (targets/x86_64-linux-musl-ld) then ends a
    // stripped program right after it (see picoq-code-last.ld).
    if target == "x86_64-unknown-linux-musl" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/targets/picoq-code-last.ld");
    }
}
