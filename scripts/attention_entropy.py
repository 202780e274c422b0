"""Does the bi-modal attention align or pool? Entropy of each attention direction and the
weight it puts on the key at the query's own step, over cached test windows.

Usage: python scripts/attention_entropy.py MANIFEST --cache DIR --checkpoint CKPT [...]
           [--split test] [--videos 40]

For every checkpoint (an MMMS-BA with bi-modal fusion) the windows of the split's first
``--videos`` videos go through the model once; each softmax over keys is recorded. Printed
per direction (V = face, L = lips, A = audio; "V→L" = face queries attending to lip keys):
the mean entropy in nats, the mean of its maximum (log of the number of keys each query may
see: the whole window, or the band), their ratio (1 = uniform pooling) and the mean weight
on the same-step key (1/keys when uniform). The first bundled checkpoint measured 3.95–4.15
nats of a 4.16 maximum in 4 of 6 directions (issue #10).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import avdf.models.attention as attention
from avdf.data.dataset import WindowDataset, collate
from avdf.models.checkpoint import load_checkpoint
from avdf.types import read_manifest

# Order of the softmax calls in BimodalFusion: per pair (x, y), x→y then y→x.
DIRECTIONS = ("V→L", "L→V", "A→V", "V→A", "L→A", "A→L")


def record_weights(model, batch) -> list[torch.Tensor]:  # noqa: ANN001
    """Run ``model`` on ``batch`` and return each attention softmax (B, Tq, Tk), in call order."""
    calls: list[torch.Tensor] = []
    original = attention.masked_softmax

    def recording(scores: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        weights = original(scores, key_valid)
        calls.append(weights.detach())
        return weights

    attention.masked_softmax = recording
    try:
        with torch.no_grad():
            model(*(batch[k] for k in ("audio", "face", "lips", "step_mask", "presence")))
    finally:
        attention.masked_softmax = original
    return calls


def summarise(weights: torch.Tensor) -> tuple[float, float, float]:
    """(entropy, maximum entropy, same-step weight), means over queries with any key."""
    rows = weights.reshape(-1, weights.shape[-2], weights.shape[-1])
    keys = (rows > 0).sum(-1)  # (N, Tq) keys a query actually weighs
    live = keys > 0
    entropy = -(rows * rows.clamp_min(1e-12).log()).sum(-1)
    diagonal = torch.diagonal(rows, dim1=-2, dim2=-1)
    return (
        float(entropy[live].mean()),
        float(keys[live].float().log().mean()),
        float(diagonal[live].mean()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--videos", type=int, default=40)
    args = parser.parse_args()
    samples = [s for s in read_manifest(args.manifest) if s.split == args.split][: args.videos]
    print("| checkpoint | direction | entropy (nats) | maximum | ratio | same-step weight |")
    print("|---|---|---|---|---|---|")
    for path in args.checkpoint:
        model, spec, _ = load_checkpoint(path)
        data = WindowDataset(samples, args.cache, spec, window_steps=64, train=False)
        totals = {d: [0.0, 0.0, 0.0] for d in DIRECTIONS}
        n_batches = 0
        for start in range(0, len(data), 16):
            batch = collate([data[i] for i in range(start, min(start + 16, len(data)))], 64)
            calls = record_weights(model, batch)
            if len(calls) != len(DIRECTIONS):
                raise SystemExit(f"{path}: not a bi-modal MMMS-BA ({len(calls)} softmax calls)")
            for direction, weights in zip(DIRECTIONS, calls, strict=True):
                for i, value in enumerate(summarise(weights)):
                    totals[direction][i] += value
            n_batches += 1
        for direction, (entropy, maximum, same) in totals.items():
            entropy, maximum, same = entropy / n_batches, maximum / n_batches, same / n_batches
            print(
                f"| {path.parent.parent.parent.name}/{path.parent.parent.name} | {direction} | "
                f"{entropy:.2f} | {maximum:.2f} | {entropy / maximum:.2f} | {same:.3f} |"
            )


if __name__ == "__main__":
    main()
