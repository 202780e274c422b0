"""Long-video inference: sliding windows, overlap stitching, proposal decoding, Detector,
and dataset evaluation.

Import :class:`avdf.inference.detector.Detector` from its module: it pulls in torch,
which the lightweight pieces here (decode, sliding) do not need. ``evaluate_dataset`` is
exported here but loaded on first use, for the same reason.
"""

from __future__ import annotations

from typing import Any

__all__ = ["evaluate_dataset"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): `import avdf.inference` must not import torch.
    if name == "evaluate_dataset":
        from avdf.inference.evaluate import evaluate_dataset

        return evaluate_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
