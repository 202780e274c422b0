"""Report writers: one small class per format (JSON, CSV, HTML).

Every writer renders a :class:`avdf.types.Prediction` to text and writes it atomically
(temporary file in the same folder, then ``os.replace``), so a crash never leaves a
half-written report, and refuses to replace an existing file unless ``force`` is set.
The HTML report is self-contained: inline CSS and an inline SVG timeline, no scripts.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from avdf import atomic
from avdf.types import Prediction


def write_text_atomic(path: str | Path, text: str, force: bool = False) -> Path:
    """Write a report atomically; an existing file is kept unless ``force``."""
    return atomic.write_text_atomic(path, text, force=force)


class ReportWriter:
    """Base class: subclasses set ``extension`` and implement ``render``."""

    extension = ""

    def render(
        self,
        prediction: Prediction,
        step_probs: Sequence[float] | None = None,
        step_seconds: float | None = None,
    ) -> str:
        raise NotImplementedError

    def path_for(self, output_dir: str | Path, video_id: str) -> Path:
        # Video ids may contain folders (``test/000001``): keep only a safe file name.
        name = video_id.replace("/", "_").replace("\\", "_") or "video"
        return Path(output_dir) / f"{name}.{self.extension}"

    def write(
        self,
        prediction: Prediction,
        path: str | Path,
        force: bool = False,
        step_probs: Sequence[float] | None = None,
        step_seconds: float | None = None,
    ) -> Path:
        return write_text_atomic(path, self.render(prediction, step_probs, step_seconds), force)


class JsonWriter(ReportWriter):
    """``Prediction.to_dict()`` as indented JSON; reads back with ``Prediction.from_dict``."""

    extension = "json"

    def render(
        self,
        prediction: Prediction,
        step_probs: Sequence[float] | None = None,
        step_seconds: float | None = None,
    ) -> str:
        return json.dumps(prediction.to_dict(), indent=2) + "\n"


CSV_COLUMNS = (
    "video",
    "video_score",
    "start",
    "end",
    "score",
    "modality",
    "audio_score",
    "visual_score",
)


class CsvWriter(ReportWriter):
    """One row per segment (times in seconds); a video without segments gets one row with
    the segment columns empty, so every video appears in the file."""

    extension = "csv"

    def render(
        self,
        prediction: Prediction,
        step_probs: Sequence[float] | None = None,
        step_seconds: float | None = None,
    ) -> str:
        return self.render_many([prediction])

    def render_many(self, predictions: Sequence[Prediction]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for p in predictions:
            if not p.segments:
                writer.writerow([p.video_id, _num(p.score), "", "", "", "", "", ""])
            for s in p.segments:
                writer.writerow(
                    [
                        p.video_id,
                        _num(p.score),
                        _num(s.start),
                        _num(s.end),
                        _num(s.score),
                        s.modality or "",
                        "" if s.audio_score is None else _num(s.audio_score),
                        "" if s.visual_score is None else _num(s.visual_score),
                    ]
                )
        return buffer.getvalue()


def _num(x: float) -> str:
    return f"{x:.4f}"


class HtmlWriter(ReportWriter):
    """A single self-contained HTML page: verdict, modality scores, modalities used, the
    segment table and an SVG timeline of per-step fake probability with segments shaded."""

    extension = "html"

    def __init__(self, max_segments: int = 20, shaded_segments: int = 5, max_points: int = 2000):
        self.max_segments = max_segments  # rows in the table (proposals are ranked)
        self.shaded_segments = shaded_segments  # top segments shaded on the timeline
        self.max_points = max_points  # timeline vertices; an hour of steps is binned

    def render(
        self,
        prediction: Prediction,
        step_probs: Sequence[float] | None = None,
        step_seconds: float | None = None,
    ) -> str:
        p = prediction
        esc = html.escape
        modality_rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{v:.3f}</td></tr>" for k, v in p.modality_scores.items()
        )
        present_rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{100 * v:.0f}% of the video</td></tr>"
            for k, v in p.modalities_present.items()
        )
        segment_rows = "".join(
            f'<tr class="segment"><td>{i + 1}</td><td>{s.start:.2f}</td><td>{s.end:.2f}</td>'
            f"<td>{s.score:.3f}</td><td>{esc(s.modality or '')}</td>"
            f"<td>{_opt(s.audio_score)}</td><td>{_opt(s.visual_score)}</td></tr>"
            for i, s in enumerate(p.segments[: self.max_segments])
        )
        if not p.segments:
            segment_rows = '<tr><td colspan="7">no fake segment proposed</td></tr>'
        verdict = "likely fake" if p.score >= 0.5 else "likely real"
        return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>avdf report: {esc(p.video_id)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }}
th {{ background: #f0f0f0; }}
.score {{ font-size: 1.6em; }}
</style></head><body>
<h1>avdf report: {esc(p.video_id)}</h1>
<p class="score">Video fake score: <b>{p.score:.3f}</b> ({verdict})</p>
<p>Duration: {p.duration:.2f} s</p>
<h2>Timeline</h2>
{self._timeline_svg(p, step_probs, step_seconds)}
<h2>Modality scores</h2>
<table><tr><th>modality</th><th>fake score</th></tr>{modality_rows}</table>
<h2>Modalities present</h2>
<table><tr><th>modality</th><th>available</th></tr>{present_rows}</table>
<h2>Segments (top {min(len(p.segments), self.max_segments)} of {len(p.segments)})</h2>
<table><tr><th>#</th><th>start (s)</th><th>end (s)</th><th>score</th><th>modality</th>
<th>audio</th><th>visual</th></tr>{segment_rows}</table>
</body></html>
"""

    def _timeline_svg(
        self,
        p: Prediction,
        step_probs: Sequence[float] | None,
        step_seconds: float | None,
        width: int = 800,
        height: int = 160,
    ) -> str:
        """Inline SVG: x = seconds over the whole video, y = fake probability in [0, 1]."""
        pad = 30
        plot_w, plot_h = width - 2 * pad, height - 2 * pad
        duration = max(p.duration, 1e-6)

        def x(t: float) -> float:
            return pad + plot_w * min(max(t / duration, 0.0), 1.0)

        def y(v: float) -> float:
            return pad + plot_h * (1.0 - min(max(v, 0.0), 1.0))

        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="fake probability over time">',
            f'<rect x="{pad}" y="{pad}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
            'stroke="#999"/>',
        ]
        for s in p.segments[: self.shaded_segments]:
            parts.append(
                f'<rect class="segment" x="{x(s.start):.1f}" y="{pad}" '
                f'width="{max(x(s.end) - x(s.start), 0.5):.1f}" height="{plot_h}" '
                f'fill="#e33" fill-opacity="{0.15 + 0.35 * s.score:.2f}"/>'
            )
        if step_probs is not None and step_seconds and len(step_probs):
            times, values = _downsample_max(step_probs, step_seconds, self.max_points)
            points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(times, values, strict=True))
            parts.append(f'<polyline fill="none" stroke="#1565c0" points="{points}"/>')
        parts.append(
            f'<line x1="{pad}" x2="{pad + plot_w}" y1="{y(0.5):.1f}" y2="{y(0.5):.1f}" '
            'stroke="#999" stroke-dasharray="4 3"/>'
        )
        for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
            parts.append(
                f'<text x="{x(frac * duration):.1f}" y="{height - 8}" font-size="10" '
                f'text-anchor="middle">{frac * duration:.1f}s</text>'
            )
        parts.append(f'<text x="4" y="{pad + 4}" font-size="10">1</text>')
        parts.append(f'<text x="4" y="{pad + plot_h}" font-size="10">0</text>')
        parts.append("</svg>")
        return "\n".join(parts)


def _downsample_max(
    step_probs: Sequence[float], step_seconds: float, max_points: int
) -> tuple[list[float], list[float]]:
    """(times in seconds, values) of at most ``max_points`` bins of consecutive steps.

    Each bin keeps its *maximum*, so a short fake burst stays visible in a long video.
    """
    values = np.asarray(step_probs, dtype=np.float64)  # (N,)
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
