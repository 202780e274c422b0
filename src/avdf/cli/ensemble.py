"""``avdf ensemble``: average several trained checkpoints into one (``avdf.models.ensemble``)::

    avdf ensemble A.ckpt B.ckpt [C.ckpt ...] --out ENSEMBLE.ckpt [--force]

Every logit and boundary distance is the members' mean, so ``avdf tune``, ``detect`` and
``evaluate`` take the result like any checkpoint. Only the members' weights are kept; tune
the ensemble on a dev split (``avdf tune ENSEMBLE.ckpt ...``) before using its verdicts. Each
member adds one forward pass of the model (see ``benchmarks/model_parts.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from avdf.errors import AvdfError, OutputExistsError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "members", metavar="CHECKPOINT", nargs="+", help="two or more trained checkpoints"
    )
    parser.add_argument("--out", metavar="CKPT", required=True, help="the ensemble checkpoint")
    parser.add_argument("--force", action="store_true", help="overwrite --out")


def run(args: argparse.Namespace) -> int:
    try:
        out = Path(args.out)
        if out.exists() and not args.force:
            raise OutputExistsError(out)
        from avdf.models.checkpoint import ensemble_checkpoint  # torch: not for --help

        ensemble_checkpoint(args.members, out)
    except (AvdfError, ValueError) as e:
        print(f"avdf ensemble: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out} ({len(args.members)} members, untuned: run `avdf tune` on it)")
    return 0
