"""Linear probe on a frozen model: refit only the video verdict on genuine generator outputs and
measure whether it carries over to generators the probe never saw.

Usage: python scripts/probe_realworld.py --checkpoint CKPT --train FOLDER --cache DIR
           [--groups 4] [--features video-head|blocks] [--test FOLDER --test-cache DIR]
           [--json FILE] [--test-json FILE]

The model runs over each clip as ``avdf evaluate`` runs it (cached features, the Detector's
windows); per clip the probe's features (``--features``) are the video head's input (masked
mean and max of the fused steps), or each modality block's output before context and fusion
(mean and sd over the window's steps: the block summary that ``avdf tune --probe`` fits on),
averaged over the clip's windows. An L2 logistic regression (``avdf.inference.probe``,
standardised on its training clips) is fitted on ``--train`` (a ``labels.tsv`` folder, e.g.
the re-encoded realworld-train) and scored leave-generators-out
(``avdf.evaluation.probe``): with ``--groups G`` the folds of ``make_realworld_manifest.py
--hold-out K/G`` (each fake family's clips and a share of the reals held out once, one copy
per real scored), else one fold per family. One table row per ridge strength: the AUC pooled
over the folds and the mean of the folds' own AUCs. Beside them, on the same held-out clips,
the model's own video score and its video head alone (the mean window probability, which the
probe refits): held-out baselines only for a checkpoint that never saw ``--train`` (e.g. one
trained on the synthetic corpus alone).

``--test`` (e.g. ``../shared/realworld-dev``, measuring only) is scored by a probe fitted on
every ``--train`` clip with the ridge of best pooled leave-generators-out AUC (chosen on
``--train`` alone; that row of the table is then optimistic by the choice).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts

from eval_realworld import auc_or_none, fill_cache, scored_set  # noqa: E402

from avdf.atomic import write_text_atomic  # noqa: E402
from avdf.datasets import load_dataset  # noqa: E402
from avdf.errors import AvdfError  # noqa: E402
from avdf.evaluation.probe import fit_probe, logo_aucs  # noqa: E402
from avdf.types import Sample  # noqa: E402

# What the probe reads: the video head's input (masked mean and max of the fused steps), or
# each modality block's per-step output before any context or fusion (mean and sd over steps).
FEATURES: tuple[str, ...] = ("video-head", "blocks")


def clip_features(
    detector,  # noqa: ANN001
    samples: Sequence[Sample],
    cache: Path,
    kind: str,
) -> tuple[dict, dict, list]:
    """Per clip id: the ``kind`` of features (:data:`FEATURES`) averaged over the clip's
    windows, and the model's own scores (``"video"``: its video score; ``"head"``: its video
    head alone, the mean window probability); plus ``"path: cause"`` lines for clips that
    could not be read."""
    from avdf.evaluation.dataset import iter_sample_steps

    failed = fill_cache(detector, samples, cache)
    windows: list[np.ndarray] = []
    hooks = _video_head_hooks(detector.model, windows) if kind == "video-head" else []
    features, scores = {}, {}
    try:
        for sample, steps, status in iter_sample_steps(detector, samples, cache):
            if steps is None:
                failed.append(str(status))
            else:
                features[sample.id] = (
                    np.concatenate(windows).mean(axis=0) if hooks else steps.block_summary
                )
                scores[sample.id] = {
                    "video": detector.predict(steps, sample.id).score,
                    "head": float(np.mean(steps.window_video_prob)),
                }
            windows.clear()
    finally:
        for hook in hooks:
            hook.remove()
    return features, scores, failed


def _video_head_hooks(model, windows: list[np.ndarray]) -> list:  # noqa: ANN001
    """A forward hook that appends the video head's input (B, F) per model call to ``windows``."""
    return [
        model.video_head.register_forward_pre_hook(
            lambda _module, args: windows.append(args[0].float().numpy())
        )
    ]


def auc_of(samples: Sequence[Sample], scores: dict[str, float]) -> float:
    """``eval_realworld.auc_or_none`` as a number: NaN without both classes."""
    auc = auc_or_none(samples, scores)
    return float("nan") if auc is None else auc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--train", required=True, type=Path, help="labels.tsv folder to fit on")
    parser.add_argument("--cache", required=True, type=Path, help="feature cache of --train")
    parser.add_argument("--groups", type=int, default=None, help="families dealt into G groups")
    parser.add_argument("--test", type=Path, default=None, help="labels.tsv folder to score")
    parser.add_argument("--test-cache", type=Path, default=None)
    parser.add_argument("--features", choices=FEATURES, default=FEATURES[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--test-json",
        type=Path,
        default=None,
        help="the probe's --test scores in eval_realworld.py's layout (for realworld_table.py)",
    )
    args = parser.parse_args(argv)
    if (args.test is None) != (args.test_cache is None) or (args.test_json and not args.test):
        print("probe_realworld: --test and --test-cache go together (and --test-json with them)",
              file=sys.stderr)  # fmt: skip
        return 1
    from avdf.inference.detector import Detector

    try:
        detector = Detector.from_checkpoint(args.checkpoint)
        train = load_dataset("realworld", args.train, split_by="none")
        x, own, failed = clip_features(detector, train, args.cache, args.features)
        try:
            fit = fit_probe(train, x, args.groups)
        except ValueError as e:
            raise ValueError(f"{args.train}: {e}") from None
        folds, chosen = fit.folds, fit.probe.ridge
        rows = {
            f"probe, ridge {row['ridge']:g}": (row["pooled AUC"], row["mean fold AUC"])
            for row in fit.logo
        }
        for name, key in (("model's video score", "video"), ("model's video head", "head")):
            aucs = logo_aucs(train, {i: (k, own[i][key]) for i, k in folds.items()})
            rows[name] = (aucs["pooled AUC"], aucs["mean fold AUC"])
        fakes = sum(s.label == 1 for s in train if s.id in folds)
        print(f"{args.train}, leave-generators-out ({args.groups or 'one family'} per fold), "
              f"{fakes} fakes, {len(folds) - fakes} reals:")  # fmt: skip
        print("| scores | pooled AUC | mean of the folds' AUCs |\n|---|---|---|")
        for name, (pooled, mean) in rows.items():
            print(f"| {name} | {pooled:.3f} | {mean:.3f} |")
        result = {
            "checkpoint": str(args.checkpoint),
            "groups": args.groups,
            "features": args.features,
            "logo": rows,
            "ridge": chosen,
            "logo_scores": {i: {"probe": v, **own[i]} for i, v in fit.held_out.items()},
        }
        test_record = None
        if args.test is not None:
            test = load_dataset("realworld", args.test, split_by="none")
            tx, town, tfailed = clip_features(detector, test, args.test_cache, args.features)
            failed += tfailed
            scored = [s for s in test if s.id in tx]
            scores = fit.probe.logit(np.stack([tx[s.id] for s in scored]))
            tprobe = {s.id: float(v) for s, v in zip(scored, scores, strict=True)}
            result["test_scores"] = {s.id: {"probe": tprobe[s.id], **town[s.id]} for s in scored}
            result["test"] = {
                key: auc_of(test, {i: v[key] for i, v in result["test_scores"].items()})
                for key in ("probe", "video", "head")
            }
            t = result["test"]
            print(f"{args.test}: probe (ridge {chosen:g}) AUC {t['probe']:.3f}, model's video "
                  f"score {t['video']:.3f}, its video head {t['head']:.3f}")  # fmt: skip
            test_record = {
                "checkpoint": f"probe on {args.checkpoint}",
                **scored_set(args.test, test, tprobe, tfailed),
            }
    except (AvdfError, OSError, ValueError) as e:
        print(f"probe_realworld: {e}", file=sys.stderr)
        return 1
    for line in failed:
        print(f"skipped {line}", file=sys.stderr)
    if args.json is not None:
        write_text_atomic(args.json, json.dumps(result, indent=1) + "\n")
    if args.test_json is not None:
        write_text_atomic(args.test_json, json.dumps(test_record, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
