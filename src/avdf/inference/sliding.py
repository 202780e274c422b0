"""Sliding windows over a stream of feature chunks, and overlap stitching of per-step
outputs (DESIGN §4.9).

Windows have the model's training length ``window_steps`` and start every ``hop_steps``
(half a window by default), so a step away from the video's ends is seen by two windows.
The last window is never truncated to fit: it holds the remaining steps and the batch
padding marks the rest with ``step_mask`` False.

Stitching weights each window's outputs with a *triangular* profile, highest in the
middle of the window and low (but never zero) at its edges, because a step near a
window edge is scored with context on one side only. Weights are normalised per step,
so a step covered by a single window (the first and last half-window of the video) keeps
that window's value exactly, and a constant output stitches to the same constant.
``weighting="uniform"`` gives a plain average instead.

Both pieces stream: :func:`iter_windows` holds at most one window plus one incoming chunk
of features, and :class:`OverlapStitcher` holds running sums only for steps that a later
window can still reach; finished steps are handed back as soon as they are final.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from avdf.preprocess.features import VideoFeatures


def iter_windows(
    chunks: Iterable[VideoFeatures], window_steps: int, hop_steps: int | None = None
) -> Iterator[VideoFeatures]:
    """Cut consecutive feature chunks into windows of at most ``window_steps`` steps.

    Windows start at ``0, hop, 2 * hop, ...`` (``first_step`` says where) until one
    reaches the end of the video; only that last window may be shorter. A video shorter
    than one window yields exactly one short window; an empty stream yields nothing.
    """
    hop = hop_steps or max(1, window_steps // 2)
    if window_steps < 1 or not 1 <= hop <= window_steps:
        raise ValueError(f"need 1 <= hop ({hop}) <= window ({window_steps})")
    buffer: VideoFeatures | None = None  # steps from the next window's start onwards
    covered_to = 0  # first step not inside any yielded window
    for chunk in chunks:
        if chunk.n_steps == 0:
            continue
        buffer = chunk if buffer is None else VideoFeatures.concat([buffer, chunk])
        while buffer.n_steps >= window_steps:
            window = buffer.slice(0, window_steps)
            covered_to = window.first_step + window_steps
            yield window
            buffer = buffer.slice(hop, buffer.n_steps)
    if buffer is not None and buffer.first_step + buffer.n_steps > covered_to:
        yield buffer  # the partial last window; padded by the batcher, not truncated


def window_weights(window_steps: int, weighting: str = "triangular") -> np.ndarray:
    """Per-position stitching weights (window_steps,), all positive."""
    if weighting == "uniform":
        return np.ones(window_steps, dtype=np.float64)
    if weighting == "triangular":
        position = np.arange(window_steps)
        return (np.minimum(position, window_steps - 1 - position) + 1).astype(np.float64)
    raise ValueError(f"unknown weighting {weighting!r} (expected 'triangular' or 'uniform')")


class OverlapStitcher:
    """Weighted overlap averaging of per-step outputs from windows added in start order.

    ``add(first_step, values)`` takes a window's outputs for its real (unpadded) steps,
    ``values`` (n, C); it returns the rows that are now final (every step before this
    window's start), as (m, C). ``finish()`` returns the remaining rows. Concatenating
    all returned rows gives one row per step of the video.
    """

    def __init__(self, window_steps: int, n_channels: int, weighting: str = "triangular"):
        self.weights = window_weights(window_steps, weighting)  # (W,)
        self.n_channels = n_channels
        self._offset = 0  # video step of row 0 of the running sums
        self._sums = np.zeros((0, n_channels), dtype=np.float64)  # (pending steps, C)
        self._weight_sums = np.zeros(0, dtype=np.float64)  # (pending steps,)

    def add(self, first_step: int, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        if values.shape != (n, self.n_channels) or n > len(self.weights):
            raise ValueError(f"expected at most ({len(self.weights)}, {self.n_channels}) values")
        if first_step < self._offset:
            raise ValueError("windows must be added in order of their first step")
        if first_step > self._offset + len(self._weight_sums):
            raise ValueError(f"gap before step {first_step}: windows must cover every step")
        done = self._pop(first_step - self._offset)
        grow = n - len(self._weight_sums)
        if grow > 0:
            self._sums = np.concatenate([self._sums, np.zeros((grow, self.n_channels))])
            self._weight_sums = np.concatenate([self._weight_sums, np.zeros(grow)])
        w = self.weights[:n]
        self._sums[:n] += values * w[:, None]
        self._weight_sums[:n] += w
        return done

    def finish(self) -> np.ndarray:
        return self._pop(len(self._weight_sums))

    def _pop(self, count: int) -> np.ndarray:
        """Remove the first ``count`` pending steps and return their weighted means."""
        out = self._sums[:count] / self._weight_sums[:count, None]
        self._sums = self._sums[count:]
        self._weight_sums = self._weight_sums[count:]
        self._offset += count
        return out
