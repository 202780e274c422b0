"""Atomic outputs: a file appears complete under its final name or not at all.

Everything is written to a unique temporary sibling (same folder, so the rename stays on one
file system), flushed to disk, then renamed over the target with ``os.replace``; on any
failure the temporary file is removed and an earlier file at the target is untouched.
The temporary file is created with ``open(..., "x")`` rather than ``mkstemp`` so outputs get
the usual umask permissions (mkstemp's 0600 would make reports private).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from avdf.errors import OutputExistsError


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | Path, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through (for writers that need a file name,
    such as PyAV); it replaces ``path`` when the block succeeds. ``force=False`` refuses an
    existing ``path`` with :class:`OutputExistsError`."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", force: bool = True, **kwargs: Any
) -> Iterator[IO]:
    """Open a file for writing that appears at ``path`` only once the block succeeds."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes new files; mode {mode!r} is not supported")
    with atomic_path(path, force) as tmp:
        with open(tmp, "x" + mode[1:], **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_text_atomic(path: str | Path, text: str, force: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_open(path, "w", force=force, encoding="utf-8", newline="") as f:
        f.write(text)
    return Path(path)
