"""Errors that users see as one line: the file and the cause, never a traceback."""

from __future__ import annotations

from pathlib import Path


class AvdfError(Exception):
    """Base class for expected failures; the CLI prints ``str(error)`` and moves on."""


class InputError(AvdfError):
    """A bad input file (missing, not a video, corrupt, no usable stream, ...)."""

    def __init__(self, path: str | Path, cause: str) -> None:
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")


class MetadataError(AvdfError):
    """Malformed dataset metadata: names the file, the record and the field."""

    def __init__(self, path: str | Path, record: str, field: str, cause: str) -> None:
        self.path, self.record, self.field, self.cause = str(path), record, field, cause
        super().__init__(f"{self.path}: record {record}: field '{field}': {cause}")


class OutputExistsError(AvdfError):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: already exists (use --force to overwrite)")


def one_line(path: str | Path, error: BaseException) -> str:
    """The line a batch command prints for a file that failed: ``path: cause``.

    avdf's own errors already name their file; anything else (a decoder or container error)
    is prefixed with the path and its type, and cut to its first line so a batch report stays
    one line per file.
    """
    if isinstance(error, AvdfError):
        return str(error)
    text = str(error).strip().splitlines()
    return f"{path}: {type(error).__name__}: {text[0] if text else 'unexpected error'}"
