"""Real-world sets (``realworld-train``, ``realworld-dev``): ``labels.tsv`` -> samples.

Layout::

    ROOT/labels.tsv     tab-separated, header row; columns file, label, kind, generator
                        (required), has_audio, repository, note, ... (optional, kept in extra)
    ROOT/<file>         the videos, named by ``file`` relative to ROOT

Labels are per video: ``label`` is ``real`` or ``fake``, a real row has kind ``real`` and
generator ``none``. A fake is manipulated throughout, so it is labelled fake over
``[0, duration]`` (``fake_segments``, and ``visual_fake_segments``) with
``extra["whole_video_fake"] = True``, as FakeAVCeleb's whole-video fakes are. Its audio is
marked untouched (``audio_fake_segments = ()``): these generators animate or re-render the
face to a recorded voice, so "audio fake all along" (what None would mean for a whole-video
fake, see ``data.targets``) would teach the audio head a falsehood.

Splits (for training on ``realworld-train``; ``split_by="none"`` puts every clip in ``test``,
the right choice for a measuring-only set such as ``realworld-dev``):

- ``dev``: the fakes of the generator families in :data:`DEV_FAMILIES` (FLOAT, StyleSync,
  DeepFaceLive: one talking-head, one lip-sync, one face-swap family; 13 of the 73 fakes) and
  about the same share of the reals, chosen by :func:`real_rank` (a hash of the file name);
- ``train``: everything else.

:func:`logo_folds` gives leave-one-generator-out folds: each fold tests one generator family's
fakes (or, with ``n_groups``, a group of families) against a deterministic share of the reals
and trains on everything else, so pooling the folds' test scores scores every clip exactly
once with a model that never saw its generator.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avdf.datasets._common import RecordReader, container_duration, require_dir, strip_video_suffix
from avdf.errors import InputError, MetadataError
from avdf.types import Sample, Segment

NAME = "realworld"
SPLITS: tuple[str, ...] = ("train", "dev", "test")
LABELS_FILE = "labels.tsv"
REQUIRED_COLUMNS: tuple[str, ...] = ("file", "label", "kind", "generator")
REAL_GENERATOR = "none"
REAL_KIND = "real"
SPLIT_RULES: tuple[str, ...] = ("generator", "none")

# Generator names that are versions or fine-tunes of one model count as one family, so a
# leave-one-generator-out fold never trains on a sibling of its test generator. A name's
# parenthesised qualifier is dropped first ("ReSyncer (face swap)" -> "ReSyncer").
FAMILY_ALIASES: Mapping[str, str] = {
    "EchoMimicV3": "EchoMimic",
    "Hallo3": "Hallo",
    "JoyHallo": "Hallo",  # Hallo fine-tuned on Chinese speech
}
# The dev split's families: one per main kind, ~18% of realworld-train's fakes.
DEV_FAMILIES: frozenset[str] = frozenset({"FLOAT", "StyleSync", "DeepFaceLive"})
REAL_SALT = "avdf-realworld-v1"

_LABELS = {"real": 0, "fake": 1}
_YES_NO = {"yes": True, "no": False, "true": True, "false": False, "1": True, "0": False}


def generator_family(generator: str) -> str:
    """``"ReSyncer (face swap)"`` -> ``"ReSyncer"``; aliases merge versions of one model."""
    base = generator.split(" (", 1)[0].strip()
    return FAMILY_ALIASES.get(base, base)


def real_rank(file: str) -> int:
    """A stable pseudo-random rank for a real clip (first 8 bytes of a salted sha256)."""
    digest = hashlib.sha256(f"{REAL_SALT}:{file}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def source_file(sample: Sample) -> str:
    """The clip's file in the published folder (a re-encoded copy names its source)."""
    return str(sample.extra.get("reencoded_from") or sample.extra["file"])


def _real_key(sample: Sample) -> tuple[int, str]:
    # Re-encoded copies of one real clip (scripts/reencode_corpus.py) share their source's
    # rank, so they land in the same split and the same fold.
    source = source_file(sample)
    return real_rank(source), source


def load(
    root: str | Path,
    split: str | None = None,
    split_by: str = "generator",
    probe_durations: bool = True,
) -> list[Sample]:
    """The clips of ``split`` (None: all) in ``labels.tsv`` order.

    ``split_by="generator"`` assigns train/dev by generator family (module docstring);
    ``"none"`` puts every clip in ``test``.
    """
    if split_by not in SPLIT_RULES:
        raise ValueError(
            f"unknown split_by {split_by!r} (expected one of {', '.join(SPLIT_RULES)})"
        )
    root = require_dir(root)
    path = root / LABELS_FILE
    samples = [
        _parse_row(path, root, name, row, probe_durations) for name, row in read_labels(path)
    ]
    if split_by == "generator":
        samples = _assign_splits(samples)
    return [s for s in samples if split is None or s.split == split]


def read_labels(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """``(record name for errors, row)`` for every non-empty row of a ``labels.tsv``."""
    if not path.is_file():
        raise InputError(path, "labels file not found")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = [h.strip() for h in next(reader, [])]
            if not header:
                raise MetadataError(path, "header", "-", "empty file")
            for column in REQUIRED_COLUMNS:
                if column not in header:
                    raise MetadataError(path, "header", column, "missing column")
            seen: set[str] = set()
            for line_number, values in enumerate(reader, start=2):
                if not any(v.strip() for v in values):
                    continue
                if len(values) > len(header):
                    name = f"line {line_number} ({values[0].strip() or '?'})"
                    raise MetadataError(
                        path, name, "-", f"{len(values)} fields, header has {len(header)}"
                    )
                row = {h: v.strip() for h, v in zip(header, values, strict=False)}
                name = f"line {line_number} ({row.get('file') or '?'})"
                if row.get("file") in seen:
                    raise MetadataError(path, name, "file", f"{row['file']!r} is listed twice")
                seen.add(row.get("file", ""))
                yield name, row
    except UnicodeDecodeError as e:
        raise MetadataError(path, "-", "-", "not UTF-8 text") from e


def _parse_row(path: Path, root: Path, name: str, row: Mapping[str, str], probe: bool) -> Sample:
    # Empty cells are missing values: RecordReader reports "missing" for them.
    r = RecordReader(path, {k: v for k, v in row.items() if v != ""}, name)
    file = r.relative_file("file")
    label = _LABELS[r.choice("label", tuple(_LABELS))]
    kind, generator = r.string("kind"), r.string("generator")
    if label == 0 and kind != REAL_KIND:
        raise r.error("kind", f"a real clip must have kind {REAL_KIND!r}, got {kind!r}")
    if label == 0 and generator != REAL_GENERATOR:
        raise r.error("generator", f"a real clip must have generator 'none', got {generator!r}")
    if label == 1 and kind == REAL_KIND:
        raise r.error("kind", "a fake clip cannot have kind 'real'")
    if label == 1 and generator == REAL_GENERATOR:
        raise r.error("generator", "a fake clip must name its generator")
    has_audio = None
    if r.has("has_audio"):
        value = r.string("has_audio").lower()
        if value not in _YES_NO:
            raise r.error("has_audio", f"expected yes/no, got {row['has_audio']!r}")
        has_audio = _YES_NO[value]
    video = root / file
    if not video.is_file():
        raise r.error("file", f"no video {file!r} under {root}")

    # Other columns are kept as they are; the repository's ``path`` would read like ours.
    extra: dict[str, Any] = {
        ("source_path" if key == "path" else key): value
        for key, value in row.items()
        if key != "label" and value != ""
    }
    extra.update(file=file, kind=kind, generator=generator, has_audio=has_audio)
    extra["family"] = generator_family(generator) if label else REAL_GENERATOR
    duration = container_duration(video) if probe else None
    fake_segments: tuple[Segment, ...] = ()
    visual: tuple[Segment, ...] | None = ()
    if label == 1:
        extra["whole_video_fake"] = True
        # Without a duration the data layer labels the whole clip (visual None = "all along").
        fake_segments = (Segment(0.0, duration),) if duration else ()
        visual = fake_segments or None
    return Sample(
        id=strip_video_suffix(file),
        dataset=NAME,
        split="test",
        path=str(video),
        duration=duration,
        label=label,
        fake_segments=fake_segments,
        audio_fake_segments=(),
        visual_fake_segments=visual,
        extra=extra,
    )


def _with_split(sample: Sample, split: str) -> Sample:
    d = sample.to_dict()
    d["split"] = split
    return Sample.from_dict(d)


def _real_shares(reals: Sequence[Sample], n_groups: int) -> dict[str, int]:
    """Real clip id -> group in ``range(n_groups)``: source clips dealt round-robin in
    :func:`real_rank` order, so every group gets ``n_sources // n_groups`` or one more."""
    sources = sorted({_real_key(s) for s in reals})
    group = {source: i % n_groups for i, source in enumerate(sources)}
    return {s.id: group[_real_key(s)] for s in reals}


def _assign_splits(samples: list[Sample]) -> list[Sample]:
    fakes = [s for s in samples if s.label == 1]
    reals = [s for s in samples if s.label == 0]
    n_dev_fakes = sum(s.extra["family"] in DEV_FAMILIES for s in fakes)
    # The same share of reals as of fakes, picked by rank: dev keeps both classes.
    sources = sorted({_real_key(s) for s in reals})
    n_dev_reals = round(len(sources) * n_dev_fakes / len(fakes)) if fakes else 0
    dev_sources = set(sources[:n_dev_reals])
    dev_reals = {s.id for s in reals if _real_key(s) in dev_sources}
    out = []
    for s in samples:
        dev = s.extra["family"] in DEV_FAMILIES if s.label == 1 else s.id in dev_reals
        out.append(_with_split(s, "dev" if dev else "train"))
    return out


@dataclass(frozen=True)
class Fold:
    """One leave-generator-out fold: the fakes of ``family`` (one family, or several joined
    by ``" + "``) and a share of the reals are ``test``; every other clip is ``train``."""

    family: str
    train: tuple[Sample, ...]
    test: tuple[Sample, ...]

    @property
    def families(self) -> tuple[str, ...]:
        return tuple(self.family.split(" + "))


def _split_copy(sample_id: str) -> tuple[str, int]:
    """``rwt-004~2`` -> ``("rwt-004", 2)``, ``rwt-004`` -> ``("rwt-004", 0)``."""
    clip, sep, k = sample_id.rpartition("~")
    return (clip, int(k)) if sep and k.isdigit() else (sample_id, 0)


def copy_index(sample: Sample) -> int:
    """Which re-encoded copy a clip is (``scripts/reencode_corpus.py`` writes ``rwt-004``,
    ``rwt-004~1``, ...): ``rwt-004~2`` -> 2, ``rwt-004`` -> 0. Held-out scoring counts one
    copy per clip."""
    return _split_copy(sample.id)[1]


def source_clip(sample: Sample) -> str:
    """The id of the clip a re-encoded copy was made from (``rwt-004~2`` -> ``rwt-004``)."""
    return _split_copy(sample.id)[0]


def logo_folds(samples: Sequence[Sample], n_groups: int | None = None) -> list[Fold]:
    """Leave-one-generator-out folds over the labelled ``samples``, one per fake family
    (sorted by name); with ``n_groups``, the sorted families are dealt round-robin into that
    many groups and each fold holds one group out (fewer training runs for the same
    "never saw this generator" guarantee). Reals are dealt to the folds by
    :func:`real_rank`, so each real clip is in exactly one test fold and the folds' test sets
    partition the samples."""
    labelled = [s for s in samples if s.label is not None]
    families = sorted({str(s.extra["family"]) for s in labelled if s.label == 1})
    if not families:
        raise ValueError("leave-one-generator-out folds need at least one fake clip")
    n = len(families) if n_groups is None else n_groups
    if not 1 <= n <= len(families):
        raise ValueError(f"n_groups must be 1..{len(families)} (one per family at most), got {n}")
    groups = [families[i::n] for i in range(n)]
    share = _real_shares([s for s in labelled if s.label == 0], n)
    folds = []
    for i, group in enumerate(groups):

        def in_test(s: Sample, i: int = i, group: list[str] = group) -> bool:
            return s.extra["family"] in group if s.label == 1 else share[s.id] == i

        folds.append(
            Fold(
                " + ".join(group),
                tuple(s for s in labelled if not in_test(s)),
                tuple(s for s in labelled if in_test(s)),
            )
        )
    return folds
