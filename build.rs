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
    // core's `#[link(name = "c")]` puts -lc right after core on the link
    // line; rustix and core's other dependencies come later and need
    // memcpy/memcmp too. A final -lc resolves them (static archives are
    // scanned in order).
    println!("cargo:rustc-link-arg-bins=-lc");
    if target.ends_with("-linux-musl") || target.ends_with("-linux-musleabihf") {
        // `-T<script>` in one word: understood alike by cc, zig cc and a
        // bare (rust-)lld, which rejects cc's `-Wl,` form.
        let script = if linker.contains("zigcc") { "picoq-lld.ld" } else { "picoq.ld" };
        println!("cargo:rustc-link-arg-bins=-T{dir}/targets/{script}");
    }
}
