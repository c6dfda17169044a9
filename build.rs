//! Link settings for picoq's programs (bins only; the test harnesses are
//! ordinary std programs and keep their defaults).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rerun-if-changed=targets/picoq.ld");
    // core's `#[link(name = "c")]` puts -lc right after core on the link
    // line; rustix and core's other dependencies come later and need
    // memcpy/memcmp too. A final -lc resolves them (static archives are
    // scanned in order).
    println!("cargo:rustc-link-arg-bins=-lc");
    if target.ends_with("-linux-musl") || target.ends_with("-linux-musleabihf") {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{dir}/targets/picoq.ld");
    }
}
