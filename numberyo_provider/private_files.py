"""Files that hold phone numbers in clear are born private: 0600, directories 0700.

The ledger, landed Parquet and the DuckDB warehouse hold numbers in clear, so they are created with
these modes instead of the usual 0644/0755. The process umask still applies on top, so a stricter
umask (``077``, ``277``) gives what it says. Files and directories that already exist are never
chmod'ed: their mode is the user's decision. The process umask itself is never changed here (a
library shares its process with other threads; see :func:`private_umask` for a CLI).

DuckDB creates its ``.wal`` and spill files itself, with ``0666`` minus the umask; only the umask
(or a private directory) protects those, see ``docs/privacy.md``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700
#: Bits a CLI run adds to the umask: nothing it creates is readable by group or others.
PRIVATE_UMASK = 0o077
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def make_private_dirs(path: str | os.PathLike[str]) -> None:
    """``mkdir -p`` where every directory created is 0700 (minus the umask); existing ones are
    left as they are."""
    missing: list[Path] = []
    current = Path(path).expanduser().absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, DIR_MODE)


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 (minus the umask) unless it exists; True if this call
    created it. A driver that then opens the path keeps the mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def create_private_with(path: str, create: Callable[[str], None]) -> bool:
    """Have ``create(scratch_path)`` build the file (for drivers that refuse an empty file, such as
    DuckDB) inside a fresh 0700 directory beside ``path``, give it the private mode, then link it
    into place unless something exists there already. True if this call created ``path``.

    Nobody else can open the new file before it is private: it is born in a directory only we can
    enter. Where the filesystem has no hard links it is created in place and chmod'ed at once,
    before anything is written to it.
    """
    target = Path(path).absolute()
    if target.exists():
        return False
    make_private_dirs(target.parent)
    scratch = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent)
    try:
        built = os.path.join(scratch, target.name)
        create(built)
        os.chmod(built, _private_mode(scratch))
        try:
            os.link(built, target)
        except FileExistsError:
            return False  # another process created it meanwhile: use theirs
        except OSError:  # no hard links here
            if target.exists():
                return False
            create(str(target))
            os.chmod(target, _private_mode(scratch))
        return True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def private_umask() -> Iterator[None]:
    """Add :data:`PRIVATE_UMASK` to the process umask (a stricter one stays) for the block.

    For a command's run only (``numberyo sync``/``check``), entered before it starts threads: the
    umask is process-wide, and it is the only way to reach files a driver creates by itself
    (DuckDB's ``.wal`` and spill files). Library code never calls it.
    """
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(old)


def _private_mode(directory: str) -> int:
    """0600 minus the current umask, read without changing the umask (which is process-wide)."""
    probe = os.path.join(directory, ".mode-probe")
    create_private_file(probe)
    try:
        return os.stat(probe).st_mode & 0o777
    finally:
        os.unlink(probe)


__all__ = [
    "DIR_MODE",
    "FILE_MODE",
    "PRIVATE_UMASK",
    "create_private_file",
    "create_private_with",
    "make_private_dirs",
    "private_umask",
]
