#!/usr/bin/python3
"""Runs a program as if on a Linux 3.2 kernel (x86-64): a seccomp filter
answers ENOSYS to every system call newer than 3.2 and EISDIR to O_TMPFILE
opens, then the program is exec'd with its arguments.

    oldkernel.py PROGRAM [ARG...]
    oldkernel.py --selftest        checks that the filter does its job

Use it as the black-box tests' runner (it composes with others):

    PICOQ_RUNNER="/usr/bin/python3 $PWD/tests/oldkernel.py" \\
        cargo xtask cross-test x86_64-unknown-linux-musl

What a 3.2 kernel does, and so what the filter does:
- x86-64 system calls up to 311 (process_vm_writev, new in 3.2) exist;
  from 312 (kcmp, 3.5) on they do not: renameat2, getrandom, memfd_create,
  execveat, copy_file_range, preadv2, statx, rseq, clone3, close_range,
  openat2, faccessat2, ... all answer ENOSYS.
- O_TMPFILE (3.11) is __O_TMPFILE | O_DIRECTORY. An older kernel ignores
  the unknown __O_TMPFILE bit and sees a read-write open of a directory:
  EISDIR. open and openat with that bit answer EISDIR.

The filter is inherited across fork and exec, so programs that the program
runs (a queue program) are filtered too. Only the standard library is used
(ctypes for prctl): no dependency beyond python3. x86-64 only; other
architectures' system calls pass unfiltered.
"""
import ctypes
import errno
import os
import struct
import sys

AUDIT_ARCH_X86_64 = 0xC000003E
LAST_SYSCALL_3_2 = 311  # process_vm_writev
SYS_OPEN, SYS_OPENAT = 2, 257
O_TMPFILE_BIT = 0o20000000  # __O_TMPFILE on x86-64

PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000

# Classic BPF opcodes.
LD_W_ABS = 0x20
JEQ_K, JGT_K, JSET_K = 0x15, 0x25, 0x45
RET_K = 0x06

# struct seccomp_data: int nr; u32 arch; u64 ip; u64 args[6] (little-endian,
# so the low 32 bits of args[i] are at 16 + 8 * i).
OFF_NR, OFF_ARCH = 0, 4


def arg_low(i):
    return 16 + 8 * i


def program():
    """(code, jt, jf, k) tuples; jumps are relative to the next one."""
    return [
        (LD_W_ABS, 0, 0, OFF_ARCH),                 # 0
        (JEQ_K, 0, 8, AUDIT_ARCH_X86_64),           # 1: other arch -> 10
        (LD_W_ABS, 0, 0, OFF_NR),                   # 2
        (JGT_K, 7, 0, LAST_SYSCALL_3_2),            # 3: newer -> 11
        (JEQ_K, 3, 0, SYS_OPEN),                    # 4: open -> 8
        (JEQ_K, 0, 4, SYS_OPENAT),                  # 5: not openat -> 10
        (LD_W_ABS, 0, 0, arg_low(2)),               # 6: openat's flags
        (JSET_K, 4, 2, O_TMPFILE_BIT),              # 7: -> 12 or 10
        (LD_W_ABS, 0, 0, arg_low(1)),               # 8: open's flags
        (JSET_K, 2, 0, O_TMPFILE_BIT),              # 9: -> 12 or 10
        (RET_K, 0, 0, RET_ALLOW),                   # 10
        (RET_K, 0, 0, RET_ERRNO | errno.ENOSYS),    # 11
        (RET_K, 0, 0, RET_ERRNO | errno.EISDIR),    # 12
    ]


def install():
    insns = program()
    raw = b"".join(struct.pack("=HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(insns), ctypes.cast(buf, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        sys.exit("oldkernel: PR_SET_NO_NEW_PRIVS: " + os.strerror(ctypes.get_errno()))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        sys.exit("oldkernel: PR_SET_SECCOMP: " + os.strerror(ctypes.get_errno()))
    # Keep the buffer alive until exec (the kernel copied it already).
    return buf


def selftest():
    install()
    failures = []

    def expect(what, err, fn):
        try:
            fn()
            failures.append(f"{what}: succeeded, expected {errno.errorcode[err]}")
        except OSError as e:
            if e.errno != err:
                failures.append(f"{what}: {errno.errorcode.get(e.errno)}, expected {errno.errorcode[err]}")

    expect("memfd_create", errno.ENOSYS, lambda: os.memfd_create("x"))
    expect("getrandom", errno.ENOSYS, lambda: os.getrandom(1))
    expect("copy_file_range", errno.ENOSYS, lambda: os.copy_file_range(0, 1, 1))
    expect("O_TMPFILE open", errno.EISDIR, lambda: os.open("/tmp", os.O_TMPFILE | os.O_RDWR, 0o600))
    # Calls a 3.2 kernel has still work.
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)
    os.stat("/")
    for f in failures:
        print("oldkernel selftest: FAIL:", f)
    print("oldkernel selftest:", "FAIL" if failures else "ok (ENOSYS for new calls, EISDIR for O_TMPFILE)")
    return 1 if failures else 0


def main(argv):
    if argv[1:] == ["--selftest"]:
        return selftest()
    if len(argv) < 2 or argv[1].startswith("-"):
        sys.exit("usage: oldkernel.py PROGRAM [ARG...] | --selftest")
    install()
    # Like a shell's exec: PROGRAM may be a path or a name found in PATH.
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
