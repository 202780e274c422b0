"""``avdf evaluate``: score predictions with the official metrics.

Mode (a), files only::

    avdf evaluate --predictions loc.json [--predictions det.txt] --labels metadata.json \
        [--metric official|activitynet] [--preset lavdf|avdeepfake1m] [--fps 25] [--json out.json]

``--labels`` is a LAV-DF ``metadata.json`` / AV-Deepfake1M ``*_metadata.json`` (a list of records
with ``file`` and ``fake_periods`` or ``fake_segments``; a TVIL-style dict of such records works
too) or a JSONL manifest of avdf Samples. A ``.json`` prediction file is the localization format
``{file: [[score, start, end], ...]}``, anything else the detection format ``file;score``.

Mode (b), run a checkpoint over a dataset split (``avdf.evaluation.evaluate_dataset``), or
over a split of a JSONL manifest such as a source-disjoint fold::

    avdf evaluate --dataset lavdf --root DIR --checkpoint CKPT [--split test] \
        [--cache DIR] [--subset full|visual|audio] [--out DIR] [--force] [--json out.json]
    avdf evaluate --manifest fold0.jsonl --checkpoint CKPT --split test ...  # a fold

Features come from ``--cache`` (``avdf preprocess`` output) where a complete cache made with
the checkpoint's MediaSpec exists, else from the video. The dataset's standard table is
printed (LAV-DF / AV-Deepfake1M: AP and AR at the dataset's thresholds plus video AUC/ACC;
FakeAVCeleb: ACC/AUC/AP of each fake category against the real one); ``--out`` receives the
predictions in the challenge formats. Unreadable videos are listed and the rest scored; the
exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from avdf.errors import AvdfError, InputError, MetadataError, OutputExistsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    files = parser.add_argument_group("score prediction files")
    files.add_argument(
        "--predictions",
        action="append",
        metavar="FILE",
        help="localization JSON {file: [[score, start, end], ...]} and/or detection "
        "'file;score' lines; repeat for both",
    )
    files.add_argument(
        "--labels",
        metavar="FILE",
        help="LAV-DF metadata.json, AV-Deepfake1M *_metadata.json or an avdf JSONL manifest",
    )
    files.add_argument(
        "--fps",
        type=float,
        default=None,
        help="proposal times are frames at this rate (default: seconds)",
    )
    dataset = parser.add_argument_group("run a checkpoint over a dataset")
    dataset.add_argument("--dataset", metavar="NAME", help="lavdf, avdeepfake1m, tvil, ...")
    dataset.add_argument("--root", metavar="DIR", help="dataset root folder")
    dataset.add_argument(
        "--manifest",
        metavar="FILE",
        help="JSONL manifest (e.g. a source-disjoint fold) instead of --dataset/--root",
    )
    dataset.add_argument("--checkpoint", metavar="CKPT", help="model checkpoint")
    dataset.add_argument("--split", default="test", help="dataset split (default: test)")
    dataset.add_argument(
        "--cache", metavar="DIR", help="feature cache from `avdf preprocess` (used when complete)"
    )
    dataset.add_argument(
        "--subset",
        choices=("full", "visual", "audio"),
        default="full",
        help="LAV-DF evaluation subset (default: full)",
    )
    dataset.add_argument(
        "--out", metavar="DIR", help="write localization.json and detection.txt here"
    )
    parser.add_argument(
        "--metric",
        choices=("official", "activitynet"),
        default="official",
        help="localization AP definition (default: official LAV-DF / AV-Deepfake1M)",
    )
    parser.add_argument(
        "--preset",
        choices=("lavdf", "avdeepfake1m"),
        default=None,
        help="thresholds to report (default: the dataset's own; lavdf for files)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="detection score threshold for accuracy/precision/recall/F1 (default: the "
        "checkpoint's tuned threshold with --dataset/--manifest, else 0.5)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the numbers as JSON here")
    parser.add_argument(
        "--force", action="store_true", help="overwrite the --json output and --out files"
    )


def _segments(path: Path, record: Mapping[str, Any], name: str) -> list[list[float]]:
    key = "fake_periods" if "fake_periods" in record else "fake_segments"
    value = record.get(key)
    if value is None:
        raise MetadataError(path, name, "fake_periods", "missing (or fake_segments)")
    if not isinstance(value, list):
        raise MetadataError(path, name, key, f"expected a list of [start, end], got {value!r}")
    out = []
    for pair in value:
        ok = isinstance(pair, list) and len(pair) == 2
        ok = ok and all(isinstance(x, int | float) and not isinstance(x, bool) for x in pair)
        if not ok or not all(math.isfinite(x) for x in pair) or pair[1] < pair[0]:
            raise MetadataError(path, name, key, f"bad segment {pair!r}")
        out.append([float(pair[0]), float(pair[1])])
    return out


def _video_label(path: Path, record: Mapping[str, Any], name: str, n_segments: int) -> int:
    """1 fake / 0 real: ``label`` if given, else ``n_fakes``, else whether segments exist."""
    for field in ("label", "n_fakes"):
        value = record.get(field)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise MetadataError(path, name, field, f"expected a number, got {value!r}")
            return int(value > 0)
    return int(n_segments > 0)


def read_labels(path: str | Path) -> tuple[dict[str, list[list[float]]], dict[str, int]]:
    """``({file: [[start, end], ...]}, {file: 0/1})`` in file order from a label file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read labels ({e})") from None
    segments: dict[str, list[list[float]]] = {}
    labels: dict[str, int] = {}
    if path.suffix == ".jsonl":
        from avdf.types import Sample

        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                sample = Sample.from_dict(json.loads(line))
            except (ValueError, KeyError, TypeError) as e:
                raise MetadataError(path, f"line {number}", "sample", str(e)) from None
            segments[sample.id] = [s.to_list() for s in sample.fake_segments]
            label = sample.label if sample.label is not None else int(bool(sample.fake_segments))
            labels[sample.id] = int(label)
        return segments, labels
    try:
        content = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON ({e})") from None
    if isinstance(content, dict):  # TVIL: {video_id: record}
        content = list(content.values())
    if not isinstance(content, list):
        raise InputError(path, "expected a list of records with 'file' and 'fake_periods'")
    for index, record in enumerate(content):
        if not isinstance(record, dict) or not isinstance(record.get("file"), str):
            raise MetadataError(path, f"#{index}", "file", "missing or not a string")
        name = record["file"]
        segments[name] = _segments(path, record, name)
        labels[name] = _video_label(path, record, name, len(segments[name]))
    return segments, labels


def _percent(value: float) -> str:
    return "n/a" if value != value else f"{100 * value:.2f}"


def _markdown(results: Mapping[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    loc = results.get("localization")
    if loc is not None:
        for t, v in loc.ap.items():
            rows.append((f"AP@{t:g}", _percent(v)))
        if loc.metric == "activitynet":
            rows.append(("mAP@[0.5:0.95]", _percent(loc.mean_ap)))
        for n, v in loc.ar.items():
            rows.append((f"AR@{n}", _percent(v)))
    det = results.get("detection")
    if det is not None:
        rows += [("AUC", _percent(det.auc)), ("AP (video)", _percent(det.ap))]
        rows += [("EER", _percent(det.eer)), (f"ACC@{det.threshold:g}", _percent(det.accuracy))]
        rows += [("precision", _percent(det.precision)), ("recall", _percent(det.recall))]
        rows.append(("F1", _percent(det.f1)))
    lines = ["| metric | value (%) |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    per_category = results.get("per_category")
    if per_category:
        # FakeAVCeleb: each fake category against the real videos (A).
        lines += ["", f"| category vs A | ACC@{next(iter(per_category.values())).threshold:g} "
                  "| AUC | AP |", "|---|---|---|---|"]  # fmt: skip
        for category, m in per_category.items():
            values = " | ".join(_percent(v) for v in (m.accuracy, m.auc, m.ap))
            lines.append(f"| {category} | {values} |")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    """Metric objects -> dicts, recursively (the --json payload)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _evaluate_files(args: argparse.Namespace) -> dict[str, Any]:
    from avdf.metrics import detection_metrics, evaluate_localization
    from avdf.reports.challenge import read_detection, read_localization

    if not args.predictions or not args.labels:
        raise AvdfError("give --predictions FILE and --labels FILE (or --dataset ... mode)")
    segments, labels = read_labels(args.labels)
    results: dict[str, Any] = {}
    for file in args.predictions:
        if Path(file).suffix == ".json":
            proposals = read_localization(file)
            ignored = sum(1 for v in proposals if v not in segments)
            if ignored:
                print(
                    f"note: {file}: {ignored} videos are not in the labels (ignored)",
                    file=sys.stderr,
                )
            preset = args.preset or "lavdf"
            loc = evaluate_localization(proposals, segments, preset, args.metric, args.fps)
            if loc.videos_without_proposals:
                print(
                    f"note: {file}: {loc.videos_without_proposals} labelled videos have no "
                    "proposals; their fake segments count as misses",
                    file=sys.stderr,
                )
            results["localization"] = loc
        else:
            scores = read_detection(file)
            missing = [v for v in labels if v not in scores]
            if missing:
                raise InputError(
                    file, f"no score for {len(missing)} labelled videos, e.g. '{missing[0]}'"
                )
            threshold = 0.5 if args.threshold is None else args.threshold
            results["detection"] = detection_metrics(scores, labels, threshold)
    return results


def _evaluate_dataset(args: argparse.Namespace) -> dict[str, Any]:
    needed = ("checkpoint",) if args.manifest else ("root", "checkpoint")
    missing = [f"--{k}" for k in needed if not getattr(args, k)]
    if missing:
        raise AvdfError(f"--{'manifest' if args.manifest else 'dataset'} needs "
                        f"{' and '.join(missing)}")  # fmt: skip
    # Imported here: it loads torch, which `avdf --help` and the file mode do not need.
    from avdf.evaluation.dataset import evaluate_dataset

    return evaluate_dataset(
        dataset=args.dataset,
        root=args.root,
        checkpoint=args.checkpoint,
        split=args.split,
        metric=args.metric,
        preset=args.preset,
        threshold=args.threshold,
        cache_dir=args.cache,
        subset=args.subset,
        predictions_out=args.out,
        progress=sys.stderr.isatty(),
        force=args.force,
        manifest=args.manifest,
    )


def run(args: argparse.Namespace) -> int:
    try:
        out = Path(args.json) if args.json else None
        if out is not None and out.exists() and not args.force:
            raise OutputExistsError(out)
        on_dataset = bool(args.dataset or args.manifest)
        results = _evaluate_dataset(args) if on_dataset else _evaluate_files(args)
        failed = list(results.get("failed", ()))
        scored = {k for k in ("localization", "detection") if k in results}
        if scored:
            print(_markdown(results))
        elif not on_dataset:
            raise AvdfError("nothing to score")
        if on_dataset:
            cached = f", {results['n_cached']} from the cache" if args.cache else ""
            print(
                f"{results['n_scored']} of {results['n_videos']} videos scored{cached}"
                + ("" if scored else " (no labels in this split: predictions only)"),
                file=sys.stderr,
            )
        if out is not None:
            from avdf.atomic import write_text_atomic

            write_text_atomic(out, json.dumps(_jsonable(results), indent=2) + "\n")
        for line in failed:
            print(f"avdf evaluate: failed: {line}", file=sys.stderr)
        if failed:
            print(f"avdf evaluate: {len(failed)} videos failed", file=sys.stderr)
            return 1
    except (AvdfError, ValueError) as e:
        print(f"avdf evaluate: {e}", file=sys.stderr)
        return 1
    return 0
