"""Writing folders safely: a folder appears under its name only when whole (written to a hidden
sibling, synced, renamed), one writer at a time (a lock file beside it), and a destination that
would take its own source with it when replaced is refused before anything is written."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: the lock file's existence is the lock
    fcntl = None


def sync_folder(folder: Path) -> None:
    """Flush every file in `folder`, then the folder itself, to disk: a rename that survives a
    crash must not point at files whose contents did not."""
    for f in folder.iterdir():
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # folders cannot be opened on every platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_sibling(dest: Path) -> Path:
    """A new hidden folder beside `dest` (same file system, so renaming it onto `dest` is atomic)."""
    return Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp_{dest.name}."))


def replace_folder(tmp: Path, dest: Path) -> None:
    """Put the whole folder `tmp` at `dest`, replacing what was there: the old folder is moved
    aside first and removed only after the new one has its name, so `dest` is never missing a
    whole version for longer than one rename."""
    old = None
    if dest.exists():
        old = dest.parent / f".old_{dest.name}.{os.getpid()}"
        os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except OSError:
        if old is not None:
            os.rename(old, dest)
        raise
    _sync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def destination_lock(dest: Path, what: str = "framecast"):
    """Hold `.<name>.lock` beside `dest` while writing it; a second writer is refused at once."""
    lock = dest.parent / f".{dest.name}.lock"
    busy = ValueError(f"another {what} is writing '{dest}' now (it holds '{lock}'); wait for it to finish, or write elsewhere")
    flags = os.O_CREAT | os.O_RDWR | (0 if fcntl else os.O_EXCL)
    try:
        fd = os.open(lock, flags, 0o644)
    except FileExistsError:
        raise busy from None
    held = fcntl is None  # an exclusive create is already the lock
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise busy from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder finished and removed it under us
                raise busy
            held = True
        yield
    finally:
        if held:  # removed while still held: a writer that opened it before finds another file
            with contextlib.suppress(OSError):
                os.unlink(lock)
        os.close(fd)


def refuse_overlap(dest: Path, sources: dict[str, Path], verb: str) -> None:
    """`dest` is replaced whole, so it must be none of `sources` (name -> folder), no folder
    above one of them, and nothing inside one of them."""
    d = dest.resolve()
    resolved = {name: (src, src.resolve()) for name, src in sources.items()}
    for name, (src, s) in resolved.items():
        if d == s or d in s.parents:
            raise ValueError(f"cannot {verb} into '{dest}': replacing it would delete the {name} '{src}'; give a folder outside it")
    for name, (src, s) in resolved.items():
        if s in d.parents:
            raise ValueError(f"cannot {verb} into '{dest}': it is inside the {name} '{src}'; give a folder outside it")
