# picoq — build, test, install. See README.md.
#
#   make                 release binaries for TARGET (default x86_64 musl) in
#                        cargo's target/TARGET/release/
#   make test            installs what the tests need, then runs every test
#   make demo            picoq's main job end to end on loopback
#   make install PREFIX=DIR [DESTDIR=...]
#                        as root: build with DIR compiled in, install with the
#                        owners and modes of install/manifest
#
# Every cargo call uses --locked: Cargo.lock is committed and is the truth.

TARGET ?= x86_64-unknown-linux-musl
CARGO ?= cargo
RELEASE_DIR := $(CURDIR)/target/$(TARGET)/release

.PHONY: all build test deps unit blackbox hardening audit fuzz-smoke fuzz oldkernel portcheck cross-tests cross-test size bench demo cross clean install

all: build

build:
	$(CARGO) build --release --locked --target $(TARGET)

# Debian packages, rust targets: whatever a fresh machine lacks.
deps:
	sh tests/deps.sh $(TARGET)

# Unit tests run on the host; black-box tests run the shipped (musl,
# release, static) programs, found through PICOQ_BIN_DIR.
test: deps build unit blackbox hardening audit fuzz-smoke oldkernel portcheck cross-tests

unit:
	$(CARGO) test --locked -p picoq-core -p xtask

blackbox: build
	PICOQ_BIN_DIR=$(RELEASE_DIR) $(CARGO) test --locked -p picoq --tests

# Every run: each program static, PIE, RELRO, NX, nothing but code in its
# executable pages (budgets: make size).
hardening: build
	$(CARGO) xtask size --hardening $(TARGET)

# SECURITY.md's report: unsafe inventory with SAFETY comments, licences
# and sources of every dependency, ELF hardening of every program.
audit: build
	$(CARGO) xtask audit

# Every fuzz target a few seconds (make test); `make fuzz FUZZ_SECONDS=600`
# for a real run.
FUZZ_SMOKE_SECONDS ?= 3
FUZZ_SECONDS ?= 600
fuzz-smoke:
	sh tests/deps.sh --fuzz
	$(CARGO) xtask fuzz --seconds $(FUZZ_SMOKE_SECONDS)

fuzz:
	sh tests/deps.sh --fuzz
	$(CARGO) xtask fuzz --seconds $(FUZZ_SECONDS)

size:
	$(CARGO) xtask size $(TARGET)

bench:
	sh tests/deps.sh --bench
	$(CARGO) xtask bench

# The black-box tests as if on Linux 3.2 (seccomp: ENOSYS for newer system
# calls, EISDIR for O_TMPFILE): every fallback is exercised.
oldkernel: build
	$(CARGO) xtask oldkernel

# core and the programs type-check for NetBSD, FreeBSD, OpenBSD, illumos
# and Solaris/SPARC (nightly -Zbuild-std=core).
portcheck:
	sh tests/deps.sh --cross >/dev/null
	$(CARGO) xtask portcheck

# In every make test: aarch64 and big-endian mips under qemu (black-box
# and core's unit tests), each program static/PIE/RELRO/NX there too.
# armv7 and mipsel: make cross-test TARGET=...
CROSS_TESTS = aarch64-unknown-linux-musl mips-unknown-linux-musl
cross-tests:
	sh tests/deps.sh --cross >/dev/null
	set -e; for t in $(CROSS_TESTS); do $(CARGO) xtask cross-test $$t; $(CARGO) xtask size --hardening $$t; done

cross-test:
	sh tests/deps.sh --cross >/dev/null
	$(CARGO) xtask cross-test $(TARGET)

# Any target in targets/: installs the pinned cross tools, builds every
# program into target/$(TARGET)/release/, prints the size table.
cross:
	$(CARGO) xtask cross $(TARGET)

demo:
	sh tests/deps.sh --demo
	$(CARGO) xtask demo

# The home is compiled in (default qmail's /var/qmail). DESTDIR stages the
# tree elsewhere (for packages); the programs still look in PREFIX.
PREFIX ?= /var/qmail
install:
	$(CARGO) xtask install $(PREFIX) $(if $(DESTDIR),--destdir $(DESTDIR))

clean:
	$(CARGO) clean
