"""Application-level evaluation over datasets (beside ``cli/``; ``inference/`` stays "one
video in, one prediction out"):

* :mod:`avdf.evaluation.dataset` - run a checkpoint over a dataset split (cache or video),
  score it with the official metrics, write the challenge files;
* :mod:`avdf.evaluation.tune` - ``avdf tune``: decoding parameters and video-score
  calibration fitted on a dev split and stored in the checkpoint;
* :mod:`avdf.evaluation.folds` - source-disjoint folds of the synthetic corpus.

``evaluate_dataset`` is exported here but loaded on first use: it pulls in torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_dataset"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): `import avdf.evaluation` must not import torch.
    if name == "evaluate_dataset":
        from avdf.evaluation.dataset import evaluate_dataset

        return evaluate_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
