"""Measurement only (issue 10): does a *pretrained* active-speaker detector see the synthetic
corpus's lip-audio edits, per step and without any training on our data?

Light-ASD (Liao et al., CVPR 2023; weights in ``../shared/models/light-asd``, MIT) scores every
video frame "this face is speaking the sound heard now" from an audio encoder on MFCCs and a
visual encoder on grey face crops, summed per frame and read by a bidirectional GRU; a second
head reads the visual encoder alone ("the face looks like it is speaking"). Where the mouth
moves but does not match the sound (audio shifted, a mouth from another moment, another voice),
an audio-visual score that really hears the sound should fall while the visual-only one stays.
Written here from the paper's description with the state dict's names (the visual
encoder is ``feature_probe.py``'s); the MFCCs follow python_speech_features' documented
defaults (the paper's front end).

Per video of a manifest split, from the video file (audio) and the cache (64 px face crops,
up-sampled to 112): the per-step audio-visual logit ``av`` and visual-only logit ``v``. Two
per-step fake scores: ``-av`` and ``v - av`` (speaking face, sound not matching it). Per edit
family, the within-video AUC (that family's steps against the same video's untouched steps
where the speaker talks, since edits are placed in speech) and the video AUC (mean of the
video's top-10 % steps, videos with the family against real videos). Real videos with their
audio shifted by 0.5 s give the plain sanity check: how often a step's ``av`` falls.

    python scripts/sync_probe.py data/folds/fold0.jsonl --cache data/cache --split test \
        --weights ../shared/models/light-asd/pretrain_AVA_CVPR.model

Measured (README, issue 10): weak; only out-of-sync audio reaches 0.67 within-video.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.fft import dct
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling scripts

from family_table import edit_families  # noqa: E402
from feature_probe import VisualEncoder, grey_faces  # noqa: E402

from avdf.inference.video_score import top_fraction_mean  # noqa: E402
from avdf.io.decode import read_audio  # noqa: E402
from avdf.metrics import roc_auc  # noqa: E402
from avdf.preprocess.cache import CacheReader, cache_path_for  # noqa: E402
from avdf.synth.corpus import ACTIVE_AUDIO_RATIO  # noqa: E402
from avdf.timebase import MediaSpec  # noqa: E402
from avdf.types import Sample, read_manifest  # noqa: E402

SPEC = MediaSpec()
MFCC_PER_FRAME = 4  # 100 Hz MFCCs against 25 fps video
SHIFT_SECONDS = 0.5


def mfcc(audio: np.ndarray, rate: int = 16000) -> np.ndarray:
    """(F, 13) MFCCs at 100 Hz of float audio in [-1, 1], on the 16-bit integer scale that
    Light-ASD read its wave files at: pre-emphasis 0.97, 25 ms rectangular frames, 512-point
    power spectrum, 26 mel filters, log, DCT-II, lifter 22, c0 replaced by the log energy."""
    audio = audio.astype(np.float64) * 32768.0
    signal = np.append(audio[:1], audio[1:] - 0.97 * audio[:-1])
    length, step, nfft = int(0.025 * rate), int(0.010 * rate), 512
    n = 1 + max(0, int(np.ceil((len(signal) - length) / step)))
    padded = np.concatenate([signal, np.zeros((n - 1) * step + length - len(signal))])
    index = np.arange(length)[None, :] + step * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(padded[index], nfft)) ** 2 / nfft
    energy = np.maximum(power.sum(1), np.finfo(float).eps)
    mel = np.linspace(0, 2595 * np.log10(1 + (rate / 2) / 700), 28)
    bins = np.floor((nfft + 1) * (700 * (10 ** (mel / 2595) - 1)) / rate).astype(int)
    bank = np.zeros((26, nfft // 2 + 1))
    for j in range(26):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        bank[j, lo:mid] = (np.arange(lo, mid) - lo) / max(mid - lo, 1)
        bank[j, mid:hi] = (hi - np.arange(mid, hi)) / max(hi - mid, 1)
    feats = np.log(np.maximum(power @ bank.T, np.finfo(float).eps))
    ceps = dct(feats, type=2, axis=1, norm="ortho")[:, :13]
    ceps *= 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
    ceps[:, 0] = np.log(energy)
    return ceps.astype(np.float32)


class _AudioBlock(nn.Module):
    """Two branches (k = 3, 5): a (k, 1) convolution over MFCC bins then a (1, k) one over
    time, each with BN and ReLU; summed, then a 1x1 convolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        for k in (3, 5):
            pad = k // 2
            setattr(self, f"m_{k}", nn.Conv2d(cin, cout, (k, 1), 1, (pad, 0), bias=False))
            setattr(self, f"bn_m_{k}", nn.BatchNorm2d(cout, momentum=0.01, eps=0.001))
            setattr(self, f"t_{k}", nn.Conv2d(cout, cout, (1, k), 1, (0, pad), bias=False))
            setattr(self, f"bn_t_{k}", nn.BatchNorm2d(cout, momentum=0.01, eps=0.001))
        self.last = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_last = nn.BatchNorm2d(cout, momentum=0.01, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = 0
        for k in (3, 5):
            y = torch.relu(getattr(self, f"bn_m_{k}")(getattr(self, f"m_{k}")(x)))
            out = out + torch.relu(getattr(self, f"bn_t_{k}")(getattr(self, f"t_{k}")(y)))
        return torch.relu(self.bn_last(self.last(out)))


class AudioEncoder(nn.Module):
    """(B, 4T, 13) MFCCs -> (B, T, 128): time halved twice, mean over MFCC bins."""

    def __init__(self) -> None:
        super().__init__()
        self.block1 = _AudioBlock(1, 32)
        self.block2 = _AudioBlock(32, 64)
        self.block3 = _AudioBlock(64, 128)
        self.pool = nn.MaxPool2d((1, 3), (1, 2), (0, 1))

    def forward(self, mfccs: torch.Tensor) -> torch.Tensor:
        x = mfccs.unsqueeze(1).transpose(2, 3)  # (B, 1, 13, 4T)
        x = self.pool(self.block1(x))
        x = self.pool(self.block2(x))
        x = self.block3(x)
        return x.mean(dim=2).transpose(1, 2)


class BiGRU(nn.Module):
    """A forward GRU, then a backward GRU over its output, GELU after each."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.gru_forward = nn.GRU(width, width, batch_first=True)
        self.gru_backward = nn.GRU(width, width, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.gelu(self.gru_forward(x)[0])
        x = self.gru_backward(torch.flip(x, dims=[1]))[0]
        return nn.functional.gelu(torch.flip(x, dims=[1]))


class LightASD(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.audioEncoder = AudioEncoder()  # noqa: N815 (the state dict's names)
        self.visualEncoder = VisualEncoder()  # noqa: N815
        self.GRU = BiGRU()  # noqa: N815
        self.av_head = nn.Linear(128, 2)
        self.v_head = nn.Linear(128, 2)

    @torch.no_grad()
    def forward(self, mfccs: torch.Tensor, grey: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Per-step speaking logits (audio-visual, visual only) of one clip."""
        video = self.visualEncoder(grey)
        fused = self.GRU(self.audioEncoder(mfccs) + video)
        av = self.av_head(fused)[0]
        v = self.v_head(video)[0]
        return (av[:, 1] - av[:, 0]).numpy(), (v[:, 1] - v[:, 0]).numpy()


def load_model(weights: Path) -> LightASD:
    state = torch.load(weights, map_location="cpu", weights_only=True)
    mine = {}
    for key, value in state.items():
        if key.startswith("model."):
            mine[key[len("model.") :]] = value
        elif key.startswith("lossAV.FC."):
            mine["av_head." + key.split(".")[-1]] = value
        elif key.startswith("lossV.FC."):
            mine["v_head." + key.split(".")[-1]] = value
    model = LightASD()
    model.load_state_dict(mine, strict=True)
    return model.eval()


def asd_faces(face: np.ndarray) -> np.ndarray:
    """(T, 112, 112) grey in [0, 1], Light-ASD's input, of (T, S, S, 3) uint8 face crops."""
    grey = grey_faces(face)
    return np.stack([cv2.resize(g, (112, 112), interpolation=cv2.INTER_CUBIC) for g in grey])


def clip_inputs(video: str, cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, 112, 112) grey face crops in [0, 1], their face mask, and the clip's audio."""
    with CacheReader(cache) as reader:
        feats = reader.read()
    return asd_faces(feats.face), feats.face_mask.astype(bool), read_audio(video, SPEC)


def cache_file(sample: Sample, cache: Path) -> Path | None:
    path = cache_path_for(cache, sample.id)
    return path if path.is_file() else None


def step_logits(model: LightASD, grey: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, ...]:
    n = len(grey)
    feats = mfcc(audio, SPEC.sample_rate)
    want = n * MFCC_PER_FRAME
    feats = np.pad(feats, ((0, max(0, want - len(feats))), (0, 0)), mode="wrap")[:want]
    return model(torch.from_numpy(feats)[None], torch.from_numpy(grey)[None])


def active_steps(audio: np.ndarray, n: int) -> np.ndarray:
    """(n,) bool: steps whose audio RMS is at least half the clip's, as the corpus requires
    of an audio edit's segment (``ACTIVE_AUDIO_RATIO``)."""
    spf = SPEC.samples_per_frame
    padded = np.pad(audio[: n * spf], (0, max(0, n * spf - len(audio))))
    rms = np.sqrt((padded.reshape(n, spf).astype(np.float64) ** 2).mean(1))
    return rms >= ACTIVE_AUDIO_RATIO * np.sqrt(np.mean(padded.astype(np.float64) ** 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--weights", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.weights)
    samples = [s for s in read_manifest(str(args.manifest)) if s.split == args.split]
    scores = {"-av": lambda av, v: -av, "v-av": lambda av, v: v - av}
    within: dict[tuple[str, str], list[float]] = defaultdict(list)
    video: dict[str, dict[str, float]] = defaultdict(dict)
    members: dict[str, set[str]] = defaultdict(set)
    reals: list[str] = []
    drops, started, frames = [], time.perf_counter(), 0
    for sample in samples:
        cached = cache_file(sample, args.cache)
        if cached is None:
            continue
        grey, mask, audio = clip_inputs(sample.path, cached)
        av, v = step_logits(model, grey, audio)
        frames += len(grey)
        n = len(av)
        talking = active_steps(audio, n)
        fake = SPEC.segments_mask(sample.fake_segments, n)
        per_step = {name: score(av, v) for name, score in scores.items()}
        for name, s in per_step.items():
            video[name][sample.id] = top_fraction_mean(s[mask] if mask.any() else s, 0.1)
        if sample.label == 0:
            reals.append(sample.id)
            shift = int(SHIFT_SECONDS * SPEC.sample_rate)
            shifted, _ = step_logits(model, grey, np.roll(audio, shift))
            drops.append(float(np.mean(shifted[mask] < av[mask])) if mask.any() else np.nan)
        for family, segment in edit_families(sample):
            members[family].add(sample.id)
            inside = SPEC.segments_mask([segment], n)
            # Edits go where the speaker talks; quiet real steps would flag "not speaking".
            outside = ~fake & mask & talking
            inside &= mask
            if inside.any() and outside.any():
                labels = np.concatenate([np.ones(inside.sum()), np.zeros(outside.sum())])
                for name, s in per_step.items():
                    auc = roc_auc(np.concatenate([s[inside], s[outside]]), labels)
                    within[(family, name)].append(auc)
    seconds = time.perf_counter() - started
    print(f"{len(samples)} videos of {args.manifest.name} ({args.split}), {args.weights.name}")
    print(f"real videos, audio shifted by {SHIFT_SECONDS} s: share of face steps whose")
    print(f"audio-visual logit falls {np.nanmean(drops):.2f} (0.5 = no sync sensitivity)")
    print(f"{1000 * seconds / max(frames, 1):.1f} ms per frame (both passes, MFCCs included)\n")
    print(
        "| family | videos | within-video AUC, -av | within, v-av | video AUC, -av | video, v-av |"
    )
    print("|---|---|---|---|---|---|")
    for family in sorted(members):
        ids = sorted(members[family])
        cells = []
        for name in scores:
            w = within[(family, name)]
            cells.append(f"{np.mean(w):.2f}" if w else "–")
        for name in scores:
            values = [video[name][i] for i in ids] + [video[name][i] for i in reals]
            labels = [1] * len(ids) + [0] * len(reals)
            cells.append(f"{roc_auc(np.array(values), np.array(labels)):.2f}" if reals else "–")
        print(f"| {family} | {len(ids)} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
