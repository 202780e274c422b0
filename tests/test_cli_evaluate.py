"""``avdf evaluate`` on real files, and the challenge formats it reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avdf.cli import main
from avdf.errors import InputError
from avdf.metrics import ap_ar, detection_metrics
from avdf.reports.challenge import (
    _read_localization_fast,
    _read_localization_json,
    detection_from_predictions,
    localization_from_predictions,
    read_detection,
    read_localization,
    write_detection,
    write_localization,
)
from avdf.types import Prediction, Sample, ScoredSegment, Segment, write_manifest

LAVDF_RECORDS = [
    {"file": "test/000001.mp4", "split": "test", "n_fakes": 2, "duration": 8.0,
     "fake_periods": [[1.0, 2.0], [4.0, 5.0]], "modify_video": True, "modify_audio": False},
    {"file": "test/000002.mp4", "split": "test", "n_fakes": 0, "duration": 6.0,
     "fake_periods": [], "modify_video": False, "modify_audio": False},
    {"file": "test/000003.mp4", "split": "test", "n_fakes": 1, "duration": 7.0,
     "fake_periods": [[0.5, 1.5]], "modify_video": False, "modify_audio": True},
]  # fmt: skip
PROPOSALS = {
    "test/000001.mp4": [[0.9, 1.0, 2.0], [0.7, 4.1, 5.0], [0.2, 6.0, 7.0]],
    "test/000002.mp4": [[0.8, 2.0, 3.0]],
    "test/000003.mp4": [[0.6, 0.5, 1.4], [0.1, 3.0, 3.5]],
}
SCORES = {"test/000001.mp4": 0.95, "test/000002.mp4": 0.3, "test/000003.mp4": 0.6}


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    labels = tmp_path / "metadata.json"
    labels.write_text(json.dumps(LAVDF_RECORDS))
    loc, det = tmp_path / "loc.json", tmp_path / "det.txt"
    write_localization(PROPOSALS, loc)
    write_detection(SCORES, det)
    return {"labels": labels, "loc": loc, "det": det, "dir": tmp_path}


def test_evaluate_prints_table_and_writes_json(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = files["dir"] / "scores.json"
    argv = ["evaluate", "--predictions", str(files["loc"]), "--predictions", str(files["det"])]
    argv += ["--labels", str(files["labels"]), "--json", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| AP@0.5 |" in table and "| AR@100 |" in table and "| AUC |" in table
    numbers = json.loads(out.read_text())
    labels = {r["file"]: r["fake_periods"] for r in LAVDF_RECORDS}
    expected = ap_ar(PROPOSALS, labels)
    assert numbers["localization"]["ap"] == pytest.approx(
        {f"{t:g}": v for t, v in expected.ap.items()}
    )
    assert numbers["localization"]["ar"]["100"] == pytest.approx(expected.ar[100])
    # Hand check of AP@0.5: ranked TP(.9) FP(.8) TP(.7) TP(.6) FP(.2) FP(.1), 3 labels:
    # precision 1, 1/2, 2/3, 3/4, 3/5, 3/6; recall 1/3, 1/3, 2/3, 1, 1, 1.
    # Curve (1,0), (1,1/2), (1,3/5), (1,3/4), (2/3,2/3), (1/3,1/2), (1/3,1):
    # running max 0, 1/2, 3/5, 3/4, 3/4, 3/4, 1 -> AP = 1/3*3/4 + 1/3*3/4 = 1/2.
    assert numbers["localization"]["ap"]["0.5"] == pytest.approx(0.5)
    expected_det = detection_metrics(
        SCORES, {r["file"]: int(r["n_fakes"] > 0) for r in LAVDF_RECORDS}
    )
    assert numbers["detection"]["auc"] == pytest.approx(expected_det.auc) == 1.0
    # The output is never overwritten without --force.
    before = out.read_text()
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err and out.read_text() == before
    assert main(argv + ["--force"]) == 0


def test_frames_fake_segments_and_preset(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # AV-Deepfake1M-style metadata and proposal times in frames at 25 fps.
    records = [{"file": r["file"], "fake_segments": r["fake_periods"]} for r in LAVDF_RECORDS]
    labels = files["dir"] / "val_metadata.json"
    labels.write_text(json.dumps(records))
    frames = {k: [[s, a * 25, b * 25] for s, a, b in v] for k, v in PROPOSALS.items()}
    loc = files["dir"] / "frames.json"
    write_localization(frames, loc)
    out = files["dir"] / "o.json"
    argv = ["evaluate", "--predictions", str(loc), "--labels", str(labels), "--fps", "25"]
    assert main(argv + ["--preset", "avdeepfake1m", "--json", str(out)]) == 0
    numbers = json.loads(out.read_text())["localization"]
    assert list(numbers["ap"]) == ["0.5", "0.75", "0.9", "0.95"]
    assert list(numbers["ar"]) == ["50", "30", "20", "10", "5"]
    assert numbers["ap"]["0.5"] == pytest.approx(0.5)
    assert "AP@0.9" in capsys.readouterr().out


def test_activitynet_metric_and_jsonl_manifest(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = files["dir"] / "manifest.jsonl"
    samples = [
        Sample(r["file"], "lavdf", "test", r["file"], r["duration"], int(r["n_fakes"] > 0),
               tuple(Segment.from_list(p) for p in r["fake_periods"]))
        for r in LAVDF_RECORDS
    ]  # fmt: skip
    write_manifest(samples, str(manifest))
    out = files["dir"] / "anet.json"
    argv = ["evaluate", "--predictions", str(files["loc"]), "--labels", str(manifest)]
    assert main(argv + ["--metric", "activitynet", "--json", str(out)]) == 0
    numbers = json.loads(out.read_text())["localization"]
    assert numbers["metric"] == "activitynet" and len(numbers["ap"]) == 10
    # ActivityNet at t=0.5: TP(.9) FP(.8) TP(.7) TP(.6) ... -> envelope 1 to recall 1/3,
    # 3/4 from 1/3 to 1 -> 1/3 + 2/3 * 3/4 = 5/6.
    assert numbers["ap"]["0.5"] == pytest.approx(5 / 6)
    assert "mAP@[0.5:0.95]" in capsys.readouterr().out


def test_missing_videos_are_reported(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    loc = files["dir"] / "partial.json"
    write_localization({"test/000001.mp4": PROPOSALS["test/000001.mp4"], "other.mp4": []}, loc)
    assert main(["evaluate", "--predictions", str(loc), "--labels", str(files["labels"])]) == 0
    err = capsys.readouterr().err
    assert "2 labelled videos have no proposals" in err and "1 videos are not in the labels" in err
    det = files["dir"] / "partial.txt"
    write_detection({"test/000001.mp4": 0.5}, det)
    assert main(["evaluate", "--predictions", str(det), "--labels", str(files["labels"])]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "partial.txt" in err and "no score for 2" in err


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"file": "a.mp4"}], "record a.mp4: field 'fake_periods'"),
        ([{"file": "a.mp4", "fake_periods": [[2.0, 1.0]]}], "bad segment"),
        ([{"fake_periods": []}], "record #0: field 'file'"),
        ({"not": "a list"}, "record #0: field 'file'"),
    ],
)
def test_bad_labels_give_one_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], records: object, message: str
) -> None:
    labels = files["dir"] / "bad.json"
    labels.write_text(json.dumps(records))
    assert main(["evaluate", "--predictions", str(files["loc"]), "--labels", str(labels)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.json" in err and message in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a.mp4": [[0.9, 1.0]]}', "entry 'a.mp4': proposal 0: expected [score, start, end]"),
        ('{"a.mp4": [[0.9, 2.0, 1.0]]}', "entry 'a.mp4': proposal 0 [0.9, 2.0, 1.0] ends before"),
        ('{"a.mp4": [[NaN, 1.0, 2.0]]}', "is not finite"),
        ('{"a.mp4": [[0.9, 1.0, 2.0]], "b.mp4": [[null, 1, 2]]}', "entry 'b.mp4'"),
        ('{"a.mp4": 3}', "entry 'a.mp4': expected a list"),
        ("[[0.9, 1.0, 2.0]]", "expected a JSON object"),
        ('{"a.mp4": [[0.9, 1.0, 2.0]', "not valid JSON"),
    ],
)
def test_bad_localization_files_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "loc.json"
    path.write_text(text)
    with pytest.raises(InputError, match="loc.json") as info:
        read_localization(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_fast_reader_equals_json_reader(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    content = {}
    for i in range(200):
        rows = np.round(rng.random((int(rng.integers(0, 12)), 3)) * 9, 4)  # (K, 3)
        rows[:, 1:] = np.sort(rows[:, 1:], axis=1)  # start <= end
        # Brackets, colons and spaces in names must not confuse the fast path.
        content[f"dir [{i}]/clip: {i}.mp4"] = rows
    content["é.mp4"] = np.array([[1e-3, 2.5e1, 3.0e1]])
    path = tmp_path / "loc.json"
    write_localization(content, path)
    assert _read_localization_fast(path.read_bytes()) is not None  # the fast path is taken
    fast = read_localization(path)
    slow = _read_localization_json(path, path.read_bytes())
    assert list(fast) == list(slow) == list(content)
    for key in content:
        np.testing.assert_array_equal(fast[key], slow[key])
        order = np.argsort(-content[key][:, 0], kind="stable")  # written sorted by score
        np.testing.assert_allclose(fast[key], content[key][order])
    # Pretty-printed JSON with escaped names (read by the json fallback), in list order.
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps({k: v.tolist() for k, v in content.items()}, indent=2))
    assert all(np.array_equal(read_localization(pretty)[k], content[k]) for k in content)


@pytest.mark.parametrize("decimals", [None, 3])
def test_fast_number_parser_is_exact(tmp_path: Path, decimals: int | None) -> None:
    # Full-precision repr (16-17 digits, exponents) takes numpy's parser, rounded values the
    # vectorised one; both must give exactly what json/float() gives.
    rng = np.random.default_rng(1)
    rows = rng.random((3000, 3)) * np.array([1.0, 1e3, 1e3])
    rows[:, 2] = rows[:, 1] + rng.random(3000) * 1e-6
    rows[:10, 0] = [0.0, -0.5, 1e-7, 123456789.0, 5e-324, 1.0, 0.1, 0.3, 2.5e-5, 100.0]
    path = tmp_path / "loc.json"
    write_localization({f"v{i}": rows[i::7] for i in range(7)}, path, decimals=decimals)
    fast = _read_localization_fast(path.read_bytes())
    assert fast is not None
    slow = _read_localization_json(path, path.read_bytes())
    for key, value in slow.items():
        np.testing.assert_array_equal(fast[0][key], value)
    assert "-0.5" in path.read_text()


def test_detection_format_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "det.txt"
    write_detection({"a.mp4": 0.25, "dir/b c.mp4": 1e-9}, path)
    assert path.read_text().splitlines()[0] == "a.mp4;0.25"
    assert read_detection(path) == {"a.mp4": 0.25, "dir/b c.mp4": 1e-9}
    path.write_text("a.mp4;0.5\nb.mp4;high\n")
    with pytest.raises(InputError, match=r"det.txt: line 2 \(b.mp4\): score 'high'"):
        read_detection(path)
    path.write_text("a.mp4;0.5\na.mp4;0.7\n")
    with pytest.raises(InputError, match="appears twice"):
        read_detection(path)
    with pytest.raises(ValueError, match="cannot be written"):
        write_detection({"a;b.mp4": 0.1}, tmp_path / "x.txt")


def test_converters_from_predictions(tmp_path: Path) -> None:
    segments = (
        ScoredSegment(Segment(1.0, 2.0), 0.9, 0.8, 0.1),
        ScoredSegment(Segment(3.0, 3.5), 0.4),
    )
    predictions = [
        Prediction("a.mp4", 8.0, 0.93, segments=segments),
        Prediction("b.mp4", 5.0, 0.02),
    ]
    loc = localization_from_predictions(predictions)
    np.testing.assert_array_equal(loc["a.mp4"], [[0.9, 1.0, 2.0], [0.4, 3.0, 3.5]])
    assert loc["b.mp4"].shape == (0, 3)
    path = tmp_path / "loc.json"
    write_localization(loc, path)
    assert json.loads(path.read_text()) == {
        "a.mp4": [[0.9, 1.0, 2.0], [0.4, 3.0, 3.5]],
        "b.mp4": [],
    }
    back = read_localization(path)
    assert back["b.mp4"].shape == (0, 3) and np.array_equal(back["a.mp4"], loc["a.mp4"])
    assert detection_from_predictions(predictions) == {"a.mp4": 0.93, "b.mp4": 0.02}


def test_dataset_mode_needs_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--dataset", "lavdf"]) == 1
    assert "--dataset needs --root and --checkpoint" in capsys.readouterr().err
    assert main(["evaluate"]) == 1
    assert "give --predictions" in capsys.readouterr().err


def test_dataset_mode_reports_input_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-root"
    argv = ["evaluate", "--dataset", "lavdf", "--root", str(missing), "--checkpoint", "x.ckpt"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"avdf evaluate: {missing}: dataset root does not exist"
    assert main([*argv[:2], "nosuch", *argv[3:]]) == 1
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
    # A root with metadata but no checkpoint file: the checkpoint is named.
    (tmp_path / "metadata.json").write_text(json.dumps(LAVDF_RECORDS))
    argv = ["evaluate", "--dataset", "lavdf", "--root", str(tmp_path), "--checkpoint"]
    assert main([*argv, str(tmp_path / "none.ckpt")]) == 1
    assert "none.ckpt: checkpoint file not found" in capsys.readouterr().err


def test_evaluate_help_stays_light() -> None:
    """`avdf evaluate --help` lists the dataset options without importing torch."""
    code = (
        "import sys\nfrom avdf.cli import main\n"
        "try:\n    main(['evaluate', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    for option in ("--cache DIR", "--subset {full,visual,audio}", "--out DIR", "--force"):
        assert option in done.stdout
