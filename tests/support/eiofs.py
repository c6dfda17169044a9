"""A pass-through FUSE filesystem that answers EIO on demand (spool_eio.rs).

    eiofs.py BACKING MOUNTPOINT FLAG

Mirrors BACKING at MOUNTPOINT. While the file FLAG exists, every write(2)
and fsync(2) under MOUNTPOINT fails with EIO, as a dying disk's would;
everything else (lookups, creates, links, reads) keeps working, so the
caller sees the error exactly where a real device would report it. Files
and directories created through it belong to the calling process's uid
and gid (the spool user), as on a real filesystem. Needs Debian's
python3-fusepy (module `fusepy`) and /dev/fuse; run as root.
"""
import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations, fuse_get_context


class EioFs(Operations):
    def __init__(self, root, flag):
        self.root = root
        self.flag = flag

    def _p(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _failing(self):
        return os.path.exists(self.flag)

    def _own(self, p):
        uid, gid, _ = fuse_get_context()
        os.lchown(p, uid, gid)

    def getattr(self, path, fh=None):
        st = os.lstat(self._p(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid", "st_ino")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._p(path))

    def mkdir(self, path, mode):
        os.mkdir(self._p(path), mode)
        self._own(self._p(path))

    def rmdir(self, path):
        os.rmdir(self._p(path))

    def chmod(self, path, mode):
        os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        os.lchown(self._p(path), uid, gid)

    def utimens(self, path, times=None):
        os.utime(self._p(path), times)

    def unlink(self, path):
        os.unlink(self._p(path))

    def link(self, target, source):
        os.link(self._p(source), self._p(target))

    def rename(self, old, new):
        os.rename(self._p(old), self._p(new))

    def mknod(self, path, mode, dev):
        os.mknod(self._p(path), mode, dev)
        self._own(self._p(path))

    def statfs(self, path):
        st = os.statvfs(self._p(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def open(self, path, flags):
        return os.open(self._p(path), flags)

    def create(self, path, mode, fi=None):
        fd = os.open(self._p(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        self._own(self._p(path))
        return fd

    def read(self, path, size, offset, fh):
        return os.pread(fh, size, offset)

    def write(self, path, data, offset, fh):
        if self._failing():
            raise FuseOSError(errno.EIO)
        return os.pwrite(fh, data, offset)

    def truncate(self, path, length, fh=None):
        os.truncate(self._p(path), length)

    def flush(self, path, fh):
        return 0

    def fsync(self, path, datasync, fh):
        if self._failing():
            raise FuseOSError(errno.EIO)
        os.fsync(fh)
        return 0

    def fsyncdir(self, path, datasync, fh):
        if self._failing():
            raise FuseOSError(errno.EIO)
        return 0

    def release(self, path, fh):
        os.close(fh)
        return 0


if __name__ == "__main__":
    backing, mountpoint, flag = sys.argv[1:4]
    FUSE(EioFs(backing, flag), mountpoint, foreground=True, allow_other=True, default_permissions=True, use_ino=True, direct_io=True, nonempty=True)
