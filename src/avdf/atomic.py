"""Atomic outputs: a file appears complete under its final name or not at all.

Everything is written to a unique temporary sibling (same folder, so the rename stays on one
file system), flushed to disk, then renamed over the target with ``os.replace``; on any
failure the temporary file is removed and an earlier file at the target is untouched.
The temporary file is created with ``open(..., "x")`` rather than ``mkstemp`` so outputs get
the usual umask permissions (mkstemp's 0600 would make reports private).

A run killed mid-write (SIGKILL, out of memory, a cluster time limit) cannot remove its
temporary file. Its name, ``.<name>.<pid>@<host>.<hex>.tmp``, says which process on which
machine wrote it, so the next write of the same target removes the ones whose process is
gone (:func:`remove_stale_temporaries`); other machines' files on a shared file system are
left alone, since their processes cannot be checked from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from avdf.errors import OutputExistsError


def _host_tag() -> str:
    # Short and free of dots, whatever the host name looks like.
    return hashlib.sha1(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def temporary_sibling(path: Path) -> Path:
    """A unique temporary name next to ``path`` that records this process and machine."""
    tag = f"{os.getpid()}@{_host_tag()}"
    return path.with_name(f".{path.name}.{tag}.{uuid.uuid4().hex[:8]}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove temporary siblings of ``path`` left by processes of this machine that are no
    longer running (also the older ``.<name>.<pid>.<hex>.tmp`` and ``<name>.tmp-<pid>`` forms);
    return what was removed. Live writers' files and other machines' files stay."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    name = re.escape(path.name)
    patterns = (
        re.compile(rf"\.{name}\.(?P<pid>\d+)(?:@(?P<host>[0-9a-f]{{8}}))?\.[0-9a-f]{{8}}\.tmp"),
        re.compile(rf"{name}\.tmp-(?P<pid>\d+)"),  # CacheWriter's name before it used this one
    )
    removed = []
    for entry in path.parent.iterdir():
        match = next((m for p in patterns if (m := p.fullmatch(entry.name))), None)
        if match is None:
            continue
        host = match.groupdict().get("host")
        if host not in (None, _host_tag()) or _pid_alive(int(match["pid"])):
            continue
        entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | Path, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through (for writers that need a file name,
    such as PyAV); it replaces ``path`` when the block succeeds. ``force=False`` refuses an
    existing ``path`` with :class:`OutputExistsError`."""
    path = Path(path)
    if path.exists() and not force:
        raise OutputExistsError(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
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
