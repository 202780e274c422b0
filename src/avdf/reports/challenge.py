"""The AV-Deepfake1M challenge formats, read and written.

* Localization: one JSON object ``{file: [[score, start, end], ...], ...}`` with the proposals
  of each video sorted by descending score (the official AP matches labels in list order, so
  the order is part of the result).
* Detection: text lines ``file;score``.

Writers go through a temporary file and an atomic rename, so an interrupted run never leaves
a half-written file behind. Readers validate and raise one-line errors naming the file and the
entry. The localization reader has a fast path for corpus-sized files (100,000 videos x 100
proposals parse in seconds instead of the ~30 s of ``json.load``); anything it does not
recognise falls back to ``json`` and its precise error messages.
"""

from __future__ import annotations

import io
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from avdf.atomic import write_text_atomic
from avdf.errors import InputError
from avdf.types import Prediction


def localization_from_predictions(predictions: Iterable[Prediction]) -> dict[str, np.ndarray]:
    """``{video_id: (K, 3) [score, start, end]}`` in seconds, sorted by descending score."""
    out: dict[str, np.ndarray] = {}
    for p in predictions:
        rows = np.array([(s.score, s.start, s.end) for s in p.segments], dtype=np.float64)
        out[p.video_id] = rows.reshape(-1, 3)
    return out


def detection_from_predictions(predictions: Iterable[Prediction]) -> dict[str, float]:
    """``{video_id: video-level fake score}``."""
    return {p.video_id: float(p.score) for p in predictions}


def write_localization(
    proposals: Mapping[str, Any], path: str | Path, decimals: int | None = None
) -> None:
    """Write ``{file: [[score, start, end], ...]}``, each list sorted by descending score.

    ``decimals`` rounds the numbers to keep corpus-sized files small; None keeps full precision.
    """
    content: dict[str, list[list[float]]] = {}
    for video, rows in proposals.items():
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
        arr = arr[np.argsort(-arr[:, 0], kind="stable")]  # (K, 3) by descending score
        if decimals is not None:
            arr = np.round(arr, decimals)
        content[str(video)] = arr.tolist()
    write_text_atomic(path, json.dumps(content, separators=(",", ":"), ensure_ascii=False))


def write_detection(scores: Mapping[str, float], path: str | Path) -> None:
    """Write ``file;score`` lines (the challenge's detection format)."""
    lines = []
    for video, score in scores.items():
        if ";" in str(video) or "\n" in str(video):
            raise ValueError(f"video name {video!r} cannot be written in the 'file;score' format")
        lines.append(f"{video};{float(score)!r}\n")
    write_text_atomic(path, "".join(lines))


def read_detection(path: str | Path) -> dict[str, float]:
    """Read ``file;score`` lines; blank lines are skipped, anything else must parse."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read detection file ({e})") from None
    out: dict[str, float] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(";")
        if not sep or not name:
            raise InputError(path, f"line {number}: expected 'file;score', got {line!r}")
        try:
            score = float(value)
        except ValueError:
            raise InputError(
                path, f"line {number} ({name}): score {value!r} is not a number"
            ) from None
        if not math.isfinite(score):
            raise InputError(path, f"line {number} ({name}): score {value!r} is not finite")
        if name in out:
            raise InputError(path, f"line {number}: '{name}' appears twice")
        out[name] = score
    return out


def read_localization(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``{file: [[score, start, end], ...]}`` into ``{file: (K, 3) float64}``.

    The list order of each video is kept (it is part of the official metric). Rows must be
    three finite numbers with ``start <= end``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read localization file ({e.strerror or e})") from None
    fast = _read_localization_fast(raw)
    if fast is None:
        out = _read_localization_json(path, raw)
        _validate_rows(path, out)
        return out
    out, numbers = fast
    if _bad_rows(numbers).any():  # one vectorised check; the per-video pass names the entry
        _validate_rows(path, out)
    return out


def _read_localization_json(path: Path, raw: bytes) -> dict[str, np.ndarray]:
    try:
        content = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON ({e})") from None
    if not isinstance(content, dict):
        raise InputError(path, "expected a JSON object {file: [[score, start, end], ...]}")
    out: dict[str, np.ndarray] = {}
    for video, rows in content.items():
        if not isinstance(rows, list):
            raise InputError(path, f"entry '{video}': expected a list of [score, start, end]")
        for i, row in enumerate(rows):
            if (
                not isinstance(row, list)
                or len(row) != 3
                or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in row)
            ):
                raise InputError(
                    path,
                    f"entry '{video}': proposal {i}: expected [score, start, end], got {row!r}",
                )
        out[video] = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    return out


def _bad_rows(rows: np.ndarray) -> np.ndarray:
    """(K,) True where a [score, start, end] row is not finite or ends before it starts."""
    return ~np.isfinite(rows).all(axis=1) | (rows[:, 2] < rows[:, 1])


def _validate_rows(path: Path, content: Mapping[str, np.ndarray]) -> None:
    for video, rows in content.items():
        bad = _bad_rows(rows)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cause = "is not finite" if not np.isfinite(rows[i]).all() else "ends before it starts"
            raise InputError(path, f"entry '{video}': proposal {i} {rows[i].tolist()} {cause}")


_KEY_VALUE_GAP = re.compile(rb"\s*:\s*")


def _read_localization_fast(raw: bytes) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """Parse the common case with numpy; None whenever the layout is not plainly recognised.

    Keys are the only strings in the format, so the quote positions delimit them; every ``]``
    becomes a line break (one line per proposal) and ``np.loadtxt`` parses all the numbers at
    once (it rejects lines that do not hold three numbers). Consistency checks on bracket and
    row counts send anything unusual (escapes, nesting, other types) to the ``json`` path. Returns the per-video views and the
    (P, 3) array they share.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    text_start = raw.lstrip()[:1]
    if text_start != b"{" or b"\\" in raw or not raw.rstrip().endswith(b"}"):
        return None
    quotes = np.flatnonzero(buf == ord('"'))
    if len(quotes) % 2:
        return None
    key_start, key_end = quotes[0::2], quotes[1::2]  # key bytes are (start, end) exclusive
    n = len(key_start)
    if n == 0:
        return ({}, np.zeros((0, 3))) if raw.strip()[1:-1].strip() == b"" else None
    for i in range(n):
        gap = _KEY_VALUE_GAP.match(raw, int(key_end[i]) + 1)
        if gap is None or raw[gap.end() : gap.end() + 1] != b"[":
            return None
    # Blank the keys first: a file name may itself contain brackets.
    clean = buf.copy()
    for s, e in zip(key_start.tolist(), key_end.tolist(), strict=True):
        clean[s : e + 1] = ord(" ")
    bounds = np.append(key_end, len(raw))  # value i lies in [bounds[i], bounds[i + 1])
    n_open = np.diff(np.searchsorted(np.flatnonzero(clean == ord("[")), bounds))
    n_close = np.diff(np.searchsorted(np.flatnonzero(clean == ord("]")), bounds))
    if not np.array_equal(n_open, n_close) or (n_open < 1).any():
        return None
    rows_per_video = n_open - 1  # the outer list holds one inner list per proposal
    table = np.arange(256, dtype=np.uint8)
    table[list(b"[,:{}")] = ord(" ")
    table[ord("]")] = ord("\n")  # one line per proposal
    total = int(rows_per_video.sum())
    try:
        # numpy's C parser (numpy >= 1.23) reads ~30 M numbers in ~8 s; json.load takes ~30 s.
        with warnings.catch_warnings():  # a file without any proposal is not worth a warning
            warnings.simplefilter("ignore", UserWarning)
            numbers = np.loadtxt(io.BytesIO(table[clean].tobytes()), dtype=np.float64, ndmin=2)
    except ValueError:
        return None
    if total == 0 and numbers.size == 0:
        numbers = np.zeros((0, 3))
    if numbers.shape != (total, 3):
        return None
    offsets = np.concatenate(([0], np.cumsum(rows_per_video)))
    out: dict[str, np.ndarray] = {}
    try:
        for i in range(n):
            name = raw[key_start[i] + 1 : key_end[i]].decode("utf-8")
            out[name] = numbers[offsets[i] : offsets[i + 1]]
    except UnicodeDecodeError:
        return None
    return out, numbers
