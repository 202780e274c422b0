"""Video AUC of a checkpoint on a labelled real-world folder: overall, per kind, per generator,
and how much re-encoding a test video moves its score.

Usage: python scripts/eval_realworld.py FOLDER --cache DIR [--checkpoint CKPT]
           [--split test] [--video-pool max|Q] [--robustness N] [--robust-dir DIR] [--seed 0]
           [--json FILE]

FOLDER holds a ``labels.tsv`` (``avdf.datasets.realworld``), e.g. ``../shared/realworld-dev``
(measuring only: nothing here fits anything, the threshold is not even used) or a re-encoded
copy; or it is a JSONL manifest, whose real-world ``test`` split is scored (the generators
that ``make_realworld_manifest.py --hold-out`` kept out of training), or another split with
``--split`` (``dev``: realworld-train's dev generators, on which a run was selected and
tuned). Features are cached per video in ``--cache`` with the checkpoint's MediaSpec (the files ``avdf preprocess`` writes;
missing or stale ones are made first), so a rerun or another checkpoint with the same spec
only runs the model. Scores are ``avdf evaluate``'s
(``evaluation.dataset.predict_samples``: the Detector over the cached steps).

``--video-pool`` overrides how the checkpoint pools a video's score (``max``: the untuned
rule; a fraction Q: the mean of the top Q of step probabilities; see ``avdf tune``), to
measure what the tuned pooling changes; AUCs do not depend on the rest of the calibration.

Per kind and per generator: AUC of that group's fakes against *all* real clips. Robustness:
the first N clips (``--robustness all``: every clip) are re-encoded through the training chain
(``scripts/reencode_corpus.py``, chain keyed by ``robust:<file>`` so it differs from any
training copy) into ``--robust-dir``, cached and scored again; printed are the mean and
largest |score change| and the AUC of the re-encoded copies.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script's chain

import reencode_corpus  # noqa: E402

from avdf.datasets import load_dataset  # noqa: E402
from avdf.errors import AvdfError, InputError, one_line  # noqa: E402
from avdf.metrics.detection import roc_auc  # noqa: E402
from avdf.types import Sample, read_manifest  # noqa: E402

DEFAULT_ROBUST_DIR = Path("data/realworld/robustness")


def load_samples(path: Path, split: str = "test") -> list[Sample]:
    """A labelled folder's clips, or the real-world clips of a JSONL manifest's ``split``."""
    if path.suffix == ".jsonl":
        samples = [
            s for s in read_manifest(str(path)) if s.split == split and s.dataset == "realworld"
        ]
        if not samples:
            raise InputError(path, f"no real-world clips in its {split} split (see --hold-out)")
        return samples
    return load_dataset("realworld", path, split_by="none")


def fill_cache(detector, samples: Sequence[Sample], cache: Path) -> list[str]:  # noqa: ANN001
    """Cache every sample's features with the detector's spec; ``"path: cause"`` failures."""
    from avdf.native_logs import native_stderr_silenced
    from avdf.preprocess.cache import cache_path_for
    from avdf.preprocess.pipeline import cache_video, default_tracker

    tracker = default_tracker(detector.spec)
    failed = []
    for sample in samples:
        try:
            with native_stderr_silenced():
                cache_video(
                    sample.path,
                    cache_path_for(cache, sample.id),
                    detector.spec,
                    tracker=tracker,
                    max_side=detector.max_side,
                    experts=detector.experts,
                )
        except (AvdfError, OSError, ValueError) as e:
            failed.append(one_line(sample.path, e))
    return failed


def score(detector, samples: Sequence[Sample], cache: Path) -> tuple[dict[str, float], list[str]]:  # noqa: ANN001
    """Video score per sample id (the Prediction's score) and failure lines."""
    from avdf.evaluation.dataset import predict_samples

    failed = fill_cache(detector, samples, cache)
    done, more_failed, _ = predict_samples(detector, samples, cache)
    return {s.id: p.score for s, p in done}, failed + more_failed


def auc_or_none(samples: Sequence[Sample], scores: dict[str, float]) -> float | None:
    kept = [s for s in samples if s.id in scores]
    labels = [int(s.label or 0) for s in kept]
    if len(set(labels)) < 2:
        return None
    return roc_auc([scores[s.id] for s in kept], labels)


def group_table(samples: Sequence[Sample], scores: dict[str, float], key: str) -> list[dict]:
    """One row per value of ``extra[key]`` among the fakes: its fakes against all reals."""
    reals = [s for s in samples if s.label == 0]
    groups = sorted({str(s.extra[key]) for s in samples if s.label == 1})
    rows = []
    for group in groups:
        fakes = [s for s in samples if s.label == 1 and s.extra[key] == group]
        rows.append(
            {
                key: group,
                "fakes": len(fakes),
                "auc": auc_or_none(fakes + reals, scores),
                "mean_fake_score": float(np.mean([scores[s.id] for s in fakes if s.id in scores])),
            }
        )
    return rows


def scored_set(
    folder: Path, samples: Sequence[Sample], scores: dict[str, float], failed: list[str]
) -> dict:
    """The JSON record of one scored set that ``realworld_table.py`` reads."""
    return {
        "folder": str(folder),
        "clips": len(samples),
        "fakes": sum(s.label == 1 for s in samples),
        "scored": len(scores),
        "auc": auc_or_none(samples, scores),
        "per_kind": group_table(samples, scores, "kind"),
        "per_generator": group_table(samples, scores, "generator"),
        "scores": scores,
        "failed": failed,
    }


def robustness(
    detector,  # noqa: ANN001
    samples: Sequence[Sample],
    scores: dict[str, float],
    out_dir: Path,
    seed: int,
) -> dict:
    """Re-encode each sample through the training chain and score it again."""
    copies = []
    failed = []
    for sample in samples:
        target = out_dir / "videos" / Path(str(sample.extra["file"])).name
        chain = reencode_corpus.draw_chain(seed, f"robust:{sample.extra['file']}")
        key = target.with_suffix(".chain")
        try:
            if not (target.is_file() and key.is_file() and key.read_text() == chain.describe()):
                reencode_corpus.reencode(Path(sample.path), target, chain)
                key.write_text(chain.describe())
        except (AvdfError, OSError, ValueError) as e:
            failed.append(one_line(sample.path, e))
            continue
        d = sample.to_dict()
        d["path"] = str(target)
        copies.append(Sample.from_dict(d))
    new_scores, more_failed = score(detector, copies, out_dir / "cache")
    changes = [new_scores[s.id] - scores[s.id] for s in copies if s.id in new_scores]
    return {
        "clips": len(changes),
        "mean_abs_change": float(np.mean(np.abs(changes))) if changes else None,
        "max_abs_change": float(np.max(np.abs(changes))) if changes else None,
        # The change means little without the spread of the scores it is compared with.
        "score_sd": float(np.std([scores[s.id] for s in copies])) if copies else None,
        "auc_original": auc_or_none(copies, scores),
        "auc_reencoded": auc_or_none(copies, new_scores),
        "failed": failed + more_failed,
    }


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--cache", type=Path, required=True, help="feature cache folder")
    parser.add_argument(
        "--split", default="test", help="a manifest's split to score (default: test)"
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: bundled")
    parser.add_argument(
        "--video-pool", default=None, metavar="max|Q", help="override the video score pooling"
    )
    parser.add_argument("--robustness", default="0", metavar="N", help="clips to re-encode")
    parser.add_argument("--robust-dir", type=Path, default=DEFAULT_ROBUST_DIR)
    parser.add_argument("--seed", type=int, default=0, help="re-encoding chain seed")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    from avdf.inference.detector import Detector

    try:
        samples = load_samples(args.folder, args.split)
        detector = Detector.from_checkpoint(args.checkpoint)
        if args.video_pool is not None:
            pool = None if args.video_pool == "max" else float(args.video_pool)
            detector.calibration = replace(detector.calibration, top_fraction=pool)
        scores, failed = score(detector, samples, args.cache)
    except (AvdfError, OSError, ValueError) as e:
        print(f"eval_realworld: {e}", file=sys.stderr)
        return 1
    n_fake = sum(s.label == 1 for s in samples)
    results = {
        "checkpoint": str(args.checkpoint or "bundled demo.ckpt"),
        "video_pool": detector.calibration.top_fraction,
        **scored_set(args.folder, samples, scores, failed),
    }
    print(f"{args.folder}: {len(scores)}/{len(samples)} clips scored ({n_fake} fake)")
    print(f"video AUC: {_fmt(results['auc'])}")
    mean_real = np.mean([scores[s.id] for s in samples if s.label == 0 and s.id in scores])
    print(f"mean real score: {mean_real:.3f}\n")
    for key in ("kind", "generator"):
        print(f"| {key} | fakes | AUC vs all reals | mean fake score |")
        print("|---|---|---|---|")
        for row in results[f"per_{key}"]:
            print(
                f"| {row[key]} | {row['fakes']} | {_fmt(row['auc'])} | "
                f"{row['mean_fake_score']:.3f} |"
            )
        print()
    n_robust = len(samples) if args.robustness == "all" else int(args.robustness)
    if n_robust:
        robust = robustness(detector, samples[:n_robust], scores, args.robust_dir, args.seed)
        results["robustness"] = robust
        print(
            "| re-encoded clips | mean abs score change | max abs change "
            "| score sd across clips | AUC before | after |"
        )
        print("|---|---|---|---|---|---|")
        print(
            f"| {robust['clips']} | {_fmt(robust['mean_abs_change'])} | "
            f"{_fmt(robust['max_abs_change'])} | {_fmt(robust['score_sd'])} | "
            f"{_fmt(robust['auc_original'])} | "
            f"{_fmt(robust['auc_reencoded'])} |"
        )
        failed += robust["failed"]
    for line in failed:
        print(line, file=sys.stderr)
    if args.json is not None:
        from avdf.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
