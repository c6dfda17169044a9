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

.PHONY: all build test deps unit blackbox hardening size bench demo cross clean install

all: build

build:
	$(CARGO) build --release --locked --target $(TARGET)

# Debian packages, rust targets: whatever a fresh machine lacks.
deps:
	sh tests/deps.sh $(TARGET)

# Unit tests run on the host; black-box tests run the shipped (musl,
# release, static) programs, found through PICOQ_BIN_DIR.
test: deps build unit blackbox hardening

unit:
	$(CARGO) test --locked -p picoq-core -p xtask

blackbox: build
	PICOQ_BIN_DIR=$(RELEASE_DIR) $(CARGO) test --locked -p picoq --tests

# Every run: each program static, PIE, RELRO, NX (budgets: make size).
hardening: build
	$(CARGO) xtask size --hardening $(TARGET)

size:
	$(CARGO) xtask size $(TARGET)

bench:
	sh tests/deps.sh --bench
	$(CARGO) xtask bench

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
