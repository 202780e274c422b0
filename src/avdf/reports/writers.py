"""Report writers: one small class per format (JSON, CSV, HTML), plus the batch summary.

Every writer renders a :class:`~avdf.reports.verdict.Verdict` to text and writes it atomically
(temporary sibling, then ``os.replace``), so a crash never leaves a half-written report, and
refuses to replace an existing file unless ``force`` is set. The HTML report is
self-contained (inline CSS, inline SVG timeline, thumbnails as inline PNG, no scripts) and
reads on a phone (viewport meta, a fluid layout, the timeline scales to the screen width).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avdf import atomic
from avdf.reports.verdict import NO_SEGMENT, StepCurves, Verdict


def write_text_atomic(path: str | Path, text: str, force: bool = False) -> Path:
    """Write a report atomically; an existing file is kept unless ``force``."""
    return atomic.write_text_atomic(path, text, force=force)


@dataclass(frozen=True)
class Still:
    """Face and mouth crops of one moment, shown beside the segment they illustrate."""

    time: float  # seconds
    label: str  # "segment 1", "real stretch", ...
    face: np.ndarray | None  # (H, W, 3) uint8 RGB, None when no face was found
    mouth: np.ndarray | None  # (h, w, 3) uint8 RGB


class ReportWriter:
    """Base class: subclasses set ``extension`` and implement ``render``."""

    extension = ""

    def render(
        self, verdict: Verdict, curves: StepCurves | None = None, stills: Sequence[Still] = ()
    ) -> str:
        raise NotImplementedError

    def path_for(self, output_dir: str | Path, video_id: str) -> Path:
        return Path(output_dir) / f"{report_stem(video_id)}.{self.extension}"

    def write(
        self,
        verdict: Verdict,
        path: str | Path,
        force: bool = False,
        curves: StepCurves | None = None,
        stills: Sequence[Still] = (),
    ) -> Path:
        return write_text_atomic(path, self.render(verdict, curves, stills), force)


def report_stem(video_id: str) -> str:
    """File name (without extension) of a video's reports: ids may contain folders
    (``test/000001``), which become ``test_000001`` so every report sits in one folder."""
    return video_id.replace("/", "_").replace("\\", "_") or "video"


class JsonWriter(ReportWriter):
    """``Verdict.to_dict()`` as indented JSON; reads back with ``Verdict.from_dict`` (and the
    ranked proposals with ``Verdict.from_dict(...).prediction()``)."""

    extension = "json"

    def render(
        self, verdict: Verdict, curves: StepCurves | None = None, stills: Sequence[Still] = ()
    ) -> str:
        return json.dumps(verdict.to_dict(), indent=2) + "\n"


CSV_COLUMNS = (
    "video",
    "verdict",
    "probability",
    "tuned",
    "start",
    "end",
    "score",
    "modality",
    "audio_score",
    "visual_score",
)


class CsvWriter(ReportWriter):
    """One row per manipulated segment (times in seconds); a video without segments gets one
    row with the segment columns empty, so every video appears in the file."""

    extension = "csv"

    def render(
        self, verdict: Verdict, curves: StepCurves | None = None, stills: Sequence[Still] = ()
    ) -> str:
        return self.render_many([verdict])

    def render_many(self, verdicts: Sequence[Verdict]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for v in verdicts:
            head = [v.video_id, v.label, _num(v.probability), str(v.tuned).lower()]
            if not v.segments:
                writer.writerow([*head, "", "", "", "", "", ""])
            for s in v.segments:
                writer.writerow(
                    [
                        *head,
                        _num(s.start),
                        _num(s.end),
                        _num(s.score),
                        s.modality,
                        _opt_num(s.audio_score),
                        _opt_num(s.visual_score),
                    ]
                )
        return buffer.getvalue()


SUMMARY_COLUMNS = (
    "video",
    "path",
    "status",
    "verdict",
    "probability",
    "tuned",
    "duration",
    "segments",
    "where",
    "report",
    "error",
)


def summary_row(
    path: str | Path,
    verdict: Verdict | None,
    report: str | Path | None = None,
    error: str = "",
    video_id: str | None = None,
) -> dict[str, str]:
    """One row of a batch's ``summary.csv``: a finished video, or a failed one (``verdict``
    None) with its error; ``video_id`` defaults to the verdict's, else the file's stem."""
    if verdict is None:
        video = video_id or Path(path).stem
        return {"video": video, "path": str(path), "status": "failed", "error": error}
    return {
        "video": verdict.video_id,
        "path": str(path),
        "status": "done",
        "verdict": verdict.label,
        "probability": _num(verdict.probability),
        "tuned": str(verdict.tuned).lower(),
        "duration": f"{verdict.duration:.2f}",
        "segments": str(len(verdict.segments)),
        "where": verdict.where(),
        "report": "" if report is None else str(report),
        "error": error,
    }


def render_summary(rows: Sequence[Mapping[str, str]]) -> str:
    """``summary.csv``: :data:`SUMMARY_COLUMNS`, one row per video, in the order given."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, SUMMARY_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _num(x: float) -> str:
    return f"{x:.4f}"


def _opt_num(x: float | None) -> str:
    return "" if x is None else _num(x)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode (H, W, 3) uint8 RGB as PNG with the standard library (no imaging dependency)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    height, width = image.shape[:2]
    # Each row starts with filter byte 0 (none); zlib does the compression.
    raw = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, -1)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def _img(image: np.ndarray | None, alt: str, css_class: str) -> str:
    if image is None:
        return f'<span class="noface {css_class}">no face</span>'
    data = base64.b64encode(png_bytes(image)).decode("ascii")
    return f'<img class="{css_class}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


COLORS = {"fake": "#222222", "audio": "#e67e22", "visual": "#2874a6", "segment": "#d62728"}
VERDICT_COLORS = {"fake": "#b71c1c", "uncertain": "#9a6700", "real": "#1b5e20"}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em; max-width: 60em;
  color: #222; line-height: 1.4; }
h1 { font-size: 1.2em; word-break: break-all; }
.verdict { border-left: 0.5em solid; padding: 0.6em 1em; background: #f7f7f7; }
.verdict .label { font-size: 1.8em; font-weight: bold; margin: 0; }
.facts { display: flex; flex-wrap: wrap; gap: 0.4em 1.5em; padding: 0; list-style: none; }
svg { width: 100%; height: auto; display: block; }
.legend span { margin-right: 1em; white-space: nowrap; }
.legend i { display: inline-block; width: 1.2em; height: 0.3em; vertical-align: middle;
  margin-right: 0.3em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(15em, 1fr)); gap: 0.8em; }
.card { border: 1px solid #ddd; border-radius: 0.4em; padding: 0.6em; }
.card.real { border-color: #a5d6a7; }
.card.weak { border-style: dashed; }
.card img, .noface { width: 7em; height: 7em; image-rendering: auto; object-fit: cover;
  border-radius: 0.2em; }
.card img.mouth, .noface.mouth { width: 5em; height: 5em; }
.noface { display: inline-flex; align-items: center; justify-content: center; background: #eee;
  color: #777; font-size: 0.8em; vertical-align: top; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f0f0f0; }
.muted { color: #666; font-size: 0.9em; }
.timeline { overflow-x: auto; }
@media (max-width: 40em) {  /* phones: keep the timeline's labels legible, scroll sideways */
  .timeline svg { min-width: 36em; }
  .verdict .label { font-size: 1.5em; }
}
"""


class HtmlWriter(ReportWriter):
    """One self-contained page: the verdict in plain words, a timeline of the fake, audio and
    visual probabilities with the segments shaded, a card per segment with face and mouth
    thumbnails (and one from a real stretch for comparison), and the ranked proposals."""

    extension = "html"

    def __init__(self, max_proposals: int = 20, max_points: int = 1000):
        self.max_proposals = max_proposals  # rows in the (folded) proposal table
        self.max_points = max_points  # timeline vertices per curve; an hour of steps is binned

    def render(
        self, verdict: Verdict, curves: StepCurves | None = None, stills: Sequence[Still] = ()
    ) -> str:
        v = verdict
        esc = html.escape
        color = VERDICT_COLORS[v.label]
        present = ", ".join(f"{esc(k)} {100 * x:.0f}%" for k, x in v.modalities_present.items())
        calibration = (
            "tuned on labelled videos"
            if v.tuned
            else "not tuned (the model's own score; read it as rough)"
        )
        facts = [
            f"probability fake: <b>{v.probability:.2f}</b>",
            f"fake from {v.threshold + v.uncertain_band:.2f}, "
            f"real below {v.threshold - v.uncertain_band:.2f}",
            f"calibration: {calibration}",
            f"duration: {v.duration:.2f} s",
            f"present: {present or 'unknown'}",
        ]
        notes = "".join(f"<li>{esc(n)}</li>" for n in v.notes)
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>avdf report: {esc(v.video_id)}</title>
<style>{_CSS}</style></head><body>
<h1>avdf report: {esc(v.video_id)}</h1>
<section class="verdict" style="border-color: {color}">
<p class="label" style="color: {color}">{esc(v.words)}</p>
<p class="headline">{esc(v.headline())}</p>
<p class="where"><b>Where:</b> {esc(v.where())}</p>
</section>
<ul class="facts">{"".join(f"<li>{f}</li>" for f in facts)}</ul>
{f'<ul class="notes muted">{notes}</ul>' if notes else ""}
<h2>Timeline</h2>
{self._legend(v)}
<div class="timeline">{self._timeline_svg(v, curves, stills)}</div>
<h2>Manipulated segments</h2>
{self._cards(v, stills)}
{self._proposals(v)}
<p class="muted">Made by avdf. Scores are the model's evidence, not proof.</p>
</body></html>
"""

    def _legend(self, v: Verdict) -> str:
        items = [
            ("fake", "fake probability"),
            ("audio", "audio evidence"),
            ("visual", "visual evidence"),
        ]
        spans = "".join(
            f'<span><i style="background: {COLORS[k]}"></i>{label}</span>' for k, label in items
        )
        shade = (
            f'<span><i style="background: {COLORS["segment"]}; opacity: 0.3; height: 0.8em">'
            f"</i>segment (above {v.segment_threshold:.2f})</span>"
        )
        return f'<p class="legend muted">{spans}{shade}</p>'

    def _cards(self, v: Verdict, stills: Sequence[Still]) -> str:
        by_label = {s.label: s for s in stills}
        cards = []
        for i, s in enumerate(v.segments):
            still = by_label.get(f"segment {i + 1}")
            scores = ", ".join(
                f"{name} {value:.2f}"
                for name, value in (("audio", s.audio_score), ("visual", s.visual_score))
                if value is not None
            )
            cards.append(
                f'<div class="card segment"><b>{i + 1}. {s.start:.2f}-{s.end:.2f} s</b>'
                f"<br>manipulated: <b>{html.escape(s.modality)}</b>"
                f"<br>score {s.score:.2f} (peak {s.peak:.2f})"
                f'<br><span class="muted">evidence: {scores or "none"}</span>'
                f"{self._thumbs(still)}</div>"
            )
        strongest, still = v.strongest, by_label.get("strongest")
        if strongest is not None:
            cards.append(
                f'<div class="card weak"><b>strongest evidence: {strongest.start:.2f}-'
                f"{strongest.end:.2f} s</b><br>below the segment threshold "
                f"({strongest.peak:.2f} &lt; {v.segment_threshold:.2f}): not a detection"
                f"<br>modality: {html.escape(strongest.modality)}"
                f"{self._thumbs(still)}</div>"
            )
        real = by_label.get("real stretch")
        if real is not None:
            cards.append(
                f'<div class="card real"><b>for comparison: {real.time:.2f} s</b>'
                f'<br><span class="muted">a stretch the model finds real</span>'
                f"{self._thumbs(real)}</div>"
            )
        header = "" if v.segments else f"<p><b>{NO_SEGMENT}</b>.</p>"
        return f'{header}<div class="cards">{"".join(cards)}</div>'

    @staticmethod
    def _thumbs(still: Still | None) -> str:
        if still is None:
            return ""
        when = f"{still.time:.2f} s"
        return (
            f'<div class="thumbs">{_img(still.face, f"face at {when}", "face")} '
            f"{_img(still.mouth, f'mouth at {when}', 'mouth')}"
            f'<br><span class="muted">frame at {when}</span></div>'
        )

    def _proposals(self, v: Verdict) -> str:
        rows = "".join(
            f'<tr class="proposal"><td>{i + 1}</td><td>{p.start:.2f}</td><td>{p.end:.2f}</td>'
            f"<td>{p.score:.3f}</td><td>{_opt(p.audio_score)}</td><td>{_opt(p.visual_score)}</td>"
            "</tr>"
            for i, p in enumerate(v.proposals[: self.max_proposals])
        )
        shown = min(len(v.proposals), self.max_proposals)
        return (
            f"<details><summary>Ranked proposals ({shown} of {len(v.proposals)}; overlapping, "
            'for metrics)</summary><div class="table-wrap"><table><tr><th>#</th>'
            "<th>start (s)</th><th>end (s)</th><th>score</th><th>audio</th><th>visual</th></tr>"
            f"{rows}</table></div></details>"
        )

    def _timeline_svg(
        self,
        v: Verdict,
        curves: StepCurves | None,
        stills: Sequence[Still] = (),
        width: int = 800,
        height: int = 220,
    ) -> str:
        """Inline SVG: x = seconds over the whole video, y = probability in [0, 1]."""
        left, right, top, bottom = 34, 10, 10, 30
        plot_w, plot_h = width - left - right, height - top - bottom
        duration = max(v.duration, 1e-6)

        def x(t: float) -> float:
            return left + plot_w * min(max(t / duration, 0.0), 1.0)

        def y(p: float) -> float:
            return top + plot_h * (1.0 - min(max(p, 0.0), 1.0))

        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            'role="img" aria-label="fake, audio and visual probability over time">',
            f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
            'stroke="#999"/>',
        ]
        for s in v.segments:
            parts.append(
                f'<rect class="segment" x="{x(s.start):.1f}" y="{top}" '
                f'width="{max(x(s.end) - x(s.start), 1.0):.1f}" height="{plot_h}" '
                f'fill="{COLORS["segment"]}" fill-opacity="0.22"/>'
            )
        if v.strongest is not None:  # outlined, not filled: a pointer, not a detection
            st = v.strongest
            parts.append(
                f'<rect class="strongest" x="{x(st.start):.1f}" y="{top}" '
                f'width="{max(x(st.end) - x(st.start), 1.0):.1f}" height="{plot_h}" '
                f'fill="none" stroke="{COLORS["segment"]}" stroke-dasharray="5 3"/>'
            )
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v.segment_threshold):.1f}" '
            f'y2="{y(v.segment_threshold):.1f}" stroke="#999" stroke-dasharray="4 3"/>'
        )
        if curves is not None and curves.n_steps:
            for name, values, stroke in (
                ("audio", curves.evidence("audio"), 1.5),
                ("visual", curves.evidence("visual"), 1.5),
                ("fake", curves.fake, 2.2),
            ):
                times, peaks = _downsample_max(values, curves.step_seconds, self.max_points)
                points = " ".join(
                    f"{x(t):.1f},{y(p):.1f}" for t, p in zip(times, peaks, strict=True)
                )
                parts.append(
                    f'<polyline class="{name}" fill="none" stroke="{COLORS[name]}" '
                    f'stroke-width="{stroke}" stroke-linejoin="round" points="{points}"/>'
                )
        for still in stills:
            parts.append(
                f'<path class="still" d="M{x(still.time):.1f},{top + plot_h} l-5,9 h10 z" '
                f'fill="{"#2e7d32" if still.label == "real stretch" else "#555"}"/>'
            )
        for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
            anchor = {0.0: "start", 1.0: "end"}.get(frac, "middle")  # stay inside the box
            parts.append(
                f'<text x="{x(frac * duration):.1f}" y="{height - 6}" font-size="12" '
                f'text-anchor="{anchor}">{frac * duration:.1f} s</text>'
            )
        for p in (0.0, 0.5, 1.0):
            parts.append(
                f'<text x="{left - 4}" y="{y(p) + 4:.1f}" font-size="12" '
                f'text-anchor="end">{p:g}</text>'
            )
        parts.append("</svg>")
        return "\n".join(parts)


def _downsample_max(
    step_values: Sequence[float] | np.ndarray, step_seconds: float, max_points: int
) -> tuple[list[float], list[float]]:
    """(times in seconds, values) of at most ``max_points`` bins of consecutive steps.

    Each bin keeps its *maximum*, so a short fake burst stays visible in a long video.
    """
    values = np.asarray(step_values, dtype=np.float64)  # (N,)
    n = len(values)
    per_bin = max(1, -(-n // max_points))  # ceil division
    n_bins = -(-n // per_bin)
    padded = np.full(n_bins * per_bin, -np.inf)
    padded[:n] = values
    peaks = padded.reshape(n_bins, per_bin).max(axis=1)
    first = np.arange(n_bins) * per_bin
    last = np.minimum(first + per_bin, n)
    times = 0.5 * (first + last) * step_seconds  # bin centres in seconds
    return times.tolist(), peaks.tolist()


def _opt(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


WRITERS: dict[str, type[ReportWriter]] = {"json": JsonWriter, "csv": CsvWriter, "html": HtmlWriter}
