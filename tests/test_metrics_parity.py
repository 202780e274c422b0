"""Parity of our official AP/AR with the reference Rust module of ``avdeepfake1m==0.0.4``.

The wheel is CC BY-NC and pulls heavy dependencies, so it is never installed: the test downloads
it once into ``~/.cache/avdf-test/``, unzips only its compiled ``_evaluation`` extension and
loads that file directly. Its functions read two JSON files (``{file: [[score, start, end]]}``
proposals and a list of label records) and take ``file_key``, ``value_key`` and ``fps``:
``ap_ar_1d(proposals_path, labels_path, file_key, value_key, fps, ap_iou_thresholds,
ar_n_proposals, ar_iou_thresholds) -> {"ap": {t: ap}, "ar": {n: ar}}``.
The test is skipped, with the reason, when the wheel cannot be fetched or loaded.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from avdf.metrics import AR_IOU_THRESHOLDS, AVDEEPFAKE1M, LAVDF, ap_ar

WHEEL = "avdeepfake1m==0.0.4"
CACHE = Path.home() / ".cache" / "avdf-test"


def _load_reference() -> ModuleType:
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = sorted(CACHE.glob("avdeepfake1m-0.0.4-*.whl"))
    if not wheels:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", str(CACHE)],
                capture_output=True,
                text=True,
                timeout=180,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"cannot download {WHEEL}: {e}")
        wheels = sorted(CACHE.glob("avdeepfake1m-0.0.4-*.whl"))
        if done.returncode or not wheels:
            last = (done.stderr.strip().splitlines() or ["no wheel for this platform"])[-1]
            pytest.skip(f"cannot download {WHEEL}: {last}")
    target = CACHE / "avdeepfake1m-0.0.4-extension"
    with zipfile.ZipFile(wheels[-1]) as wheel:
        members = [m for m in wheel.namelist() if Path(m).name.startswith("_evaluation.")]
        if not members:
            pytest.skip(f"{wheels[-1].name} has no compiled _evaluation module")
        extension = target / members[0]
        if not extension.exists():
            wheel.extract(members[0], target)
    name = "avdeepfake1m._evaluation"
    loader = importlib.machinery.ExtensionFileLoader(name, str(extension))
    spec = importlib.util.spec_from_file_location(name, extension, loader=loader)
    try:
        module = importlib.util.module_from_spec(spec)
        loader.exec_module(module)
    except ImportError as e:
        pytest.skip(f"the reference extension does not load here: {e}")
    return module


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return _load_reference()


def _reference_ap_ar(
    ref: ModuleType,
    tmp: Path,
    proposals: dict[str, list[list[float]]],
    records: list[dict],
    value_key: str,
    fps: float,
    ap_thresholds: tuple[float, ...],
    ar_ns: tuple[int, ...],
) -> tuple[dict[float, float], dict[int, float]]:
    (tmp / "proposals.json").write_text(json.dumps(proposals))
    (tmp / "labels.json").write_text(json.dumps(records))
    out = ref.ap_ar_1d(
        str(tmp / "proposals.json"),
        str(tmp / "labels.json"),
        "file",
        value_key,
        fps,
        list(ap_thresholds),
        list(ar_ns),
        list(AR_IOU_THRESHOLDS),
    )
    # Keys come back as float32 values; map them to the thresholds we asked for.
    ap = {t: out["ap"][float(np.float32(t))] for t in ap_thresholds}
    return ap, {n: out["ar"][n] for n in ar_ns}


def _random_case(rng: np.random.Generator, grid: bool) -> tuple[dict, list[dict]]:
    """Videos with 0-4 labels and 1-130 proposals: near-hits, misses, ties, real videos."""

    def t(x: float) -> float:
        # Grid cases sit on exact binary fractions so IoUs that equal a threshold are computed
        # identically in float32 (reference) and float64 (ours).
        return float(np.round(x * 8) / 8) if grid else float(np.round(x, 3))

    proposals, records = {}, []
    for v in range(int(rng.integers(1, 12))):
        name = f"dir/{v:04d}.mp4"
        duration = rng.uniform(3, 30)
        segments = []
        for _ in range(int(rng.integers(0, 5))):
            start = rng.uniform(0, duration - 0.5)
            segments.append([t(start), t(start + rng.uniform(0.125, 2.0))])
        records.append({"file": name, "fake_periods": segments, "fake_segments": segments})
        n = int(rng.choice([1, 2, 3, 7, 20, 60, 130]))
        rows = []
        for _ in range(n):
            if segments and rng.random() < 0.4:  # near a label: IoU anywhere in (0, 1]
                s, e = segments[int(rng.integers(len(segments)))]
                start, end = s + rng.normal(0, 0.15), e + rng.normal(0, 0.15)
            else:
                start = rng.uniform(0, duration)
                end = start + rng.uniform(0.05, 3)
            start, end = t(start), t(end)
            end = max(end, start + 0.125)
            # Few distinct scores so ties across and within videos are common.
            score = float(rng.integers(0, 6) / 5) if rng.random() < 0.5 else t(rng.random())
            rows.append([score, start, end])
        proposals[name] = rows
    return proposals, records


@pytest.mark.parametrize("grid", [True, False], ids=["grid-times", "free-times"])
def test_ap_ar_parity_randomised(reference: ModuleType, tmp_path: Path, grid: bool) -> None:
    rng = np.random.default_rng(20240801 + grid)
    compared = 0
    for case in range(150):
        proposals, records = _random_case(rng, grid)
        if not any(r["fake_periods"] for r in records):
            continue  # AP is undefined without labels (the reference divides by zero)
        preset = AVDEEPFAKE1M if case % 2 else LAVDF
        value_key = "fake_segments" if case % 3 else "fake_periods"
        fps = 25.0 if case % 5 == 0 else 1.0
        given = {k: [[s, a * fps, b * fps] for s, a, b in rows] for k, rows in proposals.items()}
        ref_ap, ref_ar = _reference_ap_ar(
            reference,
            tmp_path,
            given,
            records,
            value_key,
            fps,
            preset.ap_iou_thresholds,
            preset.ar_n_proposals,
        )
        ours = ap_ar(
            given,
            {r["file"]: r[value_key] for r in records},
            preset.ap_iou_thresholds,
            preset.ar_n_proposals,
            fps=None if fps == 1.0 else fps,
        )
        for th in preset.ap_iou_thresholds:
            assert ours.ap[th] == pytest.approx(ref_ap[th], abs=1e-6), (case, "ap", th)
        for n in preset.ar_n_proposals:
            assert ours.ar[n] == pytest.approx(ref_ar[n], abs=1e-6), (case, "ar", n)
        compared += 1
    assert compared > 100


def test_proposals_of_unlabelled_videos_are_ignored_by_both(
    reference: ModuleType, tmp_path: Path
) -> None:
    proposals = {"a": [[0.9, 0.0, 1.0], [0.3, 2.0, 3.0]], "stray": [[0.99, 0.0, 1.0]]}
    records = [{"file": "a", "fake_periods": [[0.0, 1.0], [2.0, 3.0]]}]
    ref_ap, ref_ar = _reference_ap_ar(
        reference, tmp_path, proposals, records, "fake_periods", 1.0, (0.5,), (1, 2)
    )
    ours = ap_ar(proposals, {"a": records[0]["fake_periods"]}, (0.5,), (1, 2))
    assert ours.ap == pytest.approx(ref_ap) and ours.ar == pytest.approx(ref_ar)
    assert ours.ap[0.5] == pytest.approx(0.5)


def test_reference_panics_on_an_empty_list_where_we_count_misses(
    reference: ModuleType, tmp_path: Path
) -> None:
    # The documented difference: the reference cannot parse "[]"; we score its labels as FN.
    proposals = {"a": [[0.9, 0.0, 1.0]], "b": []}
    records = [{"file": "a", "fake_periods": [[0.0, 1.0]]}, {"file": "b", "fake_periods": [[0, 1]]}]
    with pytest.raises(BaseException, match="shape") as info:  # pyo3's PanicException
        _reference_ap_ar(reference, tmp_path, proposals, records, "fake_periods", 1.0, (0.5,), (1,))
    assert type(info.value).__name__ == "PanicException"
    ours = ap_ar(proposals, {r["file"]: r["fake_periods"] for r in records}, (0.5,), (1,))
    assert ours.ar[1] == pytest.approx(0.5)
