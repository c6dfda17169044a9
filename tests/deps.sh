#!/bin/sh
# Installs what picoq's tests need on a fresh Debian machine, and nothing
# that is already there: the rust target(s) and the real peers the
# black-box tests talk to (../shared/PEERS.md). Safe to run again.
#
#   deps.sh [TARGET]          everything the tests need
#   deps.sh --rust [TARGET]   only the rust target (for make demo)
set -eu
mode=all
if [ "${1:-}" = --rust ]; then mode=rust; shift; fi
target=${1:-x86_64-unknown-linux-musl}

if ! rustup target list --installed | grep -qx "$target"; then
    echo "deps: rustup target add $target"
    rustup target add "$target"
fi
[ "$mode" = rust ] && exit 0

# Debian packages: binary they provide, package.
need=""
for pair in \
    tcpserver:ucspi-tcp \
    /usr/lib/postfix/sbin/qmqpd:postfix \
    swaks:swaks \
    valgrind:valgrind \
    /usr/bin/time:time
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

if [ -n "$need" ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    echo "deps: apt-get install$need"
    $sudo apt-get update -qq
    # Postfix asks a debconf question; "No configuration" starts nothing and
    # writes no main.cf: the tests run private instances.
    echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
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
