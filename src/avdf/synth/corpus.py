"""The synthetic corpus: plan every output video, render it from the prepared sources, write it
and its LAV-DF-style metadata record.

Planning draws everything that decides the labels (split, source span, segments, modality,
family) from ``numpy.random.default_rng([seed, index])``, so a video's plan depends only on the
seed, its index and the source files, and rendering in parallel changes nothing.
"""

from __future__ import annotations

import csv
import json
import multiprocessing
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from avdf.atomic import write_text_atomic
from avdf.errors import OutputExistsError
from avdf.synth import tts
from avdf.synth.audio_edits import AUDIO_FAMILIES, AudioContext, rms
from avdf.synth.encode import write_mp4
from avdf.synth.sources import (
    OUTPUT_SIZE,
    SPLITS,
    SourceMedia,
    TalkingSource,
    assign_splits,
    discover,
    load_speech,
    name_in,
    prepare_talking,
)
from avdf.synth.visual_edits import VISUAL_FAMILIES, VisualContext
from avdf.timebase import MediaSpec
from avdf.types import Segment

REAL_FRACTION = 0.27  # LAV-DF: 36,431 real of 136,304 videos
HELD_OUT_FRACTION = 0.15  # of the videos for each of dev and test (train gets the rest)
CLIP_SECONDS = (3.0, 8.0)
SEGMENT_SECONDS = (0.2, 2.0)
N_FAKES_PROBABILITIES = (0.55, 0.30, 0.15)  # 1, 2, 3 fake segments in a fake video
MODALITIES = ("audio", "visual", "both")
MIN_GAP_SECONDS = 0.2  # between two fake segments, and from the clip's ends
ACTIVE_AUDIO_RATIO = 0.5  # an audio edit goes where the segment RMS >= this x the clip RMS
# Of the fake videos, this share is manipulated over its whole length (FakeAVCeleb-style face
# swaps, dubbed or foreign audio), the rest in 1-3 short segments (LAV-DF, AV-Deepfake1M).
WHOLE_CLIP_FRACTION = 0.15
WHOLE_CLIP_AUDIO = ("splice_other_speaker", "out_of_sync", "tts_word_replacement",
                    "pitch_formant_shift", "mel_resynthesis")  # fmt: skip
WHOLE_CLIP_VISUAL = ("face_from_other_identity", "self_blended", "mouth_rerender_lowres",
                     "face_artefact")  # fmt: skip
# Of the "both" segments, this share is a lip-sync edit: the audio from another moment of the
# same speaker and the mouth re-rendered from that same moment (new words, matching lips).
LIPSYNC_FRACTION = 0.35
# Sources repeating more of their frames get no frozen_or_repeated edit. Of the 29 shared clips
# five are above it (14-59 %, demo inputs up-sampled in frame rate), the rest at most 3 %.
MAX_REPEATED_FRAME_SHARE = 0.10
CROP_SCALE = (0.94, 1.0)  # label-preserving variation applied to every output
GAIN_DB = (-3.0, 3.0)
_OUTPUT_NAME = re.compile(r"^\d{6}\.mp4$")


@dataclass(frozen=True)
class EditPlan:
    """One fake segment: frames ``[first, stop)`` of the clip and the families applied."""

    first: int
    stop: int
    audio_family: str | None
    visual_family: str | None

    @property
    def modality(self) -> str:
        if self.audio_family and self.visual_family:
            return "both"
        return "audio" if self.audio_family else "visual"


@dataclass(frozen=True)
class VideoPlan:
    index: int
    split: str
    source: str  # TalkingSource.name
    person: str  # TalkingSource.person: identity key shared by clips of one person
    clip_start: int  # source frame of the clip's first frame
    n_frames: int
    edits: tuple[EditPlan, ...]
    crop: tuple[int, int, int]  # x0, y0, side in output pixels, resized back to OUTPUT_SIZE
    gain_db: float
    render_seed: int

    @property
    def file(self) -> str:
        return f"{self.split}/{self.index:06d}.mp4"


@dataclass
class SourcePools:
    """Prepared sources, grouped by split (a source belongs to exactly one split)."""

    spec: MediaSpec
    talking: dict[str, list[TalkingSource]]  # split -> clips
    speech: dict[str, list[tuple[str, np.ndarray]]]  # split -> other speakers' audio
    root: Path = field(default_factory=Path)

    def find(self, name: str) -> TalkingSource:
        for clips in self.talking.values():
            for clip in clips:
                if clip.name == name:
                    return clip
        raise KeyError(name)


_POOL_MEMO: dict[tuple[Any, ...], SourcePools] = {}


def load_pools(media: SourceMedia, spec: MediaSpec) -> SourcePools:
    """Decode and face-track every talking clip once; load every speech file once.

    Remembered for the life of the process (keyed by path, size and mtime of every file), so
    building several corpora from the same sources prepares them only once."""
    key = (spec,) + tuple(
        (str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in media.talking + media.speech
    )
    if key not in _POOL_MEMO:
        _POOL_MEMO.clear()  # keep one set of sources in memory, not one per folder ever seen
        _POOL_MEMO[key] = _load_pools(media, spec)
    return _POOL_MEMO[key]


def _load_pools(media: SourceMedia, spec: MediaSpec) -> SourcePools:
    talking_splits = assign_splits(media.talking)
    speech_splits = (
        assign_splits(media.speech)
        if len(media.speech) >= 3
        else {s: list(media.speech) for s in SPLITS}  # too few to split: shared (documented)
    )
    talking = {s: [prepare_talking(p, media.root, spec) for p in talking_splits[s]] for s in SPLITS}
    speech: dict[str, list[tuple[str, np.ndarray]]] = {}
    for s in SPLITS:
        pool = [(name_in(p, media.root), load_speech(p, spec)) for p in speech_splits[s]]
        speech[s] = pool
    return SourcePools(spec, talking, speech, media.root)


# --- planning --------------------------------------------------------------------------------


def _split_sequence(n_videos: int, pools: SourcePools, seed: int) -> list[str]:
    available = [s for s in SPLITS if pools.talking[s]]
    counts = {s: 0 for s in SPLITS}
    for s in ("dev", "test"):
        if s in available:
            counts[s] = round(HELD_OUT_FRACTION * n_videos)
    counts["train" if "train" in available else available[0]] += n_videos - sum(counts.values())
    order = [s for s in SPLITS for _ in range(counts[s])]
    np.random.default_rng([seed, 2**32 - 1]).shuffle(order)
    return order


def _real_flags(splits: list[str], seed: int) -> list[bool]:
    """Exactly ``round(REAL_FRACTION * n)`` real videos within each split."""
    flags = [False] * len(splits)
    rng = np.random.default_rng([seed, 2**32 - 2])
    for s in SPLITS:
        members = [i for i, x in enumerate(splits) if x == s]
        for i in rng.permutation(members)[: round(REAL_FRACTION * len(members))]:
            flags[int(i)] = True
    return flags


def _plan_edits(
    source: TalkingSource,
    clip_start: int,
    n_frames: int,
    pools: SourcePools,
    split: str,
    rng: np.random.Generator,
) -> tuple[EditPlan, ...]:
    spec = pools.spec
    wanted = int(rng.choice([1, 2, 3], p=N_FAKES_PROBABILITIES))
    gap = spec.frames_in(MIN_GAP_SECONDS)
    shortest, longest = (spec.frames_in(t) for t in SEGMENT_SECONDS)
    spf = spec.samples_per_frame
    clip_audio = source.audio[clip_start * spf : (clip_start + n_frames) * spf]
    clip_rms = rms(clip_audio)
    present = source.face_present
    audio_families, visual_families = _usable_families(pools, split, source)
    edits: list[EditPlan] = []
    for _ in range(200):
        if len(edits) == wanted:
            break
        modality = str(rng.choice(MODALITIES))
        length = int(rng.integers(shortest, min(longest, n_frames // 3) + 1))
        if n_frames - length - 2 * gap < 0:
            continue
        first = int(rng.integers(gap, n_frames - length - gap + 1))
        stop = first + length
        if any(first < e.stop + gap and e.first < stop + gap for e in edits):
            continue
        if modality != "visual":
            segment_rms = rms(clip_audio[first * spf : stop * spf])
            if segment_rms < ACTIVE_AUDIO_RATIO * clip_rms:
                continue  # replace words, not silence
        if modality != "audio":
            here = clip_start + first
            if not present[max(0, here - 1) : clip_start + stop + 1].all():
                continue
        audio = str(rng.choice(audio_families)) if modality != "visual" else None
        visual = str(rng.choice(visual_families)) if modality != "audio" else None
        if modality == "both" and rng.random() < LIPSYNC_FRACTION:
            audio, visual = "same_speaker_other_moment", "mouth_rerender_lowres"
        edits.append(EditPlan(first, stop, audio, visual))
    return tuple(sorted(edits, key=lambda e: e.first))


def _usable_families(
    pools: SourcePools, split: str, source: TalkingSource
) -> tuple[list[str], list[str]]:
    """Audio and visual families whose material exists: another speaker's speech to splice,
    espeak-ng for text-to-speech, another person's face to swap in, and a source that does not
    repeat frames itself for a freeze or repeat (there, a genuine stretch looks the same)."""
    missing = set()
    if source.repeated_frame_share > MAX_REPEATED_FRAME_SHARE:
        missing.add("frozen_or_repeated")
    if not pools.speech[split] and not _other_people(pools, split, source):
        missing.add("splice_other_speaker")
    if not tts.available():
        missing.add("tts_word_replacement")
    if not _other_people(pools, split, source):
        missing.add("face_from_other_identity")
    return [f for f in AUDIO_FAMILIES if f not in missing], [
        f for f in VISUAL_FAMILIES if f not in missing
    ]


def _plan_whole_clip(
    source: TalkingSource,
    clip_start: int,
    n_frames: int,
    pools: SourcePools,
    split: str,
    rng: np.random.Generator,
) -> tuple[EditPlan, ...]:
    """One edit over the whole clip (visual only where the face is visible throughout)."""
    audio_families, visual_families = _usable_families(pools, split, source)
    audio_choices = [f for f in WHOLE_CLIP_AUDIO if f in audio_families]
    visual_choices = [f for f in WHOLE_CLIP_VISUAL if f in visual_families]
    modality = str(rng.choice(MODALITIES))
    if not source.face_present[clip_start : clip_start + n_frames].all():
        modality = "audio"
    audio = str(rng.choice(audio_choices)) if modality != "visual" else None
    visual = str(rng.choice(visual_choices)) if modality != "audio" else None
    return (EditPlan(0, n_frames, audio, visual),)


def plan_corpus(n_videos: int, seed: int, pools: SourcePools) -> list[VideoPlan]:
    """Decide every video of the corpus (no pixels touched)."""
    spec = pools.spec
    splits = _split_sequence(n_videos, pools, seed)
    real = _real_flags(splits, seed)
    plans = []
    for index, split in enumerate(splits):
        rng = np.random.default_rng([seed, index])
        clips = pools.talking[split]
        source = clips[int(rng.integers(len(clips)))]
        lo, hi = (spec.frames_in(t) for t in CLIP_SECONDS)
        n_frames = int(rng.integers(min(lo, source.n_frames), min(hi, source.n_frames) + 1))
        clip_start = int(rng.integers(0, source.n_frames - n_frames + 1))
        if real[index]:
            edits: tuple[EditPlan, ...] = ()
        elif rng.random() < WHOLE_CLIP_FRACTION:
            edits = _plan_whole_clip(source, clip_start, n_frames, pools, split, rng)
        else:
            edits = _plan_edits(source, clip_start, n_frames, pools, split, rng)
        side = int(round(OUTPUT_SIZE * rng.uniform(*CROP_SCALE)))
        crop = (
            int(rng.integers(0, OUTPUT_SIZE - side + 1)),
            int(rng.integers(0, OUTPUT_SIZE - side + 1)),
            side,
        )
        gain_db = round(float(rng.uniform(*GAIN_DB)), 3)
        plans.append(
            VideoPlan(
                index, split, source.name, source.person, clip_start, n_frames, edits, crop, gain_db,
                int(rng.integers(2**31)),
            )
        )  # fmt: skip
    return plans


# --- rendering -------------------------------------------------------------------------------


def apply_variation(
    frames: np.ndarray, audio: np.ndarray, crop: tuple[int, int, int], gain_db: float
) -> tuple[np.ndarray, np.ndarray]:
    """The label-preserving variation of every output: crop a square of ``side`` pixels at
    (x0, y0), resize it back to the full size, and scale the audio by ``gain_db``."""
    x0, y0, side = crop
    size = frames.shape[2]
    if side != size or x0 or y0:
        frames = np.stack(
            [
                cv2.resize(
                    f[y0 : y0 + side, x0 : x0 + side], (size, size), interpolation=cv2.INTER_LINEAR
                )
                for f in frames
            ]
        )
    return frames, (audio * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def _apply_family(
    families: dict[str, Any], planned: str, call: Any, rng: np.random.Generator
) -> tuple[str, dict[str, Any]]:
    """Run the planned family; if the material it needs is missing (ValueError), the next
    family in registry order takes its place. Returns the family actually used."""
    names = list(families)
    order = names[names.index(planned) :] + names[: names.index(planned)]
    for name in order:
        try:
            return name, call(families[name], rng)
        except ValueError:
            continue
    raise RuntimeError(f"no {planned!r}-like family could be applied")


def render(
    plan: VideoPlan, pools: SourcePools
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Frames (N, S, S, 3) uint8, audio (N * samples_per_frame,) float32 and the record of
    every edit (segment in seconds, modality, family names and parameters)."""
    spec = pools.spec
    spf = spec.samples_per_frame
    source = pools.find(plan.source)
    stop = plan.clip_start + plan.n_frames
    frames = source.frames[plan.clip_start : stop].copy()
    audio = source.audio[plan.clip_start * spf : stop * spf].copy()
    landmarks = source.landmarks[plan.clip_start : stop]
    rng = np.random.default_rng(plan.render_seed)
    audio_ctx = AudioContext(
        spec, source, plan.clip_start * spf, _other_speech(pools, plan.split, source)
    )
    donors = _other_people(pools, plan.split, source)
    visual_ctx = VisualContext(spec, source, plan.clip_start, donors)
    records = []
    for edit in plan.edits:
        record: dict[str, Any] = {
            "segment": Segment(spec.frame_time(edit.first), spec.frame_time(edit.stop)).to_list(),
            "modality": edit.modality,
        }
        if edit.audio_family:
            name, params = _apply_family(
                AUDIO_FAMILIES,
                edit.audio_family,
                lambda f, r, e=edit: f(audio, e.first * spf, e.stop * spf, audio_ctx, r),
                rng,
            )
            record["audio"] = {"family": name, **params}
            # A lip-sync edit: the mouth comes from the moment the new audio came from.
            lipsync = name == "same_speaker_other_moment" and edit.visual_family == (
                "mouth_rerender_lowres"
            )
            visual_ctx.matched_shift_frames = (
                round(params["shift_seconds"] * spec.fps) if lipsync else None
            )
        if edit.visual_family:
            name, params = _apply_family(
                VISUAL_FAMILIES,
                edit.visual_family,
                lambda f, r, e=edit: f(frames, landmarks, e.first, e.stop, visual_ctx, r),
                rng,
            )
            record["visual"] = {"family": name, **params}
            visual_ctx.matched_shift_frames = None
        if edit.first == 0 and edit.stop == plan.n_frames:
            record["whole_clip"] = True
        records.append(record)
    frames, audio = apply_variation(frames, audio, plan.crop, plan.gain_db)
    return frames, audio, records


def _other_people(pools: SourcePools, split: str, source: TalkingSource) -> list[TalkingSource]:
    """The split's talking clips of people other than the source's (face and voice donors)."""
    return [c for c in pools.talking[split] if c.person != source.person]


def _other_speech(
    pools: SourcePools, split: str, source: TalkingSource
) -> list[tuple[str, np.ndarray]]:
    """Speech files of the split plus the soundtracks of the split's other people's clips."""
    others = [(c.name, c.audio) for c in _other_people(pools, split, source)]
    return pools.speech[split] + others


# --- metadata ---------------------------------------------------------------------------------


def _round(t: float) -> float:
    return round(t, 4)


def metadata_record(
    plan: VideoPlan, edits: list[dict[str, Any]], spec: MediaSpec
) -> dict[str, Any]:
    """LAV-DF fields, AV-Deepfake1M segment fields, and ``extra`` with every edit."""
    periods = [[_round(a), _round(b)] for a, b in (e["segment"] for e in edits)]
    audio_segments = [p for p, e in zip(periods, edits, strict=True) if "audio" in e]
    visual_segments = [p for p, e in zip(periods, edits, strict=True) if "visual" in e]
    modify_audio, modify_video = bool(audio_segments), bool(visual_segments)
    if not edits:
        modify_type = "real"
    elif modify_audio and modify_video:
        modify_type = "both_modified"
    else:
        modify_type = "audio_modified" if modify_audio else "visual_modified"
    return {
        "file": plan.file,
        "split": plan.split,
        "fake_periods": periods,
        "n_fakes": len(periods),
        "duration": _round(plan.n_frames / spec.fps),
        "original": plan.source if edits else None,
        "modify_video": modify_video,
        "modify_audio": modify_audio,
        "video_frames": plan.n_frames,
        "audio_frames": plan.n_frames * spec.samples_per_frame,
        "audio_channels": 1,
        "modify_type": modify_type,
        "audio_fake_segments": audio_segments,
        "visual_fake_segments": visual_segments,
        "extra": {
            "source": plan.source,
            "speaker": plan.person,
            "source_start": _round(spec.frame_time(plan.clip_start)),
            "crop": list(plan.crop),
            "gain_db": plan.gain_db,
            "edits": [{**e, "segment": p} for e, p in zip(edits, periods, strict=True)],
        },
    }


# --- building -------------------------------------------------------------------------------

_WORKER_STATE: dict[str, Any] = {}


def _render_and_write(plan: VideoPlan) -> dict[str, Any]:
    pools: SourcePools = _WORKER_STATE["pools"]
    out_dir: Path = _WORKER_STATE["out_dir"]
    frames, audio, edits = render(plan, pools)
    write_mp4(out_dir / plan.file, frames, audio, pools.spec)
    return metadata_record(plan, edits, pools.spec)


def _check_output(out_dir: Path, force: bool) -> None:
    existing = [out_dir / "metadata.json"] + [
        p for s in SPLITS if (out_dir / s).is_dir() for p in (out_dir / s).iterdir()
    ]
    existing = [p for p in existing if p.exists()]
    if existing and not force:
        raise OutputExistsError(existing[0])
    for stale in out_dir.glob(".avdf-synth-sources-*"):  # left by a killed parallel build
        shutil.rmtree(stale, ignore_errors=True)
    for p in existing:
        if p.parent.name in SPLITS and _OUTPUT_NAME.match(p.name):
            p.unlink()  # stale videos of an earlier, larger corpus


def _write_json_atomic(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=1) + "\n")


def _write_sources(out_dir: Path, pools: SourcePools, used: set[str]) -> None:
    """Copy the origin/licence rows of the source files used, when the source folder has them."""
    table = pools.root / "SOURCES.tsv"
    if not table.is_file():
        return
    with table.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    kept = [rows[0]] + [r for r in rows[1:] if r and r[0] in used]
    with (out_dir / "SOURCES.tsv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t", lineterminator="\n").writerows(kept)


def build_corpus(
    out_dir: str | Path,
    n_videos: int,
    seed: int = 0,
    source_media: str | Path | None = None,
    *,
    force: bool = False,
    workers: int = 1,
    spec: MediaSpec | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Build ``n_videos`` clips under ``out_dir/{train,dev,test}/`` and ``out_dir/metadata.json``
    (returned as a list of records). ``source_media`` defaults to
    :func:`avdf.synth.sources.default_media_root`."""
    if n_videos < 1:
        raise ValueError("n_videos must be at least 1")
    if not tts.available():  # the corpus changes, so say so before anything else
        warnings.warn(tts.MISSING_MESSAGE, tts.MissingWarning, stacklevel=2)
    out = Path(out_dir)
    _check_output(out, force)
    spec = spec or MediaSpec()
    pools = load_pools(discover(source_media), spec)
    plans = plan_corpus(n_videos, seed, pools)
    out.mkdir(parents=True, exist_ok=True)
    _WORKER_STATE.update(pools=pools, out_dir=out)
    try:
        records = list(_progress(_run(plans, workers), len(plans), progress))
    finally:
        _WORKER_STATE.clear()
    records.sort(key=lambda r: r["file"][-10:])
    used = {p.source for p in plans} | {
        e[k]["donor"] for r in records for e in r["extra"]["edits"] for k in ("audio", "visual")
        if k in e and "donor" in e[k]
    }  # fmt: skip
    _write_sources(out, pools, used)
    _write_json_atomic(out / "metadata.json", records)
    return records


def _run(plans: list[VideoPlan], workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1 or len(plans) < 2:
        yield from map(_render_and_write, plans)
        return
    # Spawned workers (not forked: a process that already ran torch ops in parallel can
    # deadlock forked children through the inherited OpenMP pool). They memory-map the prepared
    # sources from .npy files written once, instead of decoding and tracking them again.
    pools: SourcePools = _WORKER_STATE["pools"]
    out_dir: Path = _WORKER_STATE["out_dir"]
    with tempfile.TemporaryDirectory(prefix=".avdf-synth-sources-", dir=out_dir) as folder:
        layout = _save_pools(pools, Path(folder))
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _init_worker, (Path(folder), layout, out_dir)) as pool:
            yield from pool.imap_unordered(_render_and_write, plans, chunksize=2)


def _save_pools(pools: SourcePools, folder: Path) -> dict[str, Any]:
    """Write every prepared array of ``pools`` to ``folder`` (one .npy each); returns what
    :func:`_load_saved_pools` needs besides the arrays (small, pickled to each worker)."""
    talking: dict[str, list[dict[str, Any]]] = {}
    speech: dict[str, list[tuple[str, str]]] = {}
    count = 0
    for split in SPLITS:
        talking[split], speech[split] = [], []
        for clip in pools.talking[split]:
            stem, count = f"talking{count:03d}", count + 1
            for field_name in ("frames", "audio", "landmarks"):
                np.save(folder / f"{stem}.{field_name}.npy", getattr(clip, field_name))
            talking[split].append(
                {"stem": stem, "name": clip.name, "person": clip.person, "crop": clip.crop_box}
            )
        for name, samples in pools.speech[split]:
            stem, count = f"speech{count:03d}", count + 1
            np.save(folder / f"{stem}.npy", samples)
            speech[split].append((name, stem))
    return {"spec": pools.spec, "root": pools.root, "talking": talking, "speech": speech}


def _load_saved_pools(folder: Path, layout: dict[str, Any]) -> SourcePools:
    """The pools written by :func:`_save_pools`, memory-mapped read-only (shared page cache)."""

    def load(name: str) -> np.ndarray:
        return np.load(folder / f"{name}.npy", mmap_mode="r")

    talking = {
        split: [
            TalkingSource(
                name=c["name"],
                person=c["person"],
                frames=load(f"{c['stem']}.frames"),
                audio=load(f"{c['stem']}.audio"),
                landmarks=load(f"{c['stem']}.landmarks"),
                crop_box=c["crop"],
            )
            for c in clips
        ]
        for split, clips in layout["talking"].items()
    }
    speech = {
        split: [(name, load(stem)) for name, stem in files]
        for split, files in layout["speech"].items()
    }
    return SourcePools(layout["spec"], talking, speech, layout["root"])


def _init_worker(folder: Path, layout: dict[str, Any], out_dir: Path) -> None:
    _single_thread()
    _WORKER_STATE.update(pools=_load_saved_pools(folder, layout), out_dir=out_dir)


def _single_thread() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _progress(
    records: Iterator[dict[str, Any]], total: int, enabled: bool
) -> Iterator[dict[str, Any]]:
    if not enabled:
        yield from records
        return
    from tqdm import tqdm

    yield from tqdm(records, total=total, unit="video", desc="avdf synth")
