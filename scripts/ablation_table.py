"""Print the README's ablation table from the `avdf evaluate --json` files of
scripts/reproduce_demo.sh.

Usage: python scripts/ablation_table.py WORK_DIR

A row NAME reads WORK_DIR/NAME.test.json (seed 0) and, when present, WORK_DIR/NAME_s1.test.json,
NAME_s2.test.json, ... (other seeds); with several seeds each cell is "mean ± sd" over them.
Numbers in %.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROWS = [
    ("mmms_ba", "MMMS-BA, A+V+L"),
    ("mmus_sa", "MMUS-SA, A+V+L"),
    ("ms_sa", "MS-SA, A+V+L"),
    ("none", "none (concatenation), A+V+L"),
    ("audio_face", "MMMS-BA, A+V"),
    ("audio_lips", "MMMS-BA, A+L"),
    ("face_lips", "MMMS-BA, V+L"),
]
COLUMNS = [
    ("AUC", lambda r: r["detection"]["auc"]),
    ("ACC@0.5", lambda r: r["detection"]["accuracy"]),
    ("AP@0.5", lambda r: r["localization"]["ap"]["0.5"]),
    ("AP@0.75", lambda r: r["localization"]["ap"]["0.75"]),
    ("AP@0.95", lambda r: r["localization"]["ap"]["0.95"]),
    ("AR@10", lambda r: r["localization"]["ar"]["10"]),
    ("AR@100", lambda r: r["localization"]["ar"]["100"]),
]


def _results(work: Path, name: str) -> list[dict]:
    paths = [work / f"{name}.test.json"]
    paths += sorted(work.glob(f"{name}_s[0-9]*.test.json"))
    return [json.loads(p.read_text()) for p in paths if p.exists()]


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def main(work: Path) -> None:
    print("| run | seeds | " + " | ".join(name for name, _ in COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for key, label in ROWS:
        results = _results(work, key)
        if not results:
            print(f"| {label} | not run |" + " |" * len(COLUMNS))
            continue
        cells = [_cell([get(r) for r in results]) for _, get in COLUMNS]
        print(f"| {label} | {len(results)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2])
    main(Path(sys.argv[1]))
