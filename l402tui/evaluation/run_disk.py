"""What a run may write: its work dir, its artifacts and /tmp, capped together at ``Limits.disk_mb``.

Two ways, picked per process:

* ``tmpfs`` (root): one tmpfs of ``disk_mb`` (plus what the work copy already takes)
  and one inode per 16 KiB, mounted privately; the run's work dir and artifacts dir
  are bind-mounted from it over the host paths the harness gave, and its /tmp comes
  from it too.  The kernel refuses the write past the limit (ENOSPC), nothing of it
  touches the host's disk while the run lasts (it is RAM, and under a memory cgroup
  it counts towards ``memory_mb`` as well), and a run that filled it is stopped.
  After the run the binds come off, the artifacts alone are copied back into the
  host dir (counted: at most ``disk_mb``, hard links and sparse files included;
  symlinks and special files kept as such so the harness can refuse them), and the
  tmpfs goes.  The work dir's state after a run is not kept.
* ``watch`` (not root, or no mounts here): the dirs stay on the host; /tmp is a host
  dir too; a watcher measures all three (allocated or apparent size, whichever is
  larger, of each inode once, and one inode per 16 KiB) and kills the run at the
  limit.  It overshoots by what the run writes between two measurements
  (:data:`WATCH_INTERVAL_S`, longer when the trees are large); RLIMIT_FSIZE caps each
  file at the limit meanwhile.

A run that reaches the limit fails with ``disk_limit`` and its outputs are dropped,
so the harness copies nothing of it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

from l402tui.evaluation.reasons import PhaseFailed, Reason

PREFIX = "l402tui-disk-"
BYTES_PER_INODE = 16 * 1024
FULL_MARGIN = 16 * 1024  # a tmpfs with less than this left counts as full
WATCH_INTERVAL_S = 0.05
TMPFS_INTERVAL_S = 0.02
FS_POLL_S = 0.005  # watch mode: how often the filesystems' used space is read between walks

_MS_NOSUID, _MS_NODEV, _MS_BIND, _MNT_DETACH = 2, 4, 4096, 2
_libc = None
_mode_lock = threading.Lock()
_mode: str | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _mount(source: str, target: Path, fstype: str | None, flags: int, data: str | None) -> None:
    if _c().mount(source.encode(), os.fsencode(target), fstype.encode() if fstype else None, flags,
                  data.encode() if data else None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype or 'bind'} on {target}: {os.strerror(err)}")


def _umount(target: Path) -> None:
    # Detach: it goes at once even if something still holds a file open in it.
    if _c().umount2(os.fsencode(target), _MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def disk_mode() -> str:
    """``tmpfs`` when this process can mount one (root, not forbidden), else ``watch``."""
    global _mode
    with _mode_lock:
        if _mode is None:
            _mode = "watch"
            if os.geteuid() == 0:
                probe = Path(tempfile.mkdtemp(prefix=PREFIX + "probe-"))
                try:
                    _mount(f"{PREFIX}{os.getpid()}", probe, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=64k")
                    _umount(probe)
                    _mode = "tmpfs"
                    sweep_stale_disks()
                except OSError:
                    pass
                finally:
                    probe.rmdir()
        return _mode


def sweep_stale_disks() -> int:
    """Unmount our tmpfs mounts whose process died (a kill -9 skips the cleanup)."""
    removed = 0
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return 0
    for line in reversed(lines):  # binds (mounted later) before the tmpfs itself
        fields = line.split(" - ", 1)
        if len(fields) != 2:
            continue
        after = fields[1].split()
        if len(after) < 2 or after[0] != "tmpfs" or not after[1].startswith(PREFIX):
            continue
        try:
            pid = int(after[1][len(PREFIX):])
            os.kill(pid, 0)
            continue
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        target = Path(fields[0].split()[4].encode().decode("unicode_escape"))
        try:
            _umount(target)
            removed += 1
        except OSError:
            continue
        if target.name.startswith(PREFIX):
            shutil.rmtree(target, ignore_errors=True)
    return removed


def _distinct_fs(paths: list[Path]) -> list[Path]:
    """One path per filesystem among ``paths`` (for statvfs)."""
    seen: dict[int, Path] = {}
    for p in paths:
        try:
            seen.setdefault(os.stat(p).st_dev, p)
        except OSError:
            continue
    return list(seen.values())


def _fs_used(paths: list[Path]) -> int:
    """Bytes in use on the filesystems of ``paths`` (0 when there are none)."""
    total = 0
    for p in paths:
        try:
            st = os.statvfs(p)
        except OSError:
            continue
        total += (st.f_blocks - st.f_bfree) * st.f_frsize
    return total


def _tree_cost(paths: list[Path]) -> tuple[int, int]:
    """(bytes, entries) under ``paths``: each inode once, at its allocated or apparent
    size, whichever is larger (a sparse file costs its full size when copied)."""
    seen: set[tuple[int, int]] = set()
    total = entries = 0
    stack = [p for p in paths if p.exists()]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                entries += 1
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
                total += max(st.st_blocks * 512, st.st_size if stat.S_ISREG(st.st_mode) else 0)
                if stat.S_ISDIR(st.st_mode):
                    stack.append(entry.path)
    return total, entries


class RunDisk:
    """The writable storage of one run; see the module doc."""

    def __init__(self, workdir: Path, artifacts: Path, disk_mb: int, uid: int | None, mode: str | None = None):
        self.workdir, self.artifacts = workdir, artifacts
        self.limit = disk_mb * 1024 * 1024
        self.mode = mode or disk_mode()
        self.exceeded = False
        self._binds: list[Path] = []
        self._mounted = False
        self.root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        os.chmod(self.root, 0o711)
        self.tmp = self.root / "tmp"
        try:
            if self.mode == "tmpfs":
                self._mount_tmpfs()
            else:
                self.tmp.mkdir()
                self._base, self._base_entries = _tree_cost([workdir, artifacts])
            self.tmp.chmod(0o1777)
            if uid is not None:
                os.chown(self.tmp, uid, uid)
        except BaseException:
            self.close()
            raise

    def _mount_tmpfs(self) -> None:
        used, entries = _tree_cost([self.workdir, self.artifacts])
        # The work copy is already there; the run gets disk_mb on top of it.
        size = self.limit + used + 64 * 1024
        inodes = self.limit // BYTES_PER_INODE + entries + 16
        _mount(f"{PREFIX}{os.getpid()}", self.root, "tmpfs", _MS_NOSUID | _MS_NODEV,
               f"size={size},nr_inodes={inodes},mode=0711")
        self._mounted = True
        for name, host in (("work", self.workdir), ("artifacts", self.artifacts)):
            shutil.copytree(host, self.root / name, symlinks=True)
            _mount(str(self.root / name), host, None, _MS_BIND, None)
            self._binds.append(host)
        self.tmp.mkdir()
        self._base = self._used()

    def _used(self) -> int:
        st = os.statvfs(self.root)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def full(self) -> bool:
        """The run has reached its limit (cheap for tmpfs; a tree walk otherwise)."""
        if self.mode == "tmpfs":
            st = os.statvfs(self.root)
            used = (st.f_blocks - st.f_bfree) * st.f_frsize - self._base
            return used >= self.limit - FULL_MARGIN or st.f_bavail * st.f_frsize < FULL_MARGIN or st.f_favail == 0
        used, entries = _tree_cost([self.workdir, self.artifacts, self.tmp])
        extra_entries = max(0, entries - self._base_entries)
        return used - self._base >= self.limit or extra_entries >= self.limit // BYTES_PER_INODE

    def watch(self, stop: threading.Event, on_full: Callable[[], None]) -> threading.Thread:
        """A thread that calls ``on_full`` once when the run reaches its limit."""

        def loop() -> None:
            interval = TMPFS_INTERVAL_S if self.mode == "tmpfs" else WATCH_INTERVAL_S
            # Watching a host dir: between tree walks, the filesystems' used space is read
            # every FS_POLL_S (a statvfs, microseconds); when it grew by an eighth of the
            # limit the walk runs at once, so a fast writer is caught within a few MB of the
            # limit rather than after a whole walk interval of page-cache-speed writes.
            devices = [] if self.mode == "tmpfs" else _distinct_fs([self.workdir, self.artifacts, self.tmp])
            mark, next_walk = _fs_used(devices), 0.0
            while not stop.is_set():
                if devices and time.monotonic() < next_walk and _fs_used(devices) - mark < self.limit // 8:
                    stop.wait(FS_POLL_S)
                    continue
                t0 = time.monotonic()
                if self.full():
                    self.exceeded = True
                    on_full()
                    return
                mark = _fs_used(devices)
                # A large tree takes long to walk: never spend more than ~1/5 of a core on it.
                next_walk = time.monotonic() + max(interval, 4 * (time.monotonic() - t0))
                stop.wait(FS_POLL_S if devices else next_walk - time.monotonic())

        thread = threading.Thread(target=loop, daemon=True, name="run-disk")
        thread.start()
        return thread

    def finish(self) -> bool:
        """After the run (every process of it gone): the last check, the artifacts
        back on the host when within the limit, and cleanup.  True if it exceeded."""
        try:
            if not self.exceeded and self.full():
                self.exceeded = True
            if self.mode == "tmpfs":
                for host in self._binds:
                    _umount(host)
                self._binds.clear()
                if not self.exceeded:
                    self.exceeded = not _copy_back(self.root / "artifacts", self.artifacts, self.limit,
                                                   self.limit // BYTES_PER_INODE)
            elif not self.exceeded and _copy_size(self.artifacts) > self.limit:
                self.exceeded = True  # the harness would copy each hard link and sparse file in full
            if self.exceeded:
                _empty(self.artifacts)  # nothing of an over-limit run is read back
        finally:
            self.close()
        return self.exceeded

    def close(self) -> None:
        for host in reversed(self._binds):
            _umount(host)
        self._binds.clear()
        if self._mounted:
            _umount(self.root)
            self._mounted = False
        shutil.rmtree(self.root, ignore_errors=True)


def _copy_size(path: Path) -> int:
    """Bytes a copy of ``path`` writes: every regular file's path at its apparent size."""
    total = 0
    for dirpath, _, filenames in os.walk(path, followlinks=False):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _empty(path: Path) -> None:
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.unlink(entry.path)


def _copy_back(src: Path, dest: Path, budget: int, max_entries: int) -> bool:
    """Copy the run's artifacts to the host, each path at its full size; False (and
    what was copied removed) past ``budget`` bytes or ``max_entries`` entries.  The run
    made every name and mode here: one the host cannot read or recreate (a tree deeper
    than PATH_MAX, say) ends the repeat as ``output_invalid``, not as the coordinator's error."""
    try:
        return _copy_tree_back(src, dest, budget, max_entries)
    except OSError as exc:
        _empty(dest)
        raise PhaseFailed(Reason.OUTPUT_INVALID, f"the run's outputs could not be copied back "
                                                 f"({exc.__class__.__name__}, errno {exc.errno})") from None


def _copy_tree_back(src: Path, dest: Path, budget: int, max_entries: int) -> bool:
    left, entries = budget, 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        here = Path(dirpath)
        to = dest / here.relative_to(src)
        for name in [*dirnames, *filenames]:
            entries += 1
            if entries > max_entries:
                _empty(dest)
                return False
            path, target = here / name, to / name
            mode = path.lstat().st_mode
            if stat.S_ISDIR(mode):
                target.mkdir()
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(path), target)  # kept as a link: the harness refuses it
            elif stat.S_ISREG(mode):
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as fin, open(target, "wb") as fout:
                    while chunk := fin.read(1 << 20):
                        left -= len(chunk)
                        if left < 0:
                            break
                        fout.write(chunk)
                if left < 0:
                    _empty(dest)
                    return False
            else:
                os.mkfifo(target)  # a special file stays special (and is refused), never opened
    return True


__all__ = ["RunDisk", "disk_mode", "sweep_stale_disks"]
