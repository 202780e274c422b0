"""``avdf tune``: fit decoding parameters and the video-score calibration on a dev split and
store them in a copy of the checkpoint (``avdf.evaluation.tune``)::

    avdf tune CHECKPOINT --dataset lavdf --root DIR [--split dev] [--cache DIR] \
        [--out TUNED.ckpt] [--force] [--json out.json]
    avdf tune CHECKPOINT --manifest fold0.jsonl [--split dev] ...   # a source-disjoint fold
    avdf tune CHECKPOINT ... --probe FOLDER --probe-cache DIR [--probe-groups 4]
    avdf tune CHECKPOINT ... --no-rescorer     # the decoder's own proposal scores (ablation)
    avdf tune CHECKPOINT ... --peak-statistics # the stacker also reads peaks (ablation)
    avdf tune CHECKPOINT ... --flip            # test-time flip of the face and mouth crops

The model runs once per dev video (from ``--cache`` where a complete cache exists, as in
``avdf evaluate``); the decoding grid (``avdf.inference.decode.SEARCH_SPACE``) is searched for
dev AP@0.5 + AR@100, a proposal rescorer is fitted for the chosen decoding and kept when it
helps dev videos it was not fitted on (``avdf.evaluation.rescore``), then the video score's
pooling is chosen (the mean over the split's datasets of their video AUC;
``avdf.evaluation.tune.VIDEO_POOLS``, among them a stacker of the pooled statistics,
``avdf.inference.video_score``, judged on cross-fitted dev scores) and temperature, shift,
decision threshold and segment threshold are fitted. With ``--probe`` a video probe
(``avdf.inference.probe``) is first fitted on a labelled folder of genuine generator outputs
(the realworld layout: ``labels.tsv``), its ridge chosen leave-generators-out, and the raw
video score becomes its blend with the pooled score, the blend fitted on dev and on the
folder's held-out scores. The result goes to ``--out`` (default ``<stem>-tuned.ckpt`` beside
CHECKPOINT, never overwritten without ``--force``); ``avdf detect`` and ``avdf evaluate`` use
it by default.
A before / after table of the dev figures is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from avdf.errors import AvdfError, OutputExistsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint to tune")
    parser.add_argument("--dataset", metavar="NAME", help="lavdf, avdeepfake1m, tvil, ...")
    parser.add_argument("--root", metavar="DIR", help="dataset root folder")
    parser.add_argument(
        "--manifest", metavar="FILE", help="JSONL manifest (e.g. a fold) instead of --dataset"
    )
    parser.add_argument("--split", default="dev", help="split to tune on (default: dev)")
    parser.add_argument(
        "--cache", metavar="DIR", help="feature cache from `avdf preprocess` (used when complete)"
    )
    parser.add_argument(
        "--out", metavar="CKPT", help="tuned checkpoint (default: <stem>-tuned.ckpt beside it)"
    )
    parser.add_argument(
        "--probe",
        metavar="FOLDER",
        help="fit a video probe on this labels.tsv folder (e.g. re-encoded realworld-train); "
        "clips of the dev split are left out of it",
    )
    parser.add_argument("--probe-cache", metavar="DIR", help="feature cache for --probe's clips")
    parser.add_argument(
        "--probe-groups",
        metavar="G",
        type=int,
        default=None,
        help="leave-generators-out folds for the probe's ridge: fake families dealt into G "
        "groups (default 4)",
    )
    parser.add_argument(
        "--no-rescorer",
        action="store_true",
        help="score proposals by the decoder alone: fit no proposal rescorer (an ablation)",
    )
    parser.add_argument(
        "--peak-statistics",
        action="store_true",
        help="let the video stacker also read each video's peaks over its own median and its "
        "best window (higher dev AUC, not higher test AUC on the synthetic folds)",
    )
    parser.add_argument(
        "--flip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="average every window's outputs with those of its mirrored face and mouth crops "
        "(one more forward pass), in the tuning and in the tuned checkpoint (default: as the "
        "checkpoint says)",
    )
    parser.add_argument("--json", metavar="OUT", help="also write the tuning record as JSON")
    parser.add_argument("--force", action="store_true", help="overwrite --out and --json")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _table(before: dict[str, float], after: dict[str, float]) -> str:
    lines = ["| dev figure | before | after |", "|---|---|---|"]
    for name in before:
        lines.append(f"| {name} | {_cell(before[name])} | {_cell(after.get(name))} |")
    return "\n".join(lines)


def _chosen_pool(result: Any) -> float | str | None:
    """The video pool a :class:`avdf.evaluation.tune.TuningResult` chose."""
    from avdf.evaluation.tune import PROPOSAL_POOL, STACKED_POOL

    if result.video_stacker is not None:
        return STACKED_POOL
    return PROPOSAL_POOL if result.calibration.from_proposals else result.calibration.top_fraction


def _pool_name(pool: float | str | None) -> str:
    if isinstance(pool, str):
        return pool
    return "max rule" if pool is None else f"top {pool:g}"


def run(args: argparse.Namespace) -> int:
    try:
        if args.manifest is None and not (args.dataset and args.root):
            raise AvdfError("give --dataset NAME and --root DIR, or --manifest FILE")
        json_out = Path(args.json) if args.json else None
        if json_out is not None and json_out.exists() and not args.force:
            raise OutputExistsError(json_out)
        # Imported here: torch is not needed for `avdf --help`.
        from avdf.evaluation.tune import tune_checkpoint
        from avdf.inference.video_score import BASE_STATISTICS, VIDEO_STATISTICS

        path, result, outputs = tune_checkpoint(
            args.checkpoint,
            args.dataset,
            args.root,
            split=args.split,
            cache_dir=args.cache,
            out=args.out,
            force=args.force,
            manifest=args.manifest,
            progress=sys.stderr.isatty(),
            probe_root=args.probe,
            probe_cache=args.probe_cache,
            probe_groups=args.probe_groups,
            rescore=not args.no_rescorer,
            stack_statistics=VIDEO_STATISTICS if args.peak_statistics else BASE_STATISTICS,
            flip=args.flip,
        )
        print(_table(result.before, result.after))
        decode = ", ".join(f"{k}={v:g}" for k, v in result.decode.to_dict().items())
        c = result.calibration
        print(f"decoding: {decode}")
        if result.rescoring is not None:
            r = result.rescoring
            mixes = "; ".join(f"{m:g}: {v:.3f}" for m, v in r.held_out.items())
            kept = f"mix {r.rescorer.mix:g}" if r.rescorer is not None else "not kept"
            print(
                f"proposal rescorer: {kept} (dev AP@0.5 + AR@100 by mix, 2-fold cross-fitted: "
                f"{mixes or 'not fitted'}; {r.n_hits} hits of {r.n_candidates} candidates)"
            )
        print(
            f"calibration: temperature={c.temperature:.4g} shift={c.shift:.4g} "
            f"threshold={c.threshold:.4g} segment_threshold={c.segment_threshold:.4g}"
        )
        pools = "; ".join(f"{_pool_name(r['pool'])} {r['mean AUC']:.3f}" for r in result.pools)
        print(
            f"video score pooling: {_pool_name(_chosen_pool(result))}"
            f" (mean dev AUC per dataset: {pools})"
        )
        if result.probe is not None:
            fit = result.probe
            print(
                f"video probe: ridge {fit.probe.ridge:g} of {len(fit.logo)}, on {fit.n_fakes} "
                f"fakes and {fit.n_reals} reals of {args.probe}; leave-generators-out AUC:"
            )
            print("| ridge | pooled AUC | mean of the folds' AUCs |\n|---|---|---|")
            for row in fit.logo:
                print(f"| {row['ridge']:g} | {_cell(row['pooled AUC'])} | "
                      f"{_cell(row['mean fold AUC'])} |")  # fmt: skip
        if result.video_probe is not None:
            v = result.video_probe
            print(
                f"video score: sigmoid({v.probe_weight:.3g} x probe logit + {v.rule_weight:.3g} "
                f"x pooled score logit + {v.blend_bias:.3g})"
            )
        cached = f", {outputs.n_cached} from the cache" if args.cache else ""
        print(
            f"tuned on {result.n_videos} videos of {args.split}{cached}; wrote {path}",
            file=sys.stderr,
        )
        if json_out is not None:
            from avdf.atomic import write_text_atomic
            from avdf.evaluation.tune import json_safe

            record = {
                "checkpoint": str(path),
                "decode": result.decode.to_dict(),
                "calibration": c.to_dict(),
                **result.to_dict(),
            }
            write_text_atomic(json_out, json.dumps(json_safe(record), indent=2) + "\n")
        for line in outputs.failed:
            print(f"avdf tune: failed: {line}", file=sys.stderr)
        if outputs.failed:
            print(f"avdf tune: {len(outputs.failed)} videos failed (left out)", file=sys.stderr)
            return 1
    except (AvdfError, ValueError) as e:
        print(f"avdf tune: {e}", file=sys.stderr)
        return 1
    return 0
