"""Measurement only: do video features that were not learned from our 102 genuine fakes carry
to unseen generators? A linear probe on per-video features, fitted on realworld-train (ridge
chosen leave-generators-out, ``avdf.evaluation.probe.fit_probe``), then scored once on
realworld-dev (nothing chosen on it). Two feature sets, both read from 112 px caches:

- ``asd``: a *pretrained* lip-motion encoder, Light-ASD's visual encoder with its shipped
  weights (``../shared/models/light-asd``), written here from the paper's description (Liao et
  al., CVPR 2023: per block a 3x3 and a 5x5 branch, each a spatial then a temporal
  convolution, summed, then a 1x1x1 convolution) with the state dict's names. Input: the
  cache's aligned face crop in grey (Light-ASD was trained on detector boxes, a domain shift the
  probe has to live with). Per clip: the mean, sd and mean absolute frame-to-frame change of the
  128-d embeddings (384 numbers).
- ``flicker``: hand-made temporal flicker and texture of face regions that a lip-sync leaves
  alone and a talking-head generator re-renders every frame (upper face, mid face, mouth, the
  crop's border ring): per region, the temporal second difference's energy against the
  spatial detail, its spread over time, and the regions' ratios (``flicker_features``).

Per clip, up to ``--windows`` stretches of ``--frames`` consecutive face frames are read.

    avdf preprocess ../shared/realworld-train ../shared/realworld-dev --out CACHE --face-size 112
    python scripts/feature_probe.py ../shared/realworld-train ../shared/realworld-dev \
        --cache CACHE --features asd --weights ../shared/models/light-asd/finetuning_TalkSet.model
    python scripts/feature_probe.py ../shared/realworld-train ../shared/realworld-dev \
        --cache CACHE --features flicker
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts

from eval_realworld import auc_or_none, group_table  # noqa: E402

from avdf.datasets import load_dataset  # noqa: E402
from avdf.evaluation.probe import fit_probe  # noqa: E402
from avdf.preprocess.cache import CacheReader, cache_path_for  # noqa: E402

MEAN, SD = 0.4161, 0.1688  # Light-ASD's grey-level normalisation (its paper's data loader)


class _VisualBlock(nn.Module):
    """Two branches (k = 3, 5): spatial (1, k, k) then temporal (k, 1, 1) convolution, each
    with BN and ReLU; summed, then a 1x1x1 convolution."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        stride = (1, 2, 2) if down else (1, 1, 1)
        for k in (3, 5):
            pad = k // 2
            setattr(
                self, f"s_{k}", nn.Conv3d(cin, cout, (1, k, k), stride, (0, pad, pad), bias=False)
            )
            setattr(self, f"bn_s_{k}", nn.BatchNorm3d(cout, eps=1e-3))
            setattr(self, f"t_{k}", nn.Conv3d(cout, cout, (k, 1, 1), 1, (pad, 0, 0), bias=False))
            setattr(self, f"bn_t_{k}", nn.BatchNorm3d(cout, eps=1e-3))
        self.last = nn.Conv3d(cout, cout, 1, bias=False)
        self.bn_last = nn.BatchNorm3d(cout, eps=1e-3)

    def branch(self, x: torch.Tensor, k: int) -> torch.Tensor:
        x = torch.relu(getattr(self, f"bn_s_{k}")(getattr(self, f"s_{k}")(x)))
        return torch.relu(getattr(self, f"bn_t_{k}")(getattr(self, f"t_{k}")(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.branch(x, 3) + self.branch(x, 5)
        return torch.relu(self.bn_last(self.last(x)))


class VisualEncoder(nn.Module):
    """(B, T, 112, 112) grey in [0, 1] -> (B, T, 128)."""

    def __init__(self) -> None:
        super().__init__()
        self.block1 = _VisualBlock(1, 32, down=True)
        self.block2 = _VisualBlock(32, 64, down=False)
        self.block3 = _VisualBlock(64, 128, down=False)
        self.pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        x = ((grey - MEAN) / SD).unsqueeze(1)  # (B, 1, T, H, W)
        x = self.pool(self.block1(x))
        x = self.pool(self.block2(x))
        x = self.block3(x)  # (B, 128, T, h, w)
        return x.amax(dim=(3, 4)).transpose(1, 2)


def load_encoder(weights: Path) -> VisualEncoder:
    state = torch.load(weights, map_location="cpu", weights_only=True)
    prefix = "model.visualEncoder."
    mine = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    encoder = VisualEncoder()
    encoder.load_state_dict(mine, strict=True)
    return encoder.eval()


def stretches(mask: np.ndarray, frames: int, windows: int) -> list[int]:
    """Starts of up to ``windows`` evenly spread stretches of ``frames`` steps with a face."""
    ok = np.convolve(mask.astype(np.int64), np.ones(frames, np.int64), "valid") == frames
    starts = np.flatnonzero(ok)
    if not len(starts):
        return []
    picks = np.linspace(0, len(starts) - 1, min(windows, len(starts))).round().astype(int)
    return sorted({int(starts[i]) for i in picks})


def face_stretches(cache: Path, frames: int, windows: int) -> np.ndarray | None:
    """(W, T, 112, 112) grey in [0, 1]: the clip's evenly spread stretches of face frames."""
    with CacheReader(cache) as reader:
        feats = reader.read()
    if feats.face.shape[1] != 112:
        raise ValueError(f"{cache}: face crops are {feats.face.shape[1]} px, not 112")
    starts = stretches(feats.face_mask, frames, windows)
    if not starts:
        return None
    grey = grey_faces(feats.face)
    return np.stack([grey[s : s + frames] for s in starts])


def grey_faces(face: np.ndarray) -> np.ndarray:
    """(T, S, S) grey in [0, 1] of (T, S, S, 3) uint8 RGB face crops (ITU-R 601 weights)."""
    return face.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0


@torch.no_grad()
def asd_features(encoder: VisualEncoder, grey: np.ndarray) -> np.ndarray:
    emb = encoder(torch.from_numpy(grey)).numpy().astype(np.float64)  # (W, T, 128)
    flat = emb.reshape(-1, emb.shape[-1])
    change = np.abs(np.diff(emb, axis=1)).mean(axis=(0, 1))
    return np.concatenate([flat.mean(0), flat.std(0), change])


# Rows / columns of the 112 px aligned crop (the face fills its middle; the border ring is hair,
# ears and background).
REGIONS = {
    "upper": (slice(30, 56), slice(28, 84)),  # eyes and brows
    "mid": (slice(56, 74), slice(28, 84)),  # nose and cheeks
    "mouth": (slice(74, 98), slice(34, 78)),
}
RING = 10  # pixels of border


def flicker_features(grey: np.ndarray) -> np.ndarray:
    """Per region (and the border ring): log of the temporal second difference's mean energy,
    of the spatial Laplacian's, their difference (flicker against detail), the flicker's
    coefficient of variation over time; then the upper/mouth and face/ring flicker ratios."""
    second = grey[:, 2:] - 2 * grey[:, 1:-1] + grey[:, :-2]  # (W, T-2, H, W)
    middle = grey[:, 1:-1]
    lap = (
        4 * middle[..., 1:-1, 1:-1]
        - middle[..., :-2, 1:-1]
        - middle[..., 2:, 1:-1]
        - middle[..., 1:-1, :-2]
        - middle[..., 1:-1, 2:]
    )
    lap = np.pad(lap, [(0, 0), (0, 0), (1, 1), (1, 1)])
    ring = np.ones(grey.shape[-2:], bool)
    ring[RING:-RING, RING:-RING] = False
    masks = {}
    for name, (rows, cols) in REGIONS.items():
        m = np.zeros(grey.shape[-2:], bool)
        m[rows, cols] = True
        masks[name] = m
    masks["ring"] = ring
    out, flick = [], {}
    for name, m in masks.items():
        per_frame = (second[..., m] ** 2).mean(-1) + 1e-8  # (W, T-2)
        detail = float((lap[..., m] ** 2).mean()) + 1e-8
        flick[name] = float(np.log(per_frame.mean()))
        cv = float(per_frame.std() / per_frame.mean())
        out += [flick[name], float(np.log(detail)), flick[name] - float(np.log(detail)), cv]
    face = np.mean([flick[n] for n in REGIONS])
    out += [flick["upper"] - flick["mouth"], flick["mid"] - flick["mouth"], face - flick["ring"]]
    return np.array(out, np.float64)


def features_of(root: Path, cache: Path, extract, args: argparse.Namespace):  # noqa: ANN001
    samples = load_dataset("realworld", root)
    x: dict[str, np.ndarray] = {}
    for sample in samples:
        try:
            grey = face_stretches(cache_path_for(cache, sample.id), args.frames, args.windows)
        except (OSError, ValueError) as error:
            print(f"{sample.id}: skipped ({error})", file=sys.stderr)
            continue
        if grey is not None:
            x[sample.id] = extract(grey)
    return samples, x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train", type=Path, help="realworld-train folder (labels.tsv)")
    parser.add_argument("dev", type=Path, help="realworld-dev folder: measured only")
    parser.add_argument("--cache", type=Path, required=True, help="112 px caches of both")
    parser.add_argument("--features", choices=("asd", "flicker"), default="asd")
    parser.add_argument("--weights", type=Path, help="a Light-ASD .model file (for asd)")
    parser.add_argument("--frames", type=int, default=25, help="frames per stretch")
    parser.add_argument("--windows", type=int, default=6, help="stretches per video")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)

    if args.features == "asd":
        if args.weights is None:
            parser.error("--features asd needs --weights")
        encoder = load_encoder(args.weights)
        extract = lambda grey: asd_features(encoder, grey)  # noqa: E731
    else:
        extract = flicker_features
    t0 = time.perf_counter()
    train, x_train = features_of(args.train, args.cache, extract, args)
    dev, x_dev = features_of(args.dev, args.cache, extract, args)
    seconds = time.perf_counter() - t0
    n_frames = (len(x_train) + len(x_dev)) * args.frames * args.windows
    print(
        f"encoded {len(x_train)} + {len(x_dev)} videos in {seconds:.0f} s "
        f"(at most {n_frames} frames: {1000 * seconds / max(n_frames, 1):.1f} ms per frame)"
    )

    fit = fit_probe(train, x_train)
    print("| ridge | leave-generators-out AUC, pooled | mean fold AUC |\n|---|---|---|")
    for row in fit.logo:
        print(f"| {row['ridge']:g} | {row['pooled AUC']:.3f} | {row['mean fold AUC']:.3f} |")
    scored = [s for s in dev if s.id in x_dev and s.label is not None]
    logits = fit.probe.logit(np.stack([x_dev[s.id] for s in scored]))
    scores = {s.id: float(v) for s, v in zip(scored, logits, strict=True)}
    print(
        f"\nchosen ridge {fit.probe.ridge:g}; realworld-dev ({len(scored)} videos, "
        f"measured once): video AUC {auc_or_none(scored, scores):.3f}"
    )
    for row in group_table(scored, scores, "kind"):
        print(f"  {row['kind']} fakes ({row['fakes']}) vs all reals: {row['auc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
