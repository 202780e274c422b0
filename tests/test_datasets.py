"""Dataset adapters on miniature copies of each official layout, built from real clips."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import media_fixtures as fx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avdf.datasets import DATASETS, load_dataset
from avdf.datasets import fakeavceleb as favc
from avdf.datasets._common import SUBSETS, container_duration, parse_segments
from avdf.errors import InputError, MetadataError
from avdf.types import Sample, Segment

CLIP_FRAMES = 20  # 0.8 s at 25 fps
CLIP_SECONDS = CLIP_FRAMES / 25


def cut_clip(source: Path, out: Path, frames: int = CLIP_FRAMES, size: int = 64) -> Path:
    """Decode the first ``frames`` frames and their audio, re-encode H.264 + AAC (tiny)."""
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        v_out = dst.add_stream("libx264", rate=25)
        v_out.width = v_out.height = size
        v_out.pix_fmt = "yuv420p"
        a_out = dst.add_stream("aac", rate=16000)
        a_out.layout = "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        for i, frame in enumerate(src.decode(src.streams.video[0])):
            if i == frames:
                break
            small = frame.reformat(width=size, height=size, format="yuv420p")
            small.pts, small.time_base = i, Fraction(1, 25)
            dst.mux(v_out.encode(small))
        dst.mux(v_out.encode())
        src.seek(0)
        wanted = int(frames / 25 * 16000)
        pieces = []
        for frame in src.decode(src.streams.audio[0]):
            pieces.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
            if sum(len(p) for p in pieces) >= wanted:
                break
        samples = np.concatenate(pieces)[:wanted].astype(np.float32)
        for start in range(0, wanted, 1024):
            chunk = samples[None, start : start + 1024]
            audio = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk), format="fltp", layout="mono"
            )
            audio.sample_rate, audio.pts = 16000, start
            dst.mux(a_out.encode(audio))
        dst.mux(a_out.encode())
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    names = ["talking-face_pc-avs_00015.mp4", "talking-face_pc-avs_00067.mp4"]
    return [cut_clip(fx.talking(n), folder / f"clip{i}.mp4") for i, n in enumerate(names)]


def place(clip: Path, root: Path, relative: str) -> Path:
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip, target)
    return target


# --- miniature trees, one per official layout ----------------------------------------------
def lavdf_record(file: str, split: str, periods: list, video: bool, audio: bool) -> dict:
    """A record with every field of a real LAV-DF metadata.json entry."""
    return {
        "file": file,
        "n_fakes": len(periods),
        "fake_periods": periods,
        "timestamps": [["hello", 0.0, 0.3], ["there", 0.3, 0.7]],
        "duration": CLIP_SECONDS,
        "transcript": "hello there",
        "original": None if not periods else "train/000000.mp4",
        "modify_video": video,
        "modify_audio": audio,
        "split": split,
        "video_frames": CLIP_FRAMES,
        "audio_channels": 1,
        "audio_frames": int(CLIP_SECONDS * 16000),
    }


def build_lavdf(root: Path, clips: list[Path], records: list[dict] | None = None) -> Path:
    records = records or [
        lavdf_record("train/000000.mp4", "train", [], False, False),
        lavdf_record("train/000001.mp4", "train", [[0.2, 0.4]], True, False),
        lavdf_record("dev/000002.mp4", "dev", [[0.1, 0.3], [0.5, 0.7]], False, True),
        lavdf_record("test/000003.mp4", "test", [[0.3, 0.6]], True, True),
    ]
    for i, r in enumerate(records):
        place(clips[i % len(clips)], root, r["file"])
    (root / "metadata.json").write_text(json.dumps(records))
    return root


def av1m_record(file: str, split: str, modify_type: str, audio: list, visual: list) -> dict:
    fake = sorted({tuple(s) for s in audio + visual})
    return {
        "file": file,
        "original": None if modify_type == "real" else "lrs3/abc/00001/real.mp4",
        "split": split,
        "modify_type": modify_type,
        "audio_model": "YourTTS" if audio else "",
        "fake_segments": [list(s) for s in fake],
        "audio_fake_segments": audio,
        "visual_fake_segments": visual,
        "video_frames": CLIP_FRAMES,
        "audio_frames": int(CLIP_SECONDS * 16000),
    }


def build_av1m(root: Path, clips: list[Path]) -> Path:
    train = [
        av1m_record("lrs3/abc/00001/real.mp4", "train", "real", [], []),
        av1m_record(
            "lrs3/abc/00001/fake_video_fake_audio.mp4",
            "train",
            "both-modified",
            [[0.2, 0.5]],
            [[0.2, 0.5]],
        ),
        av1m_record("lrs3/abc/00002/fake_audio.mp4", "train", "audio_modified", [[0.1, 0.3]], []),
    ]
    val = [av1m_record("vox/xyz/00003/fake_video.mp4", "val", "visual_modified", [], [[0.4, 0.7]])]
    for i, r in enumerate(train + val):
        place(clips[i % len(clips)], root / r["split"], r["file"])
    place(clips[0], root / "test", "000001.mp4")
    place(clips[1], root / "test", "sub/000002.mp4")
    (root / "train_metadata.json").write_text(json.dumps(train))
    (root / "val_metadata.json").write_text(json.dumps(val))
    (root / "test_files.txt").write_text("000001.mp4\nsub/000002.mp4\n\n")
    return root


# (source identity, target1, target2, method, category, file name)
FAVC_ROWS = [
    ("id00076", "-", "-", "real", "A", "00109.mp4"),
    ("id00076", "id00476", "10", "wav2lip", "D", "00109_10_id00476_wavtolip.mp4"),
    # FakeAVCeleb lists some files twice, once per method that produced them.
    ("id00076", "id00476", "10", "faceswap-wav2lip", "D", "00109_10_id00476_wavtolip.mp4"),
    ("id00001", "-", "-", "rtvc", "B", "00020_fake.mp4"),
    ("id00002", "id00166", "-", "faceswap", "C", "00044_id00166_faceswap.mp4"),
    ("id00003", "-", "-", "real", "A", "00001.mp4"),
]


def favc_folder(source: str, category: str) -> str:
    return f"{favc.CATEGORIES[category][0]}/African/men/{source}"


def build_favc(root: Path, clips: list[Path], folder_column: bool = True) -> Path:
    header = [
        "source",
        "target1",
        "target2",
        "method",
        "category",
        "type",
        "race",
        "gender",
        "path",
    ]
    with (root / "meta_data.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header + [""] if folder_column else header)
        for i, (source, t1, t2, method, category, name) in enumerate(FAVC_ROWS):
            folder = favc_folder(source, category)
            place(clips[i % len(clips)], root, f"{folder}/{name}")
            row = [
                source,
                t1,
                t2,
                method,
                category,
                favc.CATEGORIES[category][0],
                "African",
                "men",
                name,
            ]
            writer.writerow(row + [f"FakeAVCeleb/{folder}"] if folder_column else row)
    return root


def build_tvil(root: Path, clips: list[Path]) -> Path:
    records = {
        "v0001": {
            "file": "videos/v0001.mp4",
            "split": "train",
            "duration": CLIP_SECONDS,
            "fake_periods": [[0.2, 0.5]],
            "n_fakes": 1,
            "fps": 25,
        },
        "v0002": {
            "file": "videos/v0002.mp4",
            "split": "valid",
            "duration": CLIP_SECONDS,
            "fake_periods": [],
            "n_fakes": 0,
            "video_frames": CLIP_FRAMES,
        },
        "v0003": {
            "file": "videos/v0003.mp4",
            "split": "test",
            "fake_periods": [[0.0, 0.3], [0.5, 0.8]],
            "n_fakes": 2,
            "fps": 25,
            "video_frames": CLIP_FRAMES,
        },
    }
    for i, r in enumerate(records.values()):
        place(clips[i % len(clips)], root, r["file"])
    (root / "metadata.json").write_text(json.dumps(records))
    return root


def build_folder(root: Path, clips: list[Path]) -> Path:
    place(clips[0], root, "a/real.mp4")
    place(clips[1], root, "a/b/partial.MOV")
    place(clips[0], root, "whole.mkv")
    place(clips[1], root, "unlabelled.webm")
    place(clips[0], root, ".hidden/skip.mp4")
    (root / "notes.txt").write_text("not a video")
    (root / "labels.csv").write_text(
        "file,label,fake_segments\n"
        "a/real.mp4,0,\n"
        'a/b/partial.MOV,1,"[[0.2, 0.4]]"\n'
        "whole.mkv,fake,\n"
    )
    return root


def build_realworld(root: Path, clips: list[Path]) -> Path:
    rows = [
        ("f1.mp4", "fake", "talking-head", "FLOAT"),
        ("f2.mp4", "fake", "lip-sync", "Wav2Lip"),
        ("r1.mp4", "real", "real", "none"),
        ("r2.mp4", "real", "real", "none"),
    ]
    for i, (file, *_) in enumerate(rows):
        place(clips[i % len(clips)], root, file)
    lines = ["file\tlabel\tkind\tgenerator", *("\t".join(r) for r in rows)]
    (root / "labels.tsv").write_text("\n".join(lines) + "\n")
    return root


BUILDERS: dict[str, Callable[[Path, list[Path]], Path]] = {
    "lavdf": build_lavdf,
    "avdeepfake1m": build_av1m,
    "fakeavceleb": build_favc,
    "tvil": build_tvil,
    "folder": build_folder,
    "realworld": build_realworld,
}


# --- registry ------------------------------------------------------------------------------
def test_every_registered_dataset_has_a_miniature_tree() -> None:
    assert set(BUILDERS) == set(DATASETS)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_registry_loads_valid_samples(name: str, tmp_path: Path, clips: list[Path]) -> None:
    root = BUILDERS[name](tmp_path, clips)
    samples = load_dataset(name, root)
    assert samples
    assert len({s.id for s in samples}) == len(samples)
    adapter = DATASETS[name]
    for s in samples:
        assert s.dataset == name and s.split in adapter.splits
        assert Path(s.path).is_file(), s.path
        assert Sample.from_dict(json.loads(json.dumps(s.to_dict()))) == s
        if s.label is None:
            assert s.fake_segments == ()
            continue
        assert s.duration == pytest.approx(CLIP_SECONDS, abs=0.05)
        assert (s.label == 1) == bool(s.fake_segments)
        for seg in s.fake_segments + (s.audio_fake_segments or ()) + (s.visual_fake_segments or ()):
            assert 0 <= seg.start <= seg.end <= s.duration + 1e-6
    # Per split loading partitions the whole.
    by_split = [s for split in adapter.splits for s in load_dataset(name, root, split=split)]
    assert sorted(s.id for s in by_split) == sorted(s.id for s in samples)


def test_registry_rejects_unknown_names_splits_options(tmp_path: Path, clips: list[Path]) -> None:
    root = build_lavdf(tmp_path, clips)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("lav-df", root)
    with pytest.raises(ValueError, match="no split 'holdout'"):
        load_dataset("lavdf", root, split="holdout")
    with pytest.raises(ValueError, match="no option 'labels'"):
        load_dataset("lavdf", root, labels="x.csv")
    with pytest.raises(InputError, match="dataset root does not exist"):
        load_dataset("tvil", tmp_path / "nowhere")


def test_validation_split_aliases(tmp_path: Path, clips: list[Path]) -> None:
    root = build_lavdf(tmp_path, clips)
    assert [s.id for s in load_dataset("lavdf", root, split="val")] == ["dev/000002"]
    assert DATASETS["tvil"].canonical_split("val") == "valid"
    assert DATASETS["avdeepfake1m"].canonical_split("dev") == "val"


def test_tiny_clip_is_real_media(clips: list[Path]) -> None:
    assert container_duration(clips[0]) == pytest.approx(CLIP_SECONDS, abs=0.05)
    with av.open(str(clips[0])) as c:
        assert c.streams.video and c.streams.audio


# --- LAV-DF --------------------------------------------------------------------------------
def test_lavdf_labels_from_flags(tmp_path: Path, clips: list[Path]) -> None:
    samples = {s.id: s for s in load_dataset("lavdf", build_lavdf(tmp_path, clips))}
    assert list(samples) == ["train/000000", "train/000001", "dev/000002", "test/000003"]
    real, visual, audio, both = samples.values()
    assert real.label == 0 and real.audio_fake_segments == () == real.visual_fake_segments
    assert visual.fake_segments == (Segment(0.2, 0.4),)
    assert visual.visual_fake_segments == visual.fake_segments and visual.audio_fake_segments == ()
    assert audio.audio_fake_segments == audio.fake_segments and audio.visual_fake_segments == ()
    assert both.audio_fake_segments == both.visual_fake_segments == (Segment(0.3, 0.6),)
    assert visual.path == str(tmp_path.resolve() / "train/000001.mp4")
    assert visual.extra["original"] == "train/000000.mp4" and visual.extra["video_frames"] == 20
    assert "timestamps" not in visual.extra and "transcript" not in visual.extra


def test_lavdf_subsets(tmp_path: Path, clips: list[Path]) -> None:
    root = build_lavdf(tmp_path, clips)
    ids = {sub: [s.id for s in load_dataset("lavdf", root, subset=sub)] for sub in SUBSETS}
    assert ids["full"] == ["train/000000", "train/000001", "dev/000002", "test/000003"]
    assert ids["visual"] == ["train/000000", "train/000001", "test/000003"]  # audio-only dropped
    assert ids["audio"] == ["train/000000", "dev/000002", "test/000003"]  # visual-only dropped
    with pytest.raises(ValueError, match="unknown subset"):
        load_dataset("lavdf", root, subset="lips")


def test_lavdf_synthetic_corpus_fields_override_flags(tmp_path: Path, clips: list[Path]) -> None:
    record = lavdf_record("test/000000.mp4", "test", [[0.1, 0.3], [0.5, 0.7]], True, True)
    record.update(
        audio_fake_segments=[[0.1, 0.3]],
        visual_fake_segments=[[0.5, 0.7]],
        modify_type="both_modified",
        extra={"families": ["splice", "mouth_swap"]},
    )
    (sample,) = load_dataset("lavdf", build_lavdf(tmp_path, clips, [record]))
    assert sample.audio_fake_segments == (Segment(0.1, 0.3),)
    assert sample.visual_fake_segments == (Segment(0.5, 0.7),)
    assert sample.extra["families"] == ["splice", "mouth_swap"]
    assert sample.extra["modify_type"] == "both_modified"
    # Both modalities are faked (at different times), so both subsets keep it.
    assert load_dataset("lavdf", tmp_path, subset="visual") == [sample]
    assert load_dataset("lavdf", tmp_path, subset="audio") == [sample]


LAVDF_BAD: list[tuple[str, object, str, str]] = [
    # (field, value (None = delete), field named in the error, cause fragment)
    ("fake_periods", None, "fake_periods", "missing"),
    ("fake_periods", [[0.5, 0.2]], "fake_periods", "before start"),
    ("fake_periods", [[-0.1, 0.2]], "fake_periods", "negative start"),
    ("fake_periods", [[0.1]], "fake_periods", "item 0"),
    ("fake_periods", "[[0.1, 0.2]]", "fake_periods", "expected a list"),
    ("split", "validation", "split", "unknown value"),
    ("duration", "3.2", "duration", "expected a number"),
    ("duration", -1.0, "duration", "positive"),
    ("n_fakes", 2, "n_fakes", "fake_periods lists 1"),
    ("modify_audio", "yes", "modify_audio", "true/false"),
    ("file", "../outside.mp4", "file", "inside the dataset root"),
]


@pytest.mark.parametrize(("field", "value", "named", "cause"), LAVDF_BAD)
def test_lavdf_malformed_record_names_record_and_field(
    tmp_path: Path, clips: list[Path], field: str, value: object, named: str, cause: str
) -> None:
    good = lavdf_record("test/000000.mp4", "test", [], False, False)
    bad = lavdf_record("test/000007.mp4", "test", [[0.2, 0.4]], True, False)
    if value is None:
        del bad[field]
    else:
        bad[field] = value
    root = tmp_path
    (root / "metadata.json").write_text(json.dumps([good, bad]))
    with pytest.raises(MetadataError) as info:
        load_dataset("lavdf", root)
    message = str(info.value)
    record = bad["file"] if field != "file" else "../outside.mp4"
    assert f"record {record}:" in message and f"field '{named}'" in message
    assert cause in message and "metadata.json" in message
    assert "\n" not in message


def test_lavdf_missing_and_unparseable_metadata(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="metadata.json: metadata file not found"):
        load_dataset("lavdf", tmp_path)
    (tmp_path / "metadata.json").write_text('[{"file": "a.mp4",')
    with pytest.raises(MetadataError, match="not valid JSON"):
        load_dataset("lavdf", tmp_path)
    (tmp_path / "metadata.json").write_text('{"file": "a.mp4"}')
    with pytest.raises(MetadataError, match="expected a list of records"):
        load_dataset("lavdf", tmp_path)
    (tmp_path / "metadata.json").write_text("[[1, 2]]")
    with pytest.raises(MetadataError, match="record #0"):
        load_dataset("lavdf", tmp_path)


# --- AV-Deepfake1M -------------------------------------------------------------------------
def test_av1m_splits_segments_and_unlabelled_test(tmp_path: Path, clips: list[Path]) -> None:
    root = build_av1m(tmp_path, clips)
    samples = {s.id: s for s in load_dataset("avdeepfake1m", root)}
    both = samples["train/lrs3/abc/00001/fake_video_fake_audio"]
    assert both.extra["modify_type"] == "both_modified"  # 'both-modified' normalised
    assert both.audio_fake_segments == both.visual_fake_segments == (Segment(0.2, 0.5),)
    assert both.duration == pytest.approx(CLIP_FRAMES / 25)
    assert both.path == str(tmp_path.resolve() / "train/lrs3/abc/00001/fake_video_fake_audio.mp4")
    assert samples["train/lrs3/abc/00001/real"].label == 0
    visual = samples["val/vox/xyz/00003/fake_video"]
    assert visual.audio_fake_segments == () and visual.visual_fake_segments == (Segment(0.4, 0.7),)
    test = [s for s in samples.values() if s.split == "test"]
    assert [s.id for s in test] == ["test/000001", "test/sub/000002"]
    assert all(s.label is None and s.fake_segments == () for s in test)
    assert [s.extra["file"] for s in test] == ["000001.mp4", "sub/000002.mp4"]
    audio_subset = load_dataset("avdeepfake1m", root, split="train", subset="audio")
    assert [s.id for s in audio_subset] == [
        "train/lrs3/abc/00001/real",
        "train/lrs3/abc/00001/fake_video_fake_audio",
        "train/lrs3/abc/00002/fake_audio",
    ]


def test_av1m_inconsistent_modify_type_and_missing_files(tmp_path: Path, clips: list[Path]) -> None:
    root = build_av1m(tmp_path, clips)
    records = json.loads((root / "val_metadata.json").read_text())
    records[0]["modify_type"] = "audio_modified"
    (root / "val_metadata.json").write_text(json.dumps(records))
    with pytest.raises(
        MetadataError, match=r"record vox/xyz/00003/fake_video.mp4: field 'audio_fake"
    ):
        load_dataset("avdeepfake1m", root, split="val")
    records[0]["modify_type"] = "lipsync"
    (root / "val_metadata.json").write_text(json.dumps(records))
    with pytest.raises(MetadataError, match="field 'modify_type': unknown value 'lipsync'"):
        load_dataset("avdeepfake1m", root, split="val")
    (root / "test_files.txt").unlink()
    assert all(s.split == "train" for s in load_dataset("avdeepfake1m", root, split="train"))
    with pytest.raises(InputError, match="test_files.txt: test file list not found"):
        load_dataset("avdeepfake1m", root, split="test")


# --- FakeAVCeleb ---------------------------------------------------------------------------
@pytest.mark.parametrize("folder_column", [True, False])
def test_favc_categories_and_whole_video_labels(
    tmp_path: Path, clips: list[Path], folder_column: bool
) -> None:
    root = build_favc(tmp_path, clips, folder_column)
    samples = {s.id: s for s in load_dataset("fakeavceleb", root)}
    assert len(samples) == 5  # the doubly listed file is merged
    d = samples["FakeVideo-FakeAudio/African/men/id00076/00109_10_id00476_wavtolip"]
    assert d.extra["methods"] == ["wav2lip", "faceswap-wav2lip"]
    assert d.label == 1 and d.duration == pytest.approx(CLIP_SECONDS, abs=0.05)
    whole = (Segment(0.0, d.duration),)
    assert d.fake_segments == d.audio_fake_segments == d.visual_fake_segments == whole
    b = samples["RealVideo-FakeAudio/African/men/id00001/00020_fake"]
    assert b.audio_fake_segments == b.fake_segments and b.visual_fake_segments == ()
    c = samples["FakeVideo-RealAudio/African/men/id00002/00044_id00166_faceswap"]
    assert c.visual_fake_segments == c.fake_segments and c.audio_fake_segments == ()
    a = samples["RealVideo-RealAudio/African/men/id00076/00109"]
    assert a.label == 0 and a.fake_segments == () and a.visual_fake_segments == ()
    for s in samples.values():
        assert s.split == favc.split_by_rule(s.extra["identity"])


def test_favc_without_probing_flags_whole_video(tmp_path: Path, clips: list[Path]) -> None:
    root = build_favc(tmp_path, clips)
    samples = load_dataset("fakeavceleb", root, probe_durations=False)
    for s in samples:
        assert s.duration is None and s.fake_segments == ()
        assert s.extra.get("whole_video_fake", False) == (s.label == 1)
    fake_audio = next(s for s in samples if s.extra["category"] == "B")
    assert fake_audio.audio_fake_segments is None and fake_audio.visual_fake_segments == ()


@pytest.mark.parametrize(
    ("column", "value", "cause"),
    [
        ("category", "E", "unknown value 'E'"),
        ("type", "FakeVideo-FakeAudio", "does not match category A"),
        ("source", "", "non-empty string"),
    ],
)
def test_favc_malformed_rows(
    tmp_path: Path, clips: list[Path], column: str, value: str, cause: str
) -> None:
    root = build_favc(tmp_path, clips)
    lines = (root / "meta_data.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[-1].split(",")  # id00003, category A, file 00001.mp4
    row[header.index(column)] = value
    (root / "meta_data.csv").write_text("\n".join(lines[:-1] + [",".join(row)]) + "\n")
    with pytest.raises(MetadataError) as info:
        load_dataset("fakeavceleb", root)
    assert f"record line {len(lines)} (00001.mp4): field '{column}'" in str(info.value)
    assert cause in str(info.value)


def test_favc_missing_column(tmp_path: Path) -> None:
    (tmp_path / "meta_data.csv").write_text("source,target1,method,category\n")
    with pytest.raises(MetadataError, match="record header: field 'target2': missing column"):
        load_dataset("fakeavceleb", tmp_path)


def test_favc_shipped_split_files_match_the_rule(tmp_path: Path) -> None:
    regenerated = favc.write_split_files(tmp_path)
    shipped = Path(favc.__file__).parent / "splits"
    for path in regenerated:
        assert (shipped / path.name).read_text() == path.read_text(), path.name
    table = favc.shipped_splits()
    assert len(table) == len(favc.SPLIT_ID_RANGE)  # each identity in exactly one file
    counts = {s: sum(1 for v in table.values() if v == s) for s in favc.SPLITS}
    for name, percent in favc.SPLIT_PERCENT:
        assert abs(counts[name] / len(table) - percent / 100) < 0.02
    # Identities outside the shipped range fall back to the same rule, deterministically.
    assert favc.split_of("speaker-x") == favc.split_by_rule("speaker-x")


def test_favc_loaded_splits_are_identity_disjoint(tmp_path: Path, clips: list[Path]) -> None:
    root = build_favc(tmp_path, clips)
    seen: dict[str, str] = {}
    for split in favc.SPLITS:
        for s in load_dataset("fakeavceleb", root, split=split, probe_durations=False):
            assert seen.setdefault(s.extra["identity"], split) == split


# --- TVIL ----------------------------------------------------------------------------------
def test_tvil_dict_layout(tmp_path: Path, clips: list[Path]) -> None:
    root = build_tvil(tmp_path, clips)
    samples = {s.id: s for s in load_dataset("tvil", root)}
    assert list(samples) == ["v0001", "v0002", "v0003"]
    assert samples["v0002"].split == "valid" and samples["v0002"].label == 0
    third = samples["v0003"]
    assert third.duration == pytest.approx(CLIP_FRAMES / 25)  # from video_frames / fps
    assert third.visual_fake_segments == third.fake_segments and third.audio_fake_segments == ()
    assert [s.id for s in load_dataset("tvil", root, split="val")] == ["v0002"]


def test_tvil_errors(tmp_path: Path, clips: list[Path]) -> None:
    root = build_tvil(tmp_path, clips)
    records = json.loads((root / "metadata.json").read_text())
    del records["v0003"]["fps"]
    (root / "metadata.json").write_text(json.dumps(records))
    with pytest.raises(MetadataError, match="record v0003: field 'duration': missing"):
        load_dataset("tvil", root)
    (root / "metadata.json").write_text(json.dumps([records["v0001"]]))
    with pytest.raises(MetadataError, match="keyed by video id"):
        load_dataset("tvil", root)


# --- Folder --------------------------------------------------------------------------------
def test_folder_discovery_and_csv_labels(tmp_path: Path, clips: list[Path]) -> None:
    root = build_folder(tmp_path, clips)
    samples = {s.id: s for s in load_dataset("folder", root)}
    assert sorted(samples) == ["a/b/partial", "a/real", "unlabelled", "whole"]
    assert samples["a/real"].label == 0
    assert samples["a/b/partial"].fake_segments == (Segment(0.2, 0.4),)
    assert samples["a/b/partial"].audio_fake_segments is None  # modality unknown
    whole = samples["whole"]
    assert whole.label == 1 and whole.extra["whole_video_fake"]
    assert whole.fake_segments == (Segment(0.0, whole.duration),)
    assert samples["unlabelled"].label is None and samples["unlabelled"].split == "test"


def test_folder_json_labels_and_unlabelled(tmp_path: Path, clips: list[Path]) -> None:
    place(clips[0], tmp_path / "vids", "x.mp4")
    place(clips[1], tmp_path / "vids", "y.mp4")
    labels = tmp_path / "my_labels.json"
    labels.write_text(json.dumps({"x.mp4": 1, "y.mp4": {"label": 0, "split": "train"}}))
    samples = load_dataset("folder", tmp_path / "vids", labels=labels, probe_durations=False)
    assert [(s.id, s.label, s.split, s.duration) for s in samples] == [
        ("x", 1, "test", None),
        ("y", 0, "train", None),
    ]
    (tmp_path / "vids" / "labels.json").write_text(json.dumps([{"file": "x.mp4"}]))
    assert [s.label for s in load_dataset("folder", tmp_path / "vids")] == [None, None]


@pytest.mark.parametrize(
    ("csv_text", "expected"),
    [
        ("file,label\nmissing.mp4,1\n", "record line 2 (missing.mp4): field 'file': no video"),
        ("file,label\nx.mp4,maybe\n", "field 'label': expected 0/1 or real/fake"),
        ("file,label,fake_segments\nx.mp4,1,[[0.5\n", "field 'fake_segments': not JSON"),
        ('file,label,fake_segments\nx.mp4,0,"[[0.1, 0.2]]"\n', "labelled real"),
        ("file,label\nx.mp4,1\nx.mp4,0\n", "listed twice"),
        ("name,label\nx.mp4,1\n", "record header: field 'file': missing column"),
    ],
)
def test_folder_bad_labels(tmp_path: Path, clips: list[Path], csv_text: str, expected: str) -> None:
    place(clips[0], tmp_path, "x.mp4")
    (tmp_path / "labels.csv").write_text(csv_text)
    with pytest.raises(MetadataError) as info:
        load_dataset("folder", tmp_path, probe_durations=False)
    assert expected in str(info.value) and "labels.csv" in str(info.value)


def test_folder_missing_labels_file(tmp_path: Path, clips: list[Path]) -> None:
    place(clips[0], tmp_path, "x.mp4")
    with pytest.raises(InputError, match="labels file not found"):
        load_dataset("folder", tmp_path, labels="nope.csv")


def test_favc_path_column_with_full_relative_path(tmp_path: Path, clips: list[Path]) -> None:
    place(clips[0], tmp_path, "RealVideo-RealAudio/Asian (East)/women/id00010/00003.mp4")
    (tmp_path / "meta_data.csv").write_text(
        "source,target1,target2,method,category,type,race,gender,path\n"
        "id00010,-,-,real,A,RealVideo-RealAudio,Asian (East),women,"
        "RealVideo-RealAudio/Asian (East)/women/id00010/00003.mp4\n"
    )
    (sample,) = load_dataset("fakeavceleb", tmp_path)
    assert Path(sample.path).is_file() and sample.label == 0


finite = st.floats(min_value=-5, max_value=50, allow_nan=False, width=32)
pairs = st.lists(st.one_of(st.tuples(finite, finite), st.just((1.0,)), st.just("x")), max_size=5)


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_segment_parsing_accepts_valid_lists_and_names_the_field_otherwise(value: list) -> None:
    def error(field: str, cause: str) -> MetadataError:
        return MetadataError("meta.json", "r1", field, cause)

    try:
        segments = parse_segments(
            [list(p) if isinstance(p, tuple) else p for p in value], error, "f"
        )
    except MetadataError as e:
        assert e.field == "f" and e.record == "r1"
        assert any(
            not isinstance(p, tuple) or len(p) != 2 or p[0] < 0 or p[1] < p[0] for p in value
        )
        return
    assert len(segments) == len(value)
    assert list(segments) == sorted(segments)
    assert all(0 <= s.start <= s.end for s in segments)
