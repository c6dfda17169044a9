#!/bin/sh
# Installs what picoq's tests need on a fresh Debian machine, and nothing
# that is already there: the rust target(s) and the real peers the
# black-box tests talk to (../shared/PEERS.md). Safe to run again.
#
#   deps.sh [TARGET]          everything the tests need
#   deps.sh --rust [TARGET]   only the rust target
#   deps.sh --demo            the rust target, tcpserver and swaks (make demo)
#   deps.sh --bench           what make bench needs beyond the tests:
#                             valgrind, /usr/bin/time, musl-gcc
#   deps.sh --cross           the pinned cross tools (`cargo xtask cross`):
#                             nightly's rust-src (for -Zbuild-std), the
#                             aarch64 musl std, a venv with ziglang 0.15.2 and
#                             cargo-zigbuild, qemu-user-static; prints the
#                             venv's path last. Set PICOQ_CROSS_CACHE to move
#                             the venv (default ~/.cache/picoq).
#   deps.sh --audit           cargo-deny (pinned, from crates.io, ~3 min to
#                             build): `cargo xtask audit` then also runs
#                             `cargo deny check bans licenses sources`;
#                             without it, audit checks licences and sources
#                             from `cargo metadata` alone (what make test does)
#   deps.sh --fuzz            nightly and cargo-fuzz (pinned, from crates.io,
#                             ~1 min to build): `cargo xtask fuzz`
set -eu
mode=all
if [ "${1:-}" = --rust ]; then mode=rust; shift; fi
if [ "${1:-}" = --demo ]; then mode=demo; shift; fi
if [ "${1:-}" = --bench ]; then mode=bench; shift; fi
if [ "${1:-}" = --cross ]; then mode=cross; shift; fi
if [ "${1:-}" = --audit ]; then mode=audit; shift; fi
if [ "${1:-}" = --fuzz ]; then mode=fuzz; shift; fi

if [ "$mode" = fuzz ]; then
    if ! rustup toolchain list | grep -q '^nightly'; then
        echo "deps: rustup toolchain install nightly --profile minimal"
        rustup toolchain install nightly --profile minimal
    fi
    fuzz_pin=0.13.2
    if ! cargo fuzz --version 2>/dev/null | grep -q " $fuzz_pin\$"; then
        echo "deps: cargo install cargo-fuzz@$fuzz_pin --locked"
        cargo install -q --locked "cargo-fuzz@$fuzz_pin"
    fi
    exit 0
fi

if [ "$mode" = audit ]; then
    deny_pin=0.20.2
    if ! cargo deny --version 2>/dev/null | grep -q " $deny_pin\$"; then
        echo "deps: cargo install cargo-deny@$deny_pin --locked"
        cargo install -q --locked --no-default-features "cargo-deny@$deny_pin"
    fi
    exit 0
fi

apt_install() {
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "deps: apt-get install $*"
    $sudo apt-get update -qq
    # Postfix asks a debconf question; "No configuration" starts nothing and
    # writes no main.cf: the tests run private instances.
    echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ "$mode" = cross ]; then
    # Pinned: ziglang 0.17 fails to link std on mips/mipsel
    # (../shared/TOOLCHAIN.md); cargo-zigbuild is pinned so that two
    # machines link the same way (dist tarballs must be byte-identical).
    zig_pin=0.15.2
    zigbuild_pin=0.24.0
    cache=${PICOQ_CROSS_CACHE:-$HOME/.cache/picoq}
    venv=$cache/zig-$zig_pin-zigbuild-$zigbuild_pin
    if ! rustup +nightly component list --installed 2>/dev/null | grep -q '^rust-src'; then
        echo "deps: rustup component add rust-src --toolchain nightly"
        rustup component add rust-src --toolchain nightly
    fi
    if ! rustup target list --installed | grep -qx aarch64-unknown-linux-musl; then
        echo "deps: rustup target add aarch64-unknown-linux-musl"
        rustup target add aarch64-unknown-linux-musl
    fi
    if [ ! -x "$venv/bin/cargo-zigbuild" ] || ! "$venv/bin/python" -m ziglang version 2>/dev/null | grep -qx "$zig_pin"; then
        echo "deps: venv $venv: ziglang==$zig_pin cargo-zigbuild==$zigbuild_pin"
        rm -rf "$venv"
        mkdir -p "$cache"
        /usr/bin/python3 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "ziglang==$zig_pin" "cargo-zigbuild==$zigbuild_pin"
    fi
    need=""
    for q in qemu-aarch64-static qemu-arm-static qemu-mips-static qemu-mipsel-static; do
        command -v $q >/dev/null 2>&1 || need=qemu-user-static
    done
    [ -n "$need" ] && apt_install $need
    echo "$venv"
    exit 0
fi
target=${1:-x86_64-unknown-linux-musl}

if ! rustup target list --installed | grep -qx "$target"; then
    echo "deps: rustup target add $target"
    rustup target add "$target"
fi
[ "$mode" = rust ] && exit 0
if [ "$mode" = bench ]; then
    need=""
    command -v valgrind >/dev/null 2>&1 || need="$need valgrind"
    [ -x /usr/bin/time ] || need="$need time"
    command -v musl-gcc >/dev/null 2>&1 || need="$need musl-tools"
    command -v smtp-source >/dev/null 2>&1 || need="$need postfix"
    [ -n "$need" ] && apt_install $need
    exit 0
fi
if [ "$mode" = demo ]; then
    need=""
    command -v tcpserver >/dev/null 2>&1 || need="$need ucspi-tcp"
    command -v swaks >/dev/null 2>&1 || need="$need swaks"
    [ -n "$need" ] && apt_install $need
    exit 0
fi

# Debian packages: binary they provide, package.
need=""
for pair in \
    tcpserver:ucspi-tcp \
    /usr/lib/postfix/sbin/qmqpd:postfix \
    swaks:swaks \
    cdb:tinycdb
do
    bin=${pair%%:*}
    pkg=${pair#*:}
    case $bin in
        /*) [ -x "$bin" ] && continue ;;
        *) command -v "$bin" >/dev/null 2>&1 && continue ;;
    esac
    need="$need $pkg"
done
if ! /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null; then
    need="$need python3-aiosmtpd"
fi
# spool_eio.rs: a FUSE filesystem that answers EIO (support/eiofs.py).
if ! /usr/bin/python3 -c 'import fusepy' 2>/dev/null; then
    need="$need python3-fusepy"
fi

if [ -n "$need" ]; then
    apt_install $need
fi

# nullmailer conflicts with postfix (both provide mail-transport-agent), so
# its qmqp protocol module is extracted from the Debian package into
# target/peers/, not installed (../shared/PEERS.md).
peers=$(cd "$(dirname "$0")/.." && pwd)/target/peers
if [ ! -x "$peers/nullmailer/usr/lib/nullmailer/qmqp" ]; then
    echo "deps: nullmailer's qmqp module into target/peers/nullmailer"
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download nullmailer >/dev/null 2>&1); then
        [ "$(id -u)" = 0 ] && apt-get update -qq || sudo apt-get update -qq
        (cd "$tmp" && apt-get download nullmailer >/dev/null)
    fi
    mkdir -p "$peers/nullmailer"
    dpkg-deb -x "$tmp"/nullmailer_*.deb "$peers/nullmailer"
    rm -rf "$tmp"
fi
