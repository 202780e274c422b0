"""scripts/fold_table.py on hand-computed runs: mean ± sd over folds × seeds, the tuned ACC
threshold from scores.json, and the bootstrap over sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from avdf.reports.challenge import write_detection, write_localization
from avdf.types import Sample, Segment, write_manifest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fold_table.py"

# Fold 0 tests people P (a fake with a 0.4 s segment) and Q (real); fold 1 R (a 1 s fake)
# and S (real).
TEST = {
    0: [("a", "P", [[1.0, 1.4]]), ("b", "Q", [])],
    1: [("c", "R", [[2.0, 3.0]]), ("d", "S", [])],
}


def _folds(root: Path) -> Path:
    out = root / "folds"
    out.mkdir()
    for k, videos in TEST.items():
        samples = [
            Sample(name, "lavdf", "test", f"/x/{name}.mp4", 5.0, label=int(bool(segments)),
                   fake_segments=tuple(Segment(*s) for s in segments),
                   extra={"file": f"{name}.mp4", "speaker": person})
            for name, person, segments in videos
        ]  # fmt: skip
        write_manifest(samples, str(out / f"fold{k}.jsonl"))
    return out


def _run(folder: Path, proposals: dict, scores: dict, threshold: float | None = None) -> None:
    folder.mkdir(parents=True)
    write_localization({f"{k}.mp4": v for k, v in proposals.items()}, folder / "localization.json")
    write_detection({f"{k}.mp4": v for k, v in scores.items()}, folder / "detection.txt")
    if threshold is not None:
        (folder / "scores.json").write_text(json.dumps({"detection": {"threshold": threshold}}))


def _table(*args: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--resamples", "200"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    tables: list[dict[str, list[str]]] = [{}]
    for line in out.splitlines():
        if not line.strip():
            tables.append({})
        elif line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.split("|")[1:-1]]
            tables[-1][cells[0]] = cells[1:]
    return tables[0], tables[1] if len(tables) > 1 else {}


def test_mean_sd_over_folds_and_seeds_and_the_source_bootstrap(tmp_path: Path) -> None:
    folds = _folds(tmp_path)
    perfect, weak = tmp_path / "perfect", tmp_path / "weak"
    _run(perfect / "fold0" / "s0", {"a": [[0.9, 1.0, 1.4]], "b": []}, {"a": 0.9, "b": 0.1})
    _run(perfect / "fold1" / "s0", {"c": [[0.9, 2.0, 3.0]], "d": []}, {"c": 0.9, "d": 0.1})
    # weak, fold 0 seed 0: exact segment, right verdicts. Seed 1: IoU 0.2/0.6 = 0.33 (a miss
    # at every threshold), verdicts swapped. Fold 1: IoU 0.63 (found at 0.50, 0.55, 0.60 of
    # the ten AR thresholds: 0.3), c scored 0.7 under a tuned threshold of 0.8 (wrong).
    _run(weak / "fold0" / "s0", {"a": [[0.8, 1.0, 1.4]], "b": []}, {"a": 0.6, "b": 0.4})
    _run(weak / "fold0" / "s1", {"a": [[0.8, 1.2, 1.6]], "b": []}, {"a": 0.4, "b": 0.6})
    _run(weak / "fold1" / "s0", {"c": [[0.7, 2.0, 2.63]], "d": []}, {"c": 0.7, "d": 0.2}, 0.8)
    table, diff = _table(str(folds), str(perfect), str(weak))

    assert table["metric (%)"] == ["perfect", "weak"]
    assert table["folds × seeds"] == ["2 runs", "3 runs"]
    # One exact proposal for one label: official AP is 0 (the first recall step is not counted).
    assert table["AP@0.5"] == ["0.0 ± 0.0", "0.0 ± 0.0"]
    # AR@100: perfect 1, 1. weak 1, 0, 0.3 -> mean 0.4333, sd sqrt(0.52667 / 2) = 0.5132.
    assert table["AR@100"] == ["100.0 ± 0.0", "43.3 ± 51.3"]
    # Short segments exist in fold 0 only: weak 1, 0 -> 50 ± 70.7 (fold 1 has none: left out).
    assert table["R@0.5 <0.5s"] == ["100.0 ± 0.0", "50.0 ± 70.7"]
    # AUC weak 1, 0, 1 -> 66.7 ± 57.7; ACC weak 1, 0, 0.5 (tuned threshold) -> 50 ± 50.
    assert table["AUC"] == ["100.0 ± 0.0", "66.7 ± 57.7"]
    assert table["ACC"] == ["100.0 ± 0.0", "50.0 ± 50.0"]
    # Half of each split is fake. In hindsight weak's runs score 1 (separated), 0.5 (fold 0
    # seed 1 swapped: no cut beats 1 of 2) and 1 (fold 1: a cut at 0.7) -> 83.3 ± 28.9.
    assert table["ACC all fake"] == ["50.0 ± 0.0", "50.0 ± 0.0"]
    assert table["ACC hindsight"] == ["100.0 ± 0.0", "83.3 ± 28.9"]

    # Bootstrap perfect - weak on the full data, and its interval contains that difference.
    difference, interval, ahead = diff["AR@100"]
    assert difference == "56.7"
    low, high = (float(x) for x in interval.strip("[]").split(","))
    assert low <= 56.7 <= high
    assert 0.0 <= float(ahead.rstrip("%")) <= 100.0
    # Swapping the pair flips the sign.
    _, swapped = _table(str(folds), str(perfect), str(weak), "--compare", "weak", "perfect")
    assert swapped["AR@100"][0] == "-56.7"

    # --seed-of keeps one seed's runs of a variant: weak's seed s1 alone (AR@100 0).
    table, one_seed = _table(str(folds), str(perfect), str(weak), "--seed-of", "weak=s1")
    assert table["folds × seeds"] == ["2 runs", "1 runs"] and table["AR@100"][1] == "0.0 ± 0.0"
    assert one_seed["AR@100"][0] == "100.0"  # paired on fold 0 only, the fold s1 has
