"""The realworld adapter on a tiny labels.tsv over the repository's own talking clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import media_fixtures as fx
import pytest

from avdf.data.targets import step_targets
from avdf.datasets import DATASETS, load_dataset
from avdf.datasets import realworld as rw
from avdf.errors import InputError, MetadataError
from avdf.timebase import MediaSpec

HEADER = ["file", "label", "kind", "generator", "has_audio", "path", "note"]
SOURCES = [
    fx.talking("talking-face_pc-avs_00067.mp4"),
    fx.talking("talking-face_pc-avs_00473.mp4"),
    fx.talking("talking-face_pc-avs_517600055.mp4"),
    fx.talking("talking-face_pc-avs_00015.mp4"),
]
# (label, kind, generator, has_audio): ten clips, three families among the fakes' names.
ROWS = [
    ("fake", "talking-head", "FLOAT", "yes"),
    ("fake", "talking-head", "FLOAT", "yes"),
    ("fake", "lip-sync", "ReSyncer", "yes"),
    ("fake", "face-swap", "ReSyncer (face swap)", "no"),
    ("fake", "talking-head", "Hallo3", "yes"),
    ("fake", "talking-head", "JoyHallo", "yes"),
    ("real", "real", "none", "yes"),
    ("real", "real", "none", "no"),
    ("real", "real", "none", "yes"),
    ("real", "real", "none", "yes"),
]


def write_labels(root: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    path = root / rw.LABELS_FILE
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("realworld")
    rows = []
    for i, (label, kind, generator, audio) in enumerate(ROWS):
        name = f"rw-{i:02d}.mp4"
        shutil.copyfile(SOURCES[i % len(SOURCES)], root / name)
        rows.append([name, label, kind, generator, audio, f"repo/{name}", f"clip {i}"])
    write_labels(root, rows)
    return root


def test_registered_and_whole_video_labels(corpus: Path) -> None:
    assert "realworld" in DATASETS
    samples = load_dataset("realworld", corpus)
    assert [s.id for s in samples] == [f"rw-{i:02d}" for i in range(len(ROWS))]
    for sample, (label, kind, generator, audio) in zip(samples, ROWS, strict=True):
        assert sample.label == (label == "fake")
        assert sample.duration is not None and sample.duration > 1
        assert sample.extra["kind"] == kind and sample.extra["generator"] == generator
        assert sample.extra["has_audio"] is (audio == "yes")
        assert sample.extra["source_path"].startswith("repo/")  # the repository's path
        assert Path(sample.path).is_file()
        if sample.label:
            whole = ((0.0, sample.duration),)
            assert [(g.start, g.end) for g in sample.fake_segments] == list(whole)
            assert sample.visual_fake_segments == sample.fake_segments
            assert sample.extra["whole_video_fake"] is True
        else:
            assert sample.fake_segments == () and sample.visual_fake_segments == ()
        assert sample.audio_fake_segments == ()  # the voice is recorded, not generated


def test_fake_is_fake_on_every_step_and_audio_untouched(corpus: Path) -> None:
    spec = MediaSpec()
    fake, real = load_dataset("realworld", corpus)[0], load_dataset("realworld", corpus)[-1]
    n_steps = int(spec.seconds_to_step(fake.duration))  # whole steps inside the clip
    targets = step_targets(fake, spec, n_steps)
    assert targets.fake.all() and targets.visual_fake.all()
    assert targets.modality_known and not targets.audio_fake.any()
    assert not step_targets(real, spec, n_steps).fake.any()


def test_families() -> None:
    assert rw.generator_family("ReSyncer (face swap + lip-sync)") == "ReSyncer"
    assert rw.generator_family("EchoMimicV3") == "EchoMimic"
    assert rw.generator_family("JoyHallo") == rw.generator_family("Hallo3") == "Hallo"
    assert rw.generator_family("Loopy") == "Loopy"


def test_split_by_generator_is_deterministic_and_keeps_families_together(corpus: Path) -> None:
    samples = load_dataset("realworld", corpus)
    assert samples == load_dataset("realworld", corpus)
    dev = [s for s in samples if s.split == "dev"]
    assert {s.extra["family"] for s in dev if s.label} == {"FLOAT"}
    assert {s.split for s in samples if s.label and s.extra["family"] != "FLOAT"} == {"train"}
    assert any(s.label == 0 for s in dev) and any(
        s.label == 0 and s.split == "train" for s in samples
    )
    assert load_dataset("realworld", corpus, split="dev") == dev
    assert load_dataset("realworld", corpus, split="val") == dev  # the usual alias


def test_split_by_none_is_all_test(corpus: Path) -> None:
    samples = load_dataset("realworld", corpus, split_by="none")
    assert {s.split for s in samples} == {"test"}
    assert load_dataset("realworld", corpus, split="train", split_by="none") == []
    with pytest.raises(ValueError, match="split_by"):
        load_dataset("realworld", corpus, split_by="person")


def test_logo_folds_partition_the_clips(corpus: Path) -> None:
    samples = load_dataset("realworld", corpus)
    folds = rw.logo_folds(samples)
    assert [f.family for f in folds] == ["FLOAT", "Hallo", "ReSyncer"]
    tested = [s.id for f in folds for s in f.test]
    assert sorted(tested) == sorted(s.id for s in samples)  # each clip tested exactly once
    reals_per_fold = [sum(s.label == 0 for s in f.test) for f in folds]
    assert max(reals_per_fold) - min(reals_per_fold) <= 1 and min(reals_per_fold) >= 1
    for fold in folds:
        assert {s.extra["family"] for s in fold.test if s.label} == {fold.family}
        assert all(s.extra["family"] != fold.family for s in fold.train)
        assert {s.id for s in fold.train}.isdisjoint(s.id for s in fold.test)
    assert rw.logo_folds(samples) == folds
    with pytest.raises(ValueError, match="fake"):
        rw.logo_folds([s for s in samples if s.label == 0])


def test_grouped_folds_hold_whole_families_out(corpus: Path) -> None:
    samples = load_dataset("realworld", corpus)
    folds = rw.logo_folds(samples, n_groups=2)
    assert [f.families for f in folds] == [("FLOAT", "ReSyncer"), ("Hallo",)]
    tested = [s.id for f in folds for s in f.test]
    assert sorted(tested) == sorted(s.id for s in samples)
    for fold in folds:
        assert {s.extra["family"] for s in fold.test if s.label} == set(fold.families)
        assert not {s.extra["family"] for s in fold.train if s.label} & set(fold.families)
        assert any(s.label == 0 for s in fold.test) and any(s.label == 0 for s in fold.train)
    assert rw.logo_folds(samples, n_groups=3) == rw.logo_folds(samples)
    with pytest.raises(ValueError, match="n_groups"):
        rw.logo_folds(samples, n_groups=4)


def _rows(root: Path) -> list[list[str]]:
    lines = (root / rw.LABELS_FILE).read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t") for line in lines]


@pytest.mark.parametrize(
    ("row", "column", "value", "field", "cause"),
    [
        (0, 1, "maybe", "label", "unknown value 'maybe'"),
        (6, 3, "Wav2Lip", "generator", "must have generator 'none'"),
        (6, 2, "lip-sync", "kind", "must have kind 'real'"),
        (0, 3, "none", "generator", "must name its generator"),
        (0, 2, "real", "kind", "cannot have kind 'real'"),
        (1, 2, "", "kind", "missing"),
        (2, 4, "perhaps", "has_audio", "expected yes/no"),
        (3, 0, "gone.mp4", "file", "no video 'gone.mp4'"),
        (3, 0, "../rw-00.mp4", "file", "inside the dataset root"),
        (4, 0, "rw-00.mp4", "file", "listed twice"),
    ],
)
def test_malformed_row_is_one_line_naming_file_row_and_field(
    corpus: Path,
    tmp_path: Path,
    row: int,
    column: int,
    value: str,
    field: str,
    cause: str,
) -> None:
    rows = _rows(corpus)
    for name in {r[0] for r in rows}:
        (tmp_path / name).symlink_to(corpus / name)
    rows[row][column] = value
    labels = write_labels(tmp_path, rows)
    with pytest.raises(MetadataError) as info:
        load_dataset("realworld", tmp_path, probe_durations=False)
    message = str(info.value)
    assert "\n" not in message and str(labels) in message
    assert f"line {row + 2} " in message and f"'{field}'" in message and cause in message


def test_missing_column_labels_file_and_root(corpus: Path, tmp_path: Path) -> None:
    write_labels(tmp_path, [r[:3] for r in _rows(corpus)], header=HEADER[:3])
    with pytest.raises(MetadataError, match="header: field 'generator': missing column"):
        load_dataset("realworld", tmp_path)
    (tmp_path / rw.LABELS_FILE).unlink()
    with pytest.raises(InputError, match="labels file not found"):
        load_dataset("realworld", tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        load_dataset("realworld", tmp_path / "nowhere")
    rows = _rows(corpus)
    rows[0].append("surplus")
    for name in {r[0] for r in rows}:
        (tmp_path / name).symlink_to(corpus / name)
    write_labels(tmp_path, rows)
    with pytest.raises(MetadataError, match="line 2 .*8 fields, header has 7"):
        load_dataset("realworld", tmp_path)


def test_extra_survives_a_manifest_round_trip(corpus: Path, tmp_path: Path) -> None:
    from avdf.types import read_manifest, write_manifest

    samples = load_dataset("realworld", corpus)
    write_manifest(samples, str(tmp_path / "m.jsonl"))
    assert read_manifest(str(tmp_path / "m.jsonl")) == samples
