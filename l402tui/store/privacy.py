"""The data dir is private: nobody but its owner may read or write it.

It holds money secrets (hold-invoice preimages, L402 root keys, the admin macaroon,
the simulated network's preimages) and the held-out sets.  Everything l402tui
creates there is 0700 (dirs) or 0600 (files) whatever the umask, and `serve` and the
TUI refuse to start on a data dir that a group or other user can read or write,
printing the one ``chmod`` line that fixes it.
"""

from __future__ import annotations

import os
import shlex
import stat
from dataclasses import dataclass
from pathlib import Path

PRIVATE_UMASK = 0o077
DIR_MODE = 0o700
FILE_MODE = 0o600
# What other users must never reach: group and other bits, any of r, w, x.
_EXPOSED = stat.S_IRWXG | stat.S_IRWXO
SIMNET_FILE = "simnet.sqlite"  # lightning.sim.DEFAULT_FILE, named here so a check does not import the sim
# Files whose exposure matters most; besides these every top-level file is checked.
SECRET_FILES = ("l402tui.sqlite", SIMNET_FILE, "admin.macaroon", "l402_master.key")
_SQLITE_SIDE = ("-wal", "-shm", "-journal")


class DataDirExposed(Exception):
    """A data dir (or a file in it) that other local users can reach.  The message
    lists what is exposed and the command that makes it private."""


def private_umask() -> int:
    """Make everything this process (and its children) creates private; returns the old umask."""
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)  # keep a stricter umask the user already had
    return old


def make_private_dir(path: Path | str) -> Path:
    """Create ``path`` (and missing parents) with the leaf exactly 0700.  An existing dir
    is left as it is: the start-up check reports one that is open to others."""
    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=DIR_MODE)
        except FileExistsError:
            return path  # made by another process meanwhile
        os.chmod(path, DIR_MODE)  # mkdir's mode passes through the umask; be exact
    return path


def make_private_file(path: Path | str) -> Path:
    """Create an empty ``path`` with mode 0600 if missing (its dir 0700); leave an
    existing one as it is (the start-up check reports it).  SQLite gives a database's
    -wal and -shm files the database file's own mode, so creating the file first is
    what keeps them private too."""
    path = Path(path)
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return path
    os.close(fd)
    os.chmod(path, FILE_MODE)  # O_CREAT's mode passes through the umask; be exact
    return path


def make_tree_private(root: Path | str) -> None:
    """Take group and other bits off everything under ``root`` (a copy keeps its source's
    modes: a sponsor's 0644 held-out labels must not stay readable in the data dir)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & _EXPOSED:
                os.chmod(path, stat.S_IMODE(st.st_mode) & ~_EXPOSED)


@dataclass(frozen=True)
class Exposure:
    path: Path
    mode: int
    why: str  # "readable by group", "owned by uid 1001", ...

    def describe(self) -> str:
        return f"{self.path} ({stat.filemode(self.mode)}) is {self.why}"


def _exposure(path: Path, st: os.stat_result) -> Exposure | None:
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid != os.geteuid():
        return Exposure(path, st.st_mode, f"owned by uid {st.st_uid}, not by you (uid {os.geteuid()})")
    who = [name for name, bits in (("group", stat.S_IRWXG), ("other users", stat.S_IRWXO)) if mode & bits]
    if not who:
        return None
    can = [verb for verb, bits in (("read", stat.S_IRGRP | stat.S_IROTH), ("write", stat.S_IWGRP | stat.S_IWOTH),
                                   ("enter", stat.S_IXGRP | stat.S_IXOTH)) if mode & bits]
    return Exposure(path, st.st_mode, f"open to {' and '.join(who)} ({'/'.join(can)})")


def find_exposures(data_dir: Path | str) -> list[Exposure]:
    """What in ``data_dir`` other users can reach: the dir itself, every file directly in
    it (databases, their -wal/-shm, the admin macaroon, key files) and the sim network
    file.  Subfolders are covered by the dir's own 0700, so they are not walked."""
    data_dir = Path(data_dir)
    try:
        st = data_dir.stat()
    except FileNotFoundError:
        return []
    found = []
    if (e := _exposure(data_dir, st)) is not None:
        found.append(e)
    names = set(SECRET_FILES) | {n + s for n in SECRET_FILES for s in _SQLITE_SIDE}
    try:
        names |= {entry.name for entry in os.scandir(data_dir) if entry.is_file(follow_symlinks=False)}
    except PermissionError:
        pass  # not ours to list: the owner check above has said so
    for name in sorted(names):
        path = data_dir / name
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            found.append(Exposure(path, st.st_mode, "a symbolic link (a secret file must be a plain file "
                                                    "in the data dir)"))
            continue
        if (e := _exposure(path, st)) is not None:
            found.append(e)
    return found


def fix_command(data_dir: Path | str, exposures: list[Exposure]) -> str:
    q = shlex.quote(str(data_dir))
    if any("owned by" in e.why or "symbolic link" in e.why for e in exposures):
        return (f"chown -R \"$(id -un)\" {q} && chmod -R go-rwx {q}   "
                "(as the owner; or move the foreign file out)")
    return f"chmod -R go-rwx {q}"


def check_private(data_dir: Path | str) -> None:
    """Raise :class:`DataDirExposed` when another local user could read or write the data."""
    exposures = find_exposures(data_dir)
    if not exposures:
        return
    lines = "\n".join("  " + e.describe() for e in exposures[:12])
    more = f"\n  ... and {len(exposures) - 12} more" if len(exposures) > 12 else ""
    raise DataDirExposed(
        f"the data dir is not private; other local users could read its secrets (preimages, token keys, "
        f"the admin macaroon, held-out sets) or change them:\n{lines}{more}\n"
        f"fix it with:\n  {fix_command(data_dir, exposures)}\n"
        "then start again (if it was exposed for long, consider rotating: delete admin.macaroon to mint a new one)")
