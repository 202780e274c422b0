"""The synthetic corpus on real clips: its labels are true, its metadata is LAV-DF, its
splits do not share sources, and a seed reproduces it.

"Labels are true" is checked against the source: every output is decoded with PyAV and
compared with the same span of the prepared source clip (after the recorded crop and gain).
Outside the labelled segments audio and mouth pixels match within codec noise; inside each
segment the labelled modality differs, and the changed frames start and end within one step
of the labelled boundaries.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from avdf.cli import main as cli_main
from avdf.errors import OutputExistsError
from avdf.io.decode import read_clip
from avdf.preprocess.face import LIP_INDICES
from avdf.synth import build_corpus, plan_corpus, tts
from avdf.synth.audio_edits import AUDIO_FAMILIES
from avdf.synth.corpus import (
    MAX_REPEATED_FRAME_SHARE,
    EditPlan,
    SourcePools,
    VideoPlan,
    _plan_edits,
    _usable_families,
    apply_variation,
    load_pools,
    metadata_record,
    render,
)
from avdf.synth.encode import write_mp4
from avdf.synth.sources import (
    SAME_PERSON,
    assign_splits,
    bundled_media_root,
    discover,
    name_in,
    person_of,
)
from avdf.synth.visual_edits import VISUAL_FAMILIES, feathered_mask
from avdf.timebase import MediaSpec

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"  # optional: all 29 clips
N_VIDEOS, SEED = 6, 11
LAVDF_FIELDS = {
    "file": str,
    "split": str,
    "fake_periods": list,
    "n_fakes": int,
    "duration": float,
    "modify_video": bool,
    "modify_audio": bool,
    "video_frames": int,
    "audio_frames": int,
    "audio_channels": int,
}
SPEC = MediaSpec()
STEP = SPEC.step_seconds  # 0.04 s

# Bounds, measured on 36 videos of this source set (docs/synthetic-corpus.md): codec noise
# between an output and its source is at most ~6 grey levels (mean |difference| over the face
# or mouth in one frame) and ~4 dB log-spectral distance; edited segments measured >= 12 grey
# levels (mean over the segment) and >= 8 dB.
PIXEL_NOISE = 8.0  # grey levels
PIXEL_CHANGED = 10.0
AUDIO_NOISE_DB = 5.0
# The mouth of another moment can match the original by chance (both closed, as at the end of a
# GRID sentence): those frames are edited but look unchanged, as in LAV-DF's lip-sync fakes.
# For this family, at least half the frames of a segment must change, not its first and last.
CONTENT_DEPENDENT = {"mouth_other_moment"}
AUDIO_CHANGED_DB = 6.5


@pytest.fixture(scope="module")
def media() -> Path:
    """The media bundled with the package: five talking clips (one MPEG-1 GRID recording; the
    train split gets three people, so face swaps happen) and three speech files. Enough for
    every test here, so a clone without ``../shared`` runs them all."""
    return bundled_media_root()


@pytest.fixture(scope="module")
def corpus(media: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("corpus")
    records = build_corpus(out, N_VIDEOS, SEED, media, force=True)
    return out, records


@pytest.fixture(scope="module")
def pools(media: Path, corpus: tuple[Path, list[dict]]) -> SourcePools:
    return load_pools(discover(media), SPEC)  # the same prepared sources the build used


# --- helpers ------------------------------------------------------------------------------------


def _reference(record: dict, pools: SourcePools) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the output would be without edits: frames, audio and landmarks (output pixels)."""
    extra = record["extra"]
    source = pools.find(extra["source"])
    first = SPEC.frames_in(extra["source_start"])
    stop = first + record["video_frames"]
    spf = SPEC.samples_per_frame
    frames, audio = apply_variation(
        source.frames[first:stop],
        source.audio[first * spf : stop * spf],
        tuple(extra["crop"]),
        extra["gain_db"],
    )
    x0, y0, side = extra["crop"]
    scale = frames.shape[2] / side
    landmarks = (source.landmarks[first:stop] - np.array([x0, y0], np.float32)) * scale
    return frames, audio, landmarks


def _region_differences(
    output: np.ndarray, reference: np.ndarray, landmarks: np.ndarray
) -> np.ndarray:
    """(N, 2) mean |output - reference| per frame over the face hull and the mouth."""
    size = output.shape[1:3]
    out = np.zeros((len(output), 2))
    lips = np.asarray(LIP_INDICES)
    for k in range(len(output)):
        diff = np.abs(output[k].astype(np.float32) - reference[k].astype(np.float32)).mean(-1)
        for j, points in enumerate((landmarks[k], landmarks[k][lips])):
            mask = feathered_mask(points, size, 4, 1.0) > 0.5
            out[k, j] = diff[mask].mean()
    return out


def _log_spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """dB RMS distance between STFT log-magnitudes, averaged over frames with signal."""
    window = torch.hann_window(400)

    def spectrum(x: np.ndarray) -> torch.Tensor:
        s = torch.stft(
            torch.from_numpy(x.astype(np.float32)), 400, 160, window=window, return_complex=True
        )
        return 10.0 * torch.log10(s.abs() ** 2 + 1e-8)  # (F, T) dB

    sa, sb = spectrum(a), spectrum(b)
    loud = sa.max(0).values > sa.max() - 50.0  # frames within 50 dB of the loudest
    sa, sb = sa.clamp_min(sa.max() - 80.0), sb.clamp_min(sa.max() - 80.0)
    return float(((sa - sb) ** 2).mean(0).sqrt()[loud].mean())


def _frames_of(periods: list[list[float]], n: int) -> np.ndarray:
    inside = np.zeros(n, bool)
    for start, end in periods:
        inside[SPEC.frames_in(start) : SPEC.frames_in(end)] = True
    return inside


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(int), [0]])))
    return list(zip(edges[::2], edges[1::2], strict=True))


# --- tests ------------------------------------------------------------------------------------


def test_metadata_has_the_lavdf_fields(corpus: tuple[Path, list[dict]]) -> None:
    out, records = corpus
    on_disk = json.loads((out / "metadata.json").read_text())
    assert on_disk == records and len(records) == N_VIDEOS
    for r in records:
        for name, kind in LAVDF_FIELDS.items():
            assert isinstance(r[name], kind), (r["file"], name)
        assert "original" in r and r["audio_channels"] == 1
        assert r["file"] == f"{r['split']}/{r['file'][-10:]}" and (out / r["file"]).is_file()
        assert r["n_fakes"] == len(r["fake_periods"])
        assert r["video_frames"] == SPEC.frames_in(r["duration"])
        assert r["audio_frames"] == r["video_frames"] * SPEC.samples_per_frame
        assert sorted(r["fake_periods"]) == sorted(r["audio_fake_segments"] + [
            p for p in r["visual_fake_segments"] if p not in r["audio_fake_segments"]
        ])  # fmt: skip
        assert r["modify_audio"] == bool(r["audio_fake_segments"])
        assert r["modify_video"] == bool(r["visual_fake_segments"])
        expected_type = {(False, False): "real", (True, False): "audio_modified",
                         (False, True): "visual_modified", (True, True): "both_modified"}  # fmt: skip
        assert r["modify_type"] == expected_type[(r["modify_audio"], r["modify_video"])]
        whole = [e.get("whole_clip", False) for e in r["extra"]["edits"]]
        for (start, end), whole_clip in zip(r["fake_periods"], whole, strict=True):
            if whole_clip:  # the only edit of its video, over all of it
                assert [start, end] == [0.0, r["duration"]] and r["n_fakes"] == 1
            else:
                assert 0.2 - 1e-6 <= end - start <= 2.0 + 1e-6 and 0 < start < end < r["duration"]
        for edit in r["extra"]["edits"]:
            for modality in ("audio", "visual"):
                if modality in edit:
                    families = AUDIO_FAMILIES if modality == "audio" else VISUAL_FAMILIES
                    assert edit[modality]["family"] in families
    kinds = {r["modify_type"] for r in records}
    assert "real" in kinds and len(kinds) >= 3


def test_corpus_loads_as_lavdf(corpus: tuple[Path, list[dict]]) -> None:
    datasets = pytest.importorskip("avdf.datasets")
    out, records = corpus
    samples = datasets.load_dataset("lavdf", out)
    assert len(samples) == len(records)
    by_file = {Path(s.path).name: s for s in samples}
    for r in records:
        sample = by_file[Path(r["file"]).name]
        assert sample.split == r["split"] and sample.label == int(r["n_fakes"] > 0)
        assert [seg.to_list() for seg in sample.fake_segments] == r["fake_periods"]
        assert [seg.to_list() for seg in sample.audio_fake_segments or ()] == r[
            "audio_fake_segments"
        ]
        assert [seg.to_list() for seg in sample.visual_fake_segments or ()] == r[
            "visual_fake_segments"
        ]


def _check_labels(r: dict, path: Path, pools: SourcePools) -> tuple[int, int]:
    """Assert that the video at ``path`` differs from its source exactly where ``r`` says;
    returns the number of (audio, visual) segments checked."""
    checked_audio = checked_visual = 0
    clip = read_clip(path, SPEC)
    n = r["video_frames"]
    assert len(clip.frames) == n, r["file"]
    frames, audio, landmarks = _reference(r, pools)
    # Visual: per-frame face/mouth differences against the unedited reference.
    diffs = _region_differences(clip.frames, frames, landmarks)  # (N, 2)
    visual = _frames_of(r["visual_fake_segments"], n)
    assert diffs[~visual].max(initial=0.0) < PIXEL_NOISE, (r["file"], diffs[~visual].max())
    families = {tuple(e["segment"]): e.get("visual", {}).get("family") for e in r["extra"]["edits"]}
    for start, end in r["visual_fake_segments"]:
        inside = slice(SPEC.frames_in(start), SPEC.frames_in(end))
        assert diffs[inside].max(1).mean() > PIXEL_CHANGED, (r["file"], start, diffs[inside])
        changed = np.flatnonzero(diffs[inside].max(1) > PIXEL_NOISE)
        if families[(start, end)] in CONTENT_DEPENDENT:
            assert len(changed) >= 0.5 * (inside.stop - inside.start), (r["file"], changed)
        else:  # the edit starts and ends within one step of the label
            assert changed[0] <= 1 and changed[-1] >= inside.stop - inside.start - 2, (
                r["file"],
                changed,
            )
        checked_visual += 1
    # Audio: log-spectral distance per labelled segment, and over all unlabelled steps.
    spf = SPEC.samples_per_frame
    decoded = clip.audio[: n * spf]
    assert len(decoded) == n * spf
    fake_audio = _frames_of(r["audio_fake_segments"], n)
    for a, b in _runs(~fake_audio):
        if b - a >= 5:  # >= 0.2 s of real audio
            lsd = _log_spectral_distance(audio[a * spf : b * spf], decoded[a * spf : b * spf])
            assert lsd < AUDIO_NOISE_DB, (r["file"], a, b, lsd)
    for start, end in r["audio_fake_segments"]:
        a, b = SPEC.frames_in(start), SPEC.frames_in(end)
        lsd = _log_spectral_distance(audio[a * spf : b * spf], decoded[a * spf : b * spf])
        assert lsd > AUDIO_CHANGED_DB, (r["file"], start, end, lsd)
        # Changed 40 ms steps begin and end within one step of the label.
        steps = np.array(
            [
                np.abs(decoded[k * spf : (k + 1) * spf] - audio[k * spf : (k + 1) * spf]).mean()
                / (np.abs(audio[k * spf : (k + 1) * spf]).mean() + 1e-4)
                for k in range(max(0, a - 3), min(n, b + 3))
            ]
        )
        changed = np.flatnonzero(steps > 0.5) + max(0, a - 3)
        assert abs(changed[0] - a) <= 1 and abs(changed[-1] + 1 - b) <= 1, (
            r["file"],
            a,
            b,
            changed,
        )
        checked_audio += 1
    return checked_audio, checked_visual


def test_labels_are_true(corpus: tuple[Path, list[dict]], pools: SourcePools) -> None:
    out, records = corpus
    checked = np.sum([_check_labels(r, out / r["file"], pools) for r in records], axis=0)
    assert checked[0] >= 2 and checked[1] >= 2


def _forced(pools: SourcePools, audio: str | None, visual: str | None, whole: bool) -> VideoPlan:
    """A train video of the corpus's plan (which one depends on the families, so the cases
    spread over the sources) with one edit of the given families: the middle 1.2 s of the
    clip, or the whole clip."""
    train = [p for p in plan_corpus(40, SEED, pools) if p.split == "train"]
    if whole:  # sources with 1.4 s to spare: other moments exist for a whole-clip edit
        train = [p for p in train if pools.find(p.source).n_frames >= 110]
    plan = train[zlib.crc32(f"{audio} {visual} {whole}".encode()) % len(train)]
    if whole:
        plan = dataclasses.replace(
            plan, clip_start=0, n_frames=pools.find(plan.source).n_frames - 35
        )
    middle = plan.n_frames // 2
    first, stop = (0, plan.n_frames) if whole else (middle - 15, middle + 15)
    return dataclasses.replace(plan, edits=(EditPlan(first, stop, audio, visual),))


FAMILY_CASES = (
    [pytest.param(f, None, False, id=f"audio-{f}") for f in AUDIO_FAMILIES]
    + [pytest.param(None, f, False, id=f"visual-{f}") for f in VISUAL_FAMILIES]
    + [
        pytest.param("same_speaker_other_moment", "mouth_rerender_lowres", False, id="lipsync"),
        pytest.param("splice_other_speaker", "face_from_other_identity", True, id="whole-swap"),
        pytest.param("out_of_sync", None, True, id="whole-out-of-sync"),
        pytest.param(None, "self_blended", True, id="whole-self-blended"),
        pytest.param("tts_word_replacement", "mouth_rerender_lowres", True, id="whole-tts-mouth"),
    ]
)


@pytest.mark.parametrize(("audio", "visual", "whole"), FAMILY_CASES)
def test_every_family_changes_exactly_its_label(
    audio: str | None, visual: str | None, whole: bool, pools: SourcePools, tmp_path: Path
) -> None:
    if "tts_word_replacement" in (audio, visual) and not tts.available():
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    plan = _forced(pools, audio, visual, whole)
    frames, samples, edits = render(plan, pools)
    write_mp4(tmp_path / "video.mp4", frames, samples, SPEC)
    record = metadata_record(plan, edits, SPEC)
    used = edits[0]
    # The planned family ran (no fallback to another), with its parameters recorded.
    assert (
        used.get("audio", {}).get("family") == audio
        and used.get("visual", {}).get("family") == visual
    ), used
    assert used.get("whole_clip", False) == whole
    if audio == "same_speaker_other_moment" and visual == "mouth_rerender_lowres":
        assert used["visual"]["matched_to_audio"]
        assert used["visual"]["shift_seconds"] == used["audio"]["shift_seconds"]
    checked = _check_labels(record, tmp_path / "video.mp4", pools)
    assert checked == (int(audio is not None), int(visual is not None))


def test_splits_never_share_a_source(corpus: tuple[Path, list[dict]], media: Path) -> None:
    _, records = corpus
    split_of: dict[str, str] = {}
    for r in records:
        used = [r["extra"]["source"]] + [
            e[k]["donor"] for e in r["extra"]["edits"] for k in ("audio", "visual")
            if k in e and "donor" in e[k]
        ]  # fmt: skip
        for name in used:
            assert split_of.setdefault(name, r["split"]) == r["split"], name
    for r in records:  # every record names its source clip and its person
        assert r["extra"]["source"].startswith("talking/") and r["extra"]["speaker"]
        assert r["original"] == (r["extra"]["source"] if r["n_fakes"] else None)
    talking = discover(media).talking
    splits = assign_splits(talking)
    assert sorted(p for s in splits.values() for p in s) == sorted(talking)
    assert [len(splits[s]) for s in ("train", "dev", "test")] == [3, 1, 1]
    thirteen = assign_splits([Path(f"clip{i:02d}.mp4") for i in range(13)])
    assert [len(thirteen[s]) for s in ("train", "dev", "test")] == [9, 2, 2]


def test_one_person_stays_in_one_split() -> None:
    names = [n for group in SAME_PERSON for n in sorted(group)]
    names += [f"other{i:02d}.mp4" for i in range(25)]
    splits = assign_splits([Path("talking") / n for n in names])
    split_of = {p.name: s for s, paths in splits.items() for p in paths}
    assert len(split_of) == len(names) and all(splits.values())
    for group in SAME_PERSON:
        assert len({split_of[n] for n in group}) == 1, group


def test_sources_are_probed_not_matched_by_extension(tmp_path: Path) -> None:
    bundled = bundled_media_root()
    (tmp_path / "talking").mkdir()
    (tmp_path / "speech").mkdir()
    shutil.copy(bundled / "talking" / "lipnet_grid_sbwe5n.mpg", tmp_path / "talking")
    shutil.copy(
        bundled / "talking" / "talking-face_pc-avs_00067.mp4", tmp_path / "talking" / "a.bin"
    )
    (tmp_path / "talking" / "notes.mp4").write_text("not a video")
    shutil.copy(bundled / "speech" / "speechbrain_spk1_snt1.wav", tmp_path / "talking" / "x.wav")
    shutil.copy(bundled / "speech" / "speechbrain_spk1_snt1.wav", tmp_path / "speech" / "s.data")
    (tmp_path / "speech" / "README").write_text("licences")
    found = discover(tmp_path)
    # Video + audio for talking (an audio-only file is not a talking clip), audio for speech.
    assert [p.name for p in found.talking] == ["a.bin", "lipnet_grid_sbwe5n.mpg"]
    assert [p.name for p in found.speech] == ["s.data"]


def test_linked_in_sources_keep_their_names_in_the_media_folder(tmp_path: Path) -> None:
    # A media folder assembled from links (how a second corpus borrows the shared speech
    # folder): sources must be named by their place in this folder, not by the link's target,
    # or the folds cannot recognise a donor voice two corpora share.
    bundled = bundled_media_root()
    (tmp_path / "talking").mkdir()
    clips = sorted(p for p in (bundled / "talking").iterdir() if p.suffix in {".mp4", ".mpg"})
    for clip in clips:
        (tmp_path / "talking" / clip.name).symlink_to(clip)
    (tmp_path / "speech").symlink_to(bundled / "speech", target_is_directory=True)
    found = discover(tmp_path)
    assert [name_in(p, found.root) for p in found.talking] == [f"talking/{c.name}" for c in clips]
    speech = [name_in(p, found.root) for p in found.speech]
    assert speech and all(n.startswith("speech/") for n in speech)


def test_prepared_sources_have_a_face_in_every_clip(pools: SourcePools) -> None:
    clips = [c for split in pools.talking.values() for c in split]
    assert any(c.name.endswith(".mpg") for c in clips)  # MPEG-1 GRID recordings decode
    for clip in clips:
        assert clip.face_present.mean() > 0.95, clip.name
        assert clip.frames.shape[1:] == (224, 224, 3) and len(clip.audio) == clip.n_frames * 640


def test_no_freeze_where_the_source_repeats_its_own_frames(pools: SourcePools) -> None:
    """A clip up-sampled from half its frame rate shows every picture twice; a freeze cut into
    it looks like its genuine stretches, so the family is not offered there (a label no
    detector could learn). The same clip at its own rate keeps it."""
    clip = max(pools.talking["train"], key=lambda c: c.n_frames)
    doubled = dataclasses.replace(
        clip,
        frames=np.repeat(clip.frames, 2, axis=0)[: clip.n_frames],
        landmarks=np.repeat(clip.landmarks, 2, axis=0)[: clip.n_frames],
    )
    assert clip.repeated_frame_share < MAX_REPEATED_FRAME_SHARE < doubled.repeated_frame_share
    assert "frozen_or_repeated" in _usable_families(pools, "train", clip)[1]
    assert "frozen_or_repeated" not in _usable_families(pools, "train", doubled)[1]
    rng = np.random.default_rng(0)
    planned = [
        e.visual_family
        for _ in range(60)
        for e in _plan_edits(doubled, 0, min(doubled.n_frames, 150), pools, "train", rng)
    ]
    assert any(planned) and "frozen_or_repeated" not in planned


def test_every_clip_is_a_source() -> None:
    # All 29 shared clips (11 MPEG-1 GRID) when ../shared/media is here, else the bundled five.
    root = SHARED if (SHARED / "talking").is_dir() else bundled_media_root()
    found = discover(root)
    files = [p for p in (root / "talking").iterdir() if p.is_file() and p.suffix != ".tsv"]
    assert len(found.talking) == len(files) >= (29 if root == SHARED else 5)
    assert sum(p.suffix == ".mpg" for p in found.talking) >= (11 if root == SHARED else 1)
    splits = assign_splits(found.talking)
    people = {s: {person_of(p) for p in paths} for s, paths in splits.items()}
    assert not (people["train"] & people["dev"] or people["train"] & people["test"])
    assert not people["dev"] & people["test"]
    assert min(len(splits["dev"]), len(splits["test"])) >= (3 if root == SHARED else 1)


def test_same_seed_same_corpus(
    corpus: tuple[Path, list[dict]], media: Path, tmp_path: Path
) -> None:
    out, records = corpus
    again = build_corpus(tmp_path / "again", N_VIDEOS, SEED, media)
    assert again == records
    for r in records[:3]:
        assert (tmp_path / "again" / r["file"]).read_bytes() == (out / r["file"]).read_bytes()
    # Another seed plans another corpus (planning alone: no pixels needed to see it).
    pools = load_pools(discover(media), SPEC)
    assert plan_corpus(N_VIDEOS, SEED + 1, pools) != plan_corpus(N_VIDEOS, SEED, pools)


def test_parallel_build_after_torch_is_identical(
    corpus: tuple[Path, list[dict]], media: Path, tmp_path: Path
) -> None:
    # Run torch ops on two threads first: forked workers of such a process can deadlock;
    # spawned ones (what --workers uses) cannot.
    torch.set_num_threads(2)
    torch.randn(256, 256) @ torch.randn(256, 256)
    out, records = corpus
    again = build_corpus(tmp_path / "parallel", N_VIDEOS, SEED, media, workers=2)
    assert again == records
    for r in records:
        assert (tmp_path / "parallel" / r["file"]).read_bytes() == (out / r["file"]).read_bytes()
    assert not list((tmp_path / "parallel").glob(".avdf-synth-sources-*"))


def test_cli_refuses_to_overwrite(
    corpus: tuple[Path, list[dict]], media: Path, capsys: pytest.CaptureFixture
) -> None:
    out, _ = corpus
    before = (out / "metadata.json").read_bytes()
    status = cli_main(["synth", "--out", str(out), "--videos", "2", "--source-media", str(media)])
    assert status == 1
    assert "already exists" in capsys.readouterr().err
    assert (out / "metadata.json").read_bytes() == before


def test_cli_says_when_the_tts_family_is_left_out(
    corpus: tuple[Path, list[dict]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # Without espeak-ng the same seed gives another corpus (no TTS family): never silently.
    out, _ = corpus
    monkeypatch.setattr(tts, "available", lambda: False)
    assert cli_main(["synth", "--out", str(out), "--videos", "2"]) == 1  # refuses to overwrite
    err = capsys.readouterr().err
    assert "avdf synth: warning: espeak-ng is not installed" in err
    assert "tts_word_replacement" in err
    # A library caller is told too, before anything is built or refused.
    with pytest.warns(tts.MissingWarning, match="tts_word_replacement"):
        with pytest.raises(OutputExistsError):
            build_corpus(out, 2)


def test_contact_sheet_script(corpus: tuple[Path, list[dict]], media: Path, tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "contact_sheet.py"
    loader = importlib.util.spec_from_file_location("contact_sheet", script)
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    out, records = corpus
    columns = module.make_sheet(out, media, tmp_path / "sheet.png")
    # One column per visual family (or kind) that occurs in the corpus, each naming it.
    assert columns and all(any(f in c for f in VISUAL_FAMILIES) for c in columns)
    shown = {e["visual"]["family"] for r in records for e in r["extra"]["edits"] if "visual" in e}
    assert all(any(f in c for c in columns) for f in shown)
    image = cv2.imread(str(tmp_path / "sheet.png"))
    assert image is not None and image.shape[0] > 2 * 224


def test_bundled_media_is_small_and_licensed() -> None:
    root = bundled_media_root()
    files = [p for p in root.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1.5e6
    rows = (root / "SOURCES.tsv").read_text().splitlines()[1:]
    listed = {row.split("\t")[0] for row in rows}
    media = discover(root)
    assert {p.relative_to(root).as_posix() for p in media.talking + media.speech} == listed
    assert all(row.split("\t")[4] for row in rows)  # every file has a licence
