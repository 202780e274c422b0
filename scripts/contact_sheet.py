"""Contact sheet of the synthetic corpus's visual families: for each family (and each kind of
``face_artefact`` / ``frozen_or_repeated``, plus lip-sync and whole-clip edits), a frame from
inside an edited segment above the same frame of the unedited source.

    python scripts/contact_sheet.py                      # docs/images/synth-contact-sheet.png
    python scripts/contact_sheet.py --corpus DIR --out sheet.png

Without ``--corpus`` it builds a corpus of ``--videos`` videos (default 160, seed 0) from the
default source media into a temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from avdf.io.decode import read_clip
from avdf.synth import build_corpus, discover
from avdf.synth.corpus import apply_variation, load_pools
from avdf.synth.sources import default_media_root
from avdf.synth.visual_edits import VISUAL_FAMILIES
from avdf.timebase import MediaSpec

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "docs" / "images" / "synth-contact-sheet.png"
TILE = 224  # pixels
CAPTION = 34  # pixels of caption above each column
SPEC = MediaSpec()


def _column_key(edit: dict) -> str | None:
    """Which column an edit illustrates (None: no visual edit)."""
    visual = edit.get("visual")
    if visual is None:
        return None
    family = visual["family"]
    if edit.get("whole_clip"):
        return f"whole clip: {family}"
    if visual.get("matched_to_audio"):
        return "lip-sync: mouth_rerender_lowres + its audio"
    if "kind" in visual:
        return f"{family}: {visual['kind']}"
    return family


def _columns() -> list[str]:
    """Wanted columns, in table order; those with no example in the corpus are left out."""
    wanted = []
    for family in VISUAL_FAMILIES:
        if family == "face_artefact":
            wanted += [f"{family}: {kind}" for kind in ("warp", "blur", "jpeg")]
        elif family == "frozen_or_repeated":
            wanted += [f"{family}: {kind}" for kind in ("freeze", "repeat")]
        else:
            wanted.append(family)
    wanted.append("lip-sync: mouth_rerender_lowres + its audio")
    wanted += [f"whole clip: {f}" for f in ("face_from_other_identity", "self_blended")]
    return wanted


def _caption(text: str, width: int) -> np.ndarray:
    """(CAPTION, width, 3) white strip with ``text`` in up to two lines."""
    strip = np.full((CAPTION, width, 3), 255, np.uint8)
    words, lines = text.split(" "), [""]
    for word in words:
        candidate = f"{lines[-1]} {word}".strip()
        size = cv2.getTextSize(candidate, cv2.FONT_HERSHEY_SIMPLEX, 0.42, 1)[0][0]
        if size > width - 6 and lines[-1]:
            lines.append(word)
        else:
            lines[-1] = candidate
    for i, line in enumerate(lines[:2]):
        cv2.putText(
            strip, line, (4, 14 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1,
            cv2.LINE_AA,
        )  # fmt: skip
    return strip


def make_sheet(corpus: Path, source_media: Path | None, out: Path) -> list[str]:
    """Write the sheet for the corpus at ``corpus`` (built from ``source_media``); returns the
    columns shown."""
    records = json.loads((corpus / "metadata.json").read_text())
    pools = load_pools(discover(source_media), SPEC)
    examples: dict[str, tuple[dict, dict]] = {}
    for record in records:
        for edit in record["extra"]["edits"]:
            key = _column_key(edit)
            if key is not None and key not in examples:
                examples[key] = (record, edit)
    columns = [c for c in _columns() if c in examples]
    tiles = []
    for key in columns:
        record, edit = examples[key]
        start, end = edit["segment"]
        frame_index = SPEC.frames_in((start + end) / 2)
        fake = read_clip(corpus / record["file"], SPEC).frames[frame_index]
        extra = record["extra"]
        source = pools.find(extra["source"])
        at = SPEC.frames_in(extra["source_start"]) + frame_index
        spf = SPEC.samples_per_frame
        original, _ = apply_variation(
            source.frames[at : at + 1], source.audio[:spf], tuple(extra["crop"]), 0.0
        )
        label = _caption(key, TILE)
        where = _caption(f"{record['file']} @ {frame_index / SPEC.fps:.2f} s", TILE)
        tiles.append(np.concatenate([label, original[0], fake, where[:18]], axis=0))
    if not tiles:
        raise SystemExit("no visual edits in this corpus")
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    per_row = 6
    rows = []
    for i in range(0, len(tiles), per_row):
        row = [t for tile in tiles[i : i + per_row] for t in (tile, gap)]
        width_missing = (per_row - len(tiles[i : i + per_row])) * (TILE + 4)
        if width_missing:
            row.append(np.full((tiles[0].shape[0], width_missing, 3), 255, np.uint8))
        rows.append(np.concatenate(row, axis=1))
    sheet = np.concatenate(rows, axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet[..., ::-1]):
        raise SystemExit(f"could not write {out}")
    return columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, help="an existing corpus (default: build one)")
    parser.add_argument("--source-media", type=Path, default=None)
    parser.add_argument("--videos", type=int, default=160)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    media = args.source_media or default_media_root()
    with tempfile.TemporaryDirectory() as scratch:
        corpus = args.corpus
        if corpus is None:
            corpus = Path(scratch) / "corpus"
            build_corpus(corpus, args.videos, args.seed, media, workers=1)
        columns = make_sheet(corpus, media, args.out)
    print(f"wrote {args.out}: {len(columns)} columns ({', '.join(columns)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
