#!/usr/bin/python3
"""Probe for `cargo xtask oldkernel`: run under `xtask oldkernel-exec`, it
checks that the old-kernel seccomp filter answers like Linux 3.2 (ENOSYS
for newer system calls, EISDIR for O_TMPFILE opens) and still lets the
calls 3.2 has through. Prints one line per check; exit 1 on any failure.
Standard library only."""
import errno
import os
import sys

failures = []


def expect(what, err, fn):
    try:
        fn()
        failures.append(f"{what}: succeeded, expected {errno.errorcode[err]}")
    except OSError as e:
        if e.errno != err:
            failures.append(f"{what}: {errno.errorcode.get(e.errno)}, expected {errno.errorcode[err]}")
        else:
            print(f"oldkernel probe: {what}: {errno.errorcode[err]}")


expect("memfd_create (3.17)", errno.ENOSYS, lambda: os.memfd_create("x"))
expect("getrandom (3.17)", errno.ENOSYS, lambda: os.getrandom(1))
expect("copy_file_range (4.5)", errno.ENOSYS, lambda: os.copy_file_range(0, 1, 1))
expect("open O_TMPFILE (3.11)", errno.EISDIR, lambda: os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600))
# What 3.2 has must still work.
os.close(os.open("/dev/null", os.O_RDONLY))
os.stat("/")
r, w = os.pipe2(os.O_CLOEXEC)
os.close(r)
os.close(w)
for f in failures:
    print("oldkernel probe: FAIL:", f)
print("oldkernel probe:", "FAIL" if failures else "ok")
sys.exit(1 if failures else 0)
