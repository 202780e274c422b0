"""Dataset evaluation on a tiny LAV-DF-layout corpus of real clips: real decoding and face
tracking, a real untrained MMMS-BA, the feature cache, the official metrics and the
challenge files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import media_fixtures as fx
import pytest
import torch
from tiny_models import tiny_checkpoint

from avdf.cli import main
from avdf.datasets import load_dataset
from avdf.datasets.fakeavceleb import split_of
from avdf.errors import OutputExistsError
from avdf.evaluation.dataset import (
    DETECTION_FILE,
    LOCALIZATION_FILE,
    evaluate_dataset,
    per_category_metrics,
    predict_samples,
)
from avdf.inference.detector import Detector
from avdf.io.decode import probe
from avdf.metrics import ap_ar, detection_metrics
from avdf.preprocess.cache import cache_path_for
from avdf.preprocess.pipeline import cache_video
from avdf.reports.challenge import read_detection, read_localization
from avdf.timebase import MediaSpec
from avdf.types import Sample

SPEC = MediaSpec()
SPLIT = "train"
# A LAV-DF-layout miniature of real 224x224 talking-face clips (4.5-7 s): 4 train videos,
# one real, and 1 test video. The labels are arbitrary (the model is untrained); the corpus
# only has to exercise the real plumbing. (`avdf.synth` builds such a corpus with true
# labels, but on these 2 shared cores its source preparation alone takes ~1 minute.)
CORPUS = (  # (file, source clip, fake periods, modify_video, modify_audio)
    ("train/000000.mp4", "talking-face_pc-avs_00067.mp4", [], False, False),
    ("train/000001.mp4", "talking-face_pc-avs_517600055.mp4", [[1.0, 2.2]], True, False),
    ("train/000002.mp4", "talking-face_pc-avs_00086.mp4", [[0.4, 1.0], [3.0, 4.6]], False, True),
    ("train/000003.mp4", "talking-face_pc-avs_00473.mp4", [[2.0, 3.04]], True, True),
    ("test/000004.mp4", "talking-face_pc-avs_00015.mp4", [[5.0, 6.0]], True, False),
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> object:
    # The GRU on 2 shared cores: one thread is ~15x faster than two fighting ones.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    records = []
    for file, clip, periods, modify_video, modify_audio in CORPUS:
        (root / file).parent.mkdir(exist_ok=True)
        (root / file).symlink_to(fx.talking(clip))
        records.append(
            {"file": file, "split": file.split("/")[0], "duration": probe(fx.talking(clip)).duration,
             "fake_periods": periods, "n_fakes": len(periods), "modify_video": modify_video,
             "modify_audio": modify_audio}
        )  # fmt: skip
    (root / "metadata.json").write_text(json.dumps(records))
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.ckpt", SPEC)


@pytest.fixture(scope="module")
def cache(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cache")
    for sample in load_dataset("lavdf", corpus, SPLIT):
        cache_video(sample.path, cache_path_for(out, sample.id), SPEC)
    return out


@pytest.fixture(scope="module")
def detector(checkpoint: Path) -> Detector:
    return Detector.from_checkpoint(checkpoint)


def test_cache_and_video_give_the_same_predictions(
    corpus: Path, cache: Path, detector: Detector, tmp_path: Path
) -> None:
    samples = load_dataset("lavdf", corpus, SPLIT)
    decoded, failed, n_cached = predict_samples(detector, samples, None)
    assert failed == [] and n_cached == 0
    cached, failed, n_cached = predict_samples(detector, samples, cache)
    assert failed == [] and n_cached == len(samples) == 4
    for (sample, a), (_, b) in zip(decoded, cached, strict=True):
        assert a.video_id == b.video_id == sample.extra["file"]
        _assert_close(a.to_dict(), b.to_dict())
    # A cache made with another MediaSpec is not used: the video is decoded instead.
    other = tmp_path / "other"
    cache_video(samples[0].path, cache_path_for(other, samples[0].id), MediaSpec(face_size=32))
    again, failed, n_cached = predict_samples(detector, samples[:1], other)
    assert failed == [] and n_cached == 0
    _assert_close(again[0][1].to_dict(), decoded[0][1].to_dict())


def _assert_close(a: object, b: object) -> None:
    """Equal JSON trees up to float32 rounding: the cache is written in other chunks than the
    Detector reads the video in, and face tracking may differ by a last bit at a chunk edge."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b)
        for key in a:
            _assert_close(a[key], b[key])
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_close(x, y)
    elif isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6)
    else:
        assert a == b


def test_results_match_the_written_challenge_files(
    corpus: Path, cache: Path, checkpoint: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preds"
    results = evaluate_dataset(
        "lavdf", corpus, checkpoint, SPLIT, cache_dir=cache, predictions_out=out, progress=False
    )
    assert results["failed"] == [] and results["n_videos"] == results["n_scored"] == 4
    assert results["n_cached"] == 4 and "per_category" not in results
    loc, det = results["localization"], results["detection"]
    assert list(loc.ap) == [0.5, 0.75, 0.95] and list(loc.ar) == [100, 50, 20, 10]

    # The files are the challenge formats, keyed by the official file names...
    records = [r for r in json.loads((corpus / "metadata.json").read_text()) if r["split"] == SPLIT]
    names = [r["file"] for r in records]
    proposals = read_localization(out / LOCALIZATION_FILE)
    scores = read_detection(out / DETECTION_FILE)
    assert sorted(proposals) == sorted(scores) == sorted(names)
    lines = (out / DETECTION_FILE).read_text().splitlines()
    assert all(line.count(";") == 1 and line.split(";")[0] in names for line in lines)
    for rows in proposals.values():  # (an untrained model may propose nothing for a video)
        assert (rows[:-1, 0] >= rows[1:, 0]).all()  # by descending score
    # ...and scoring them independently gives the numbers evaluate_dataset reported.
    expected = ap_ar(proposals, {r["file"]: r["fake_periods"] for r in records})
    assert dict(loc.ap) == pytest.approx(dict(expected.ap), nan_ok=True)
    assert dict(loc.ar) == pytest.approx(dict(expected.ar))
    labels = {r["file"]: int(r["n_fakes"] > 0) for r in records}
    assert sum(labels.values()) == 3  # the split has a real video: AUC is defined
    assert det.to_dict() == pytest.approx(detection_metrics(scores, labels).to_dict())

    # Predictions are never overwritten without force; the AV-Deepfake1M preset applies.
    with pytest.raises(OutputExistsError):
        evaluate_dataset("lavdf", corpus, checkpoint, SPLIT, predictions_out=out, progress=False)
    again = evaluate_dataset(
        "lavdf", corpus, checkpoint, SPLIT, cache_dir=cache, preset="avdeepfake1m",
        predictions_out=out, force=True, progress=False,
    )  # fmt: skip
    assert list(again["localization"].ap) == [0.5, 0.75, 0.9, 0.95]
    assert list(again["localization"].ar) == [50, 30, 20, 10, 5]
    assert read_detection(out / DETECTION_FILE) == scores


def _broken_root(corpus: Path, tmp_path: Path) -> Path:
    """The train split plus a truncated video, in the LAV-DF layout."""
    root = tmp_path / "root"
    (root / SPLIT).mkdir(parents=True)
    records = [r for r in json.loads((corpus / "metadata.json").read_text()) if r["split"] == SPLIT]
    for r in records:
        (root / r["file"]).symlink_to(corpus / r["file"])
    good = corpus / records[0]["file"]
    (root / SPLIT / "broken.mp4").write_bytes(good.read_bytes()[:3000])
    records.append(dict(records[0], file=f"{SPLIT}/broken.mp4"))
    (root / "metadata.json").write_text(json.dumps(records))
    return root


def test_a_corrupt_video_is_reported_and_the_rest_scored(
    corpus: Path, cache: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _broken_root(corpus, tmp_path)
    results = evaluate_dataset("lavdf", root, checkpoint, SPLIT, cache_dir=cache, progress=False)
    assert results["n_videos"] == 5 and results["n_scored"] == 4
    assert len(results["failed"]) == 1 and "broken.mp4: " in results["failed"][0]
    assert results["detection"].n_videos == 4

    out = tmp_path / "scores.json"
    argv = ["evaluate", "--dataset", "lavdf", "--root", str(root), "--checkpoint", str(checkpoint)]
    argv += ["--split", SPLIT, "--cache", str(cache), "--json", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "| AP@0.5 |" in captured.out  # the others are still scored and printed
    assert "failed: " in captured.err and "broken.mp4" in captured.err
    assert json.loads(out.read_text())["failed"] == results["failed"]


def test_cli_end_to_end_on_the_test_split(
    corpus: Path, checkpoint: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # capfd, not capsys: MediaPipe writes its log lines straight to file descriptor 2.
    out, scores = tmp_path / "preds", tmp_path / "scores.json"
    argv = [
        "evaluate",
        "--dataset",
        "lavdf",
        "--root",
        str(corpus),
        "--checkpoint",
        str(checkpoint),
    ]
    argv += ["--split", "test", "--out", str(out), "--json", str(scores)]
    assert main(argv) == 0
    table, err = capfd.readouterr()
    assert "W0000" not in err and "XNNPACK" not in err  # no cache: the tracker ran, silenced
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    for name in ("AP@0.5", "AP@0.75", "AP@0.95", "AR@100", "AR@50", "AR@20", "AR@10"):
        assert name in rows
    assert "AUC" in rows and "ACC@0.5" in rows and "AP@0.9" not in rows
    numbers = json.loads(scores.read_text())
    assert numbers["n_videos"] == 1 and numbers["failed"] == []
    assert list(numbers["localization"]["ap"]) == ["0.5", "0.75", "0.95"]
    assert list(read_detection(out / DETECTION_FILE)) == ["test/000004.mp4"]
    assert main(argv) == 1  # existing outputs are kept without --force
    assert "already exists" in capfd.readouterr().err


def _fakeavceleb_root(corpus: Path, cache: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A FakeAVCeleb-layout tree of the train clips as categories A-D, with their caches."""
    root, favc_cache = tmp_path / "favc", tmp_path / "favc_cache"
    identity = next(f"id{i:05d}" for i in range(100) if split_of(f"id{i:05d}") == "test")
    types = ("RealVideo-RealAudio", "RealVideo-FakeAudio", "FakeVideo-RealAudio",
             "FakeVideo-FakeAudio")  # fmt: skip
    rows = []
    for sample, category, kind in zip(
        load_dataset("lavdf", corpus, SPLIT), "ABCD", types, strict=True
    ):
        folder = f"{kind}/African/men/{identity}"
        (root / folder).mkdir(parents=True)
        (root / folder / "00001.mp4").symlink_to(sample.path)
        method = "real" if category == "A" else "wav2lip"
        rows.append([identity, "-", "-", method, category, kind, "African", "men", "00001.mp4",
                     f"FakeAVCeleb/{folder}"])  # fmt: skip
        favc_cache.mkdir(exist_ok=True)
        shutil.copy(cache_path_for(cache, sample.id), cache_path_for(favc_cache, f"{folder}/00001"))
    with (root / "meta_data.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "target1", "target2", "method", "category", "type", "race",
                         "gender", "path", ""])  # fmt: skip
        writer.writerows(rows)
    return root, favc_cache


def test_fakeavceleb_scores_each_category_against_the_real_videos(
    corpus: Path, cache: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, favc_cache = _fakeavceleb_root(corpus, cache, tmp_path)
    out, scores = tmp_path / "preds", tmp_path / "scores.json"
    argv = ["evaluate", "--dataset", "fakeavceleb", "--root", str(root), "--checkpoint"]
    argv += [str(checkpoint), "--cache", str(favc_cache), "--out", str(out), "--json", str(scores)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| category vs A | ACC@0.5 | AUC | AP |" in table
    assert all(f"| {c} | " in table for c in "BCD") and "AP@0.5" not in table
    numbers = json.loads(scores.read_text())
    assert "localization" not in numbers and numbers["detection"]["n_fake"] == 3
    video = read_detection(out / DETECTION_FILE)
    real = next(v for k, v in video.items() if k.startswith("RealVideo-RealAudio/"))
    for category, kind in zip("BCD", ("RealVideo-FakeAudio", "FakeVideo-RealAudio",
                                      "FakeVideo-FakeAudio"), strict=True):  # fmt: skip
        fake = next(v for k, v in video.items() if k.startswith(kind + "/"))
        expected = detection_metrics([real, fake], [0, 1]).to_dict()
        assert numbers["per_category"][category] == pytest.approx(expected)


def test_per_category_metrics_by_hand() -> None:
    def sample(i: int, category: str) -> Sample:
        return Sample(f"v{i}", "fakeavceleb", "test", f"v{i}.mp4", label=int(category != "A"),
                      extra={"category": category})  # fmt: skip

    scored = [(sample(0, "A"), 0.2), (sample(1, "A"), 0.6), (sample(2, "B"), 0.7),
              (sample(3, "B"), 0.1), (sample(4, "C"), 0.9)]  # fmt: skip
    result = per_category_metrics(scored, threshold=0.5)
    assert sorted(result) == ["B", "C"]
    # B vs A: reals 0.2, 0.6; fakes 0.7, 0.1 -> pairs won: (0.7>0.2, 0.7>0.6, 0.1<both) = 2/4.
    assert result["B"].auc == pytest.approx(0.5)
    # At 0.5: 0.2 real ok, 0.6 real wrong, 0.7 fake ok, 0.1 fake wrong -> 2/4.
    assert result["B"].accuracy == pytest.approx(0.5) and result["B"].n_videos == 4
    assert result["C"].auc == pytest.approx(1.0) and result["C"].n_fake == 1
    assert per_category_metrics([(sample(5, "B"), 0.3)]) == {}  # no real videos: nothing
