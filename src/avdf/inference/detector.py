"""The Detector: video file -> :class:`avdf.types.Prediction`, streaming (DESIGN §4.9).

    chunks of VideoFeatures (preprocess.pipeline)
      -> windows of the training length, half-window hop (inference.sliding)
      -> model in inference mode, a few windows per batch
      -> per-step probabilities stitched by overlap averaging (inference.sliding)
      -> proposals + soft-NMS over the whole video (inference.decode)

Memory is bounded by one chunk plus one batch of windows; only a handful of floats per
step (probabilities and boundary distances) are kept for the whole video.

Video-level score. The model emits one video logit per *window*. Its mean over windows is
the video head's verdict for manipulations that span the video (FakeAVCeleb-style whole
clips), but a short fake segment inside a long real video would be diluted by the mean.
The per-step head localises such segments, so the untuned video score is
``max(mean window video probability, max stitched step probability)``: the stitched step
probabilities are already averaged over overlapping windows, which damps single-window
spikes. A single step decides that maximum, though, and a generated face is fake at every
step: the mean of the top fraction of step probabilities weighs the whole video. The
calibration's ``top_fraction`` (fitted by ``avdf tune``) selects the rule. See
:func:`aggregate_video_score`. Or, with the calibration's ``from_proposals``, the video
score is its best proposal's score: after a proposal rescorer, the evidence that one
segment is fake. Or, for a checkpoint tuned with a video stacker
(:mod:`avdf.inference.video_score`), a logistic regression over all of these statistics
and the modality heads' maxima. A checkpoint tuned with a video probe
(:mod:`avdf.inference.probe`) blends that rule's score with the probe's, which reads the
model's block summary averaged over the windows.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from avdf.data.batch import features_to_inputs, inputs_on
from avdf.errors import InputError
from avdf.inference.calibration import Calibration
from avdf.inference.decode import DecodeConfig, ProposalRescorer, decode_proposals
from avdf.inference.probe import VideoProbe
from avdf.inference.sliding import OverlapStitcher, iter_windows
from avdf.inference.video_score import VideoStacker, aggregate_video_score, video_statistics
from avdf.models.checkpoint import trained_window_steps
from avdf.preprocess.features import VideoFeatures
from avdf.timebase import MediaSpec
from avdf.types import Prediction, ScoredSegment

DEFAULT_WINDOW_STEPS = 64
BUNDLED_CHECKPOINT = "assets/demo.ckpt"  # inside the avdf package
# Stitched channels, in order: fake, audio-fake, visual-fake, start and end boundary
# probabilities, then per localization level its probability and the distances in steps
# from the step centre to the segment start and end.
_STEP_CHANNELS = 5


@dataclass
class StepOutputs:
    """Stitched per-step outputs of one whole video (N steps) plus what decoding needs."""

    spec: MediaSpec
    duration: float  # seconds
    fake_prob: np.ndarray  # (N,) float32
    audio_prob: np.ndarray  # (N,) float32
    visual_prob: np.ndarray  # (N,) float32
    level_prob: np.ndarray  # (N, L) float32, each localization level's probability
    level_boundaries: np.ndarray  # (N, L, 2) float32, steps from the step centre to the ends
    start_prob: np.ndarray | None  # (N,) float32 boundary probabilities (None: head has none)
    end_prob: np.ndarray | None  # (N,)
    window_video_prob: np.ndarray  # (n_windows,) float32, video head per window
    audio_present: np.ndarray  # (N,) bool, audio available at the step
    face_present: np.ndarray  # (N,) bool, face (and so lips) available at the step
    notes: list[str] = field(default_factory=list)  # pipeline remarks ("no audio stream")
    # (F,) float32 the model's block summary (ModelOutput.block_summary) averaged over the
    # windows that had each feature (NaN: a modality absent from the whole video); None
    # for models without one
    block_summary: np.ndarray | None = None

    @property
    def n_steps(self) -> int:
        return len(self.fake_prob)

    @property
    def modalities_present(self) -> dict[str, float]:
        """Fraction of steps in which each modality was available."""
        n = max(self.n_steps, 1)
        face = float(self.face_present.sum()) / n
        return {"audio": float(self.audio_present.sum()) / n, "face": face, "lips": face}


def bundled_checkpoint_path() -> Path:
    """The demo checkpoint shipped inside the package; a clear error if it is missing."""
    resource = importlib.resources.files("avdf").joinpath(BUNDLED_CHECKPOINT)
    if not resource.is_file():
        raise InputError(
            str(resource),
            "the bundled demo checkpoint is missing; pass --checkpoint PATH "
            "(train one with `avdf train`)",
        )
    return Path(str(resource))


class Detector:
    """Scores whole videos of any length with a trained model.

    Two entry points: :meth:`detect` for a video file and :meth:`detect_features` for
    pre-computed features (a cache). Each is two stages that callers needing the per-step
    curves (reports, ``avdf tune``, validation) use separately: ``detect_steps`` /
    ``steps_from_features`` give the stitched :class:`StepOutputs`, :meth:`predict` turns
    them into a :class:`Prediction` with the checkpoint's decoding and calibration.

    ``window_steps`` defaults to the checkpoint's training window (``window_steps`` in
    its info or info['extra']) or 64; windows overlap by half (``hop_steps``).
    ``batch_size`` windows go through the model at once. ``chunk_steps`` is the
    pipeline's chunk: the decoded frames of one chunk dominate peak memory (measured on a
    1-minute 360p clip: 1013 MiB peak with 250 steps, 703 MiB with 100, ~10% more CPU).
    ``flip`` also runs every window with its face and mouth crops mirrored and averages
    the outputs (default: the checkpoint's ``test_time_flip``, set by ``avdf tune --flip``).
    ``num_threads`` sets torch's intra-op threads (default 1; None keeps torch's default).
    The model is cheap (about 0.5 s per video-minute) while PyAV and MediaPipe run their
    own threads, so more torch threads oversubscribe small machines: on 2 cores, detect
    measured RTF 0.15-0.22 with 1 thread and 0.27-0.85 with torch's default of 2.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        spec: MediaSpec,
        decode: DecodeConfig | None = None,
        window_steps: int | None = None,
        batch_size: int = 8,
        hop_steps: int | None = None,
        weighting: str = "triangular",
        chunk_steps: int = 128,
        max_side: int = 640,
        num_threads: int | None = 1,
        info: Mapping[str, Any] | None = None,
        calibration: Calibration | None = None,
        flip: bool | None = None,
    ) -> None:
        self.model = model.eval()
        self.spec = spec
        self.info = dict(info or {})
        # `avdf tune` stores its decoding parameters and calibration in the checkpoint.
        tuned = self.info.get("extra") or {}
        self.decode_config = decode or DecodeConfig.from_dict(tuned.get("decode"))
        self.calibration = calibration or Calibration.from_dict(tuned.get("calibration"))
        rescorer = tuned.get("proposal_rescorer")
        self.rescorer = ProposalRescorer.from_dict(rescorer) if rescorer else None
        stacker = tuned.get("video_stacker")
        self.stacker = VideoStacker.from_dict(stacker) if stacker else None
        probe = tuned.get("video_probe")
        self.probe = VideoProbe.from_dict(probe) if probe else None
        # Test-time flip: the model also sees every window's face and mouth crops mirrored
        # (as in training's augmentation) and its outputs are averaged.
        self.flip = bool(tuned.get("test_time_flip", False)) if flip is None else flip
        trained = trained_window_steps(self.info)
        self.window_steps = int(window_steps or trained or DEFAULT_WINDOW_STEPS)
        self.hop_steps = hop_steps or max(1, self.window_steps // 2)
        self.batch_size = batch_size
        self.weighting = weighting
        self.chunk_steps = chunk_steps
        self.max_side = max_side
        self._tracker: Any = None  # built on first use, reused across videos
        # Expert streams the model reads (avdf.experts); computed with the features.
        self.experts: tuple[str, ...] = tuple(getattr(model, "experts", ()))
        if num_threads is not None:
            torch.set_num_threads(num_threads)

    @classmethod
    def from_checkpoint(cls, path: str | Path | None = None, **kwargs: Any) -> Detector:
        """Load a checkpoint saved by ``avdf train`` (None: the bundled demo checkpoint)."""
        from avdf.models.checkpoint import load_checkpoint

        checkpoint = Path(path) if path is not None else bundled_checkpoint_path()
        if not checkpoint.is_file():
            raise InputError(checkpoint, "checkpoint file not found")
        model, spec, info = load_checkpoint(checkpoint)
        return cls(model, spec, info=info, **kwargs)

    # --- streaming ----------------------------------------------------------------------
    def _feature_chunks(self, path: str | Path, stats: Any) -> Iterator[VideoFeatures]:
        from avdf.preprocess.pipeline import default_tracker, iter_features

        # One face tracker for every video this Detector sees; its models load on the first frame.
        if self._tracker is None:
            self._tracker = default_tracker(self.spec)
        return iter_features(
            path,
            self.spec,
            chunk_steps=self.chunk_steps,
            tracker=self._tracker,
            max_side=self.max_side,
            stats=stats,
            experts=self.experts,
        )

    @property
    def n_levels(self) -> int:
        return int(self.model.head.n_levels)

    def _run_batch(
        self, windows: list[VideoFeatures]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Model outputs for a batch: per-step channels (B, T, 5 + 3L), video prob (B,)
        and the block summary (B, F) (None if the model gives none)."""
        inputs = features_to_inputs(windows, self.window_steps, self.experts)
        channels, video, summary = self._forward(inputs)
        if self.flip:
            mirrored = {**inputs, "face": inputs["face"].flip(-1), "lips": inputs["lips"].flip(-1)}
            flipped = self._forward(mirrored)
            channels, video = (channels + flipped[0]) / 2, (video + flipped[1]) / 2
            if summary is not None and flipped[2] is not None:
                summary = (summary + flipped[2]) / 2
        return channels, video, summary

    def _forward(self, inputs: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """One forward pass of :meth:`_run_batch`."""
        with torch.inference_mode():
            # Validation during GPU training hands the detector a model on the GPU.
            parameter = next(self.model.parameters(), None)
            if parameter is not None:
                inputs = inputs_on(inputs, parameter.device)
            out = self.model(**inputs)
            level_logits, level_boundaries = out.level_steps()  # (B, T, L), (B, T, L, 2)
            zeros = torch.zeros_like(out.fake_logits)
            b, t, n_levels = level_logits.shape
            per_level = torch.cat(
                [torch.sigmoid(level_logits).unsqueeze(-1), level_boundaries.clamp(min=0)],
                dim=-1,
            ).reshape(b, t, 3 * n_levels)
            channels = torch.cat(
                [
                    torch.stack(
                        [
                            torch.sigmoid(out.fake_logits),
                            torch.sigmoid(out.audio_fake_logits),
                            torch.sigmoid(out.visual_fake_logits),
                            zeros if out.start_logits is None else torch.sigmoid(out.start_logits),
                            zeros if out.end_logits is None else torch.sigmoid(out.end_logits),
                        ],
                        dim=-1,
                    ),
                    per_level,
                ],
                dim=-1,
            )  # (B, T, 5 + 3L)
        summary = None  # NaN where a modality was absent from the window
        if out.block_summary is not None and out.block_summary_used is not None:
            used = out.block_summary_used
            summary = torch.where(used, out.block_summary.float(), float("nan")).cpu().numpy()
        video = torch.sigmoid(out.video_logit).float().cpu().numpy()
        return channels.float().cpu().numpy(), video, summary

    def detect_steps(self, path: str | Path) -> StepOutputs:
        """Stitched per-step probabilities for the whole video at ``path``."""
        from avdf.preprocess.pipeline import ExtractionStats

        stats = ExtractionStats()  # the pipeline fills in the probed MediaInfo
        steps = self._stitch(self._feature_chunks(path, stats), path)
        # The container's duration once the pipeline has probed it; what decoded when that is
        # clearly longer (audio outlasting the picture, clocks restarting mid-stream).
        probed = stats.info.duration if stats.info is not None else 0.0
        if steps.duration > probed + self.spec.step_seconds:
            probed = steps.duration
        return replace(
            steps, duration=float(probed) if probed > 0 else steps.duration, notes=list(stats.notes)
        )

    def steps_from_features(
        self,
        chunks: Iterable[VideoFeatures],
        duration: float | None = None,
        source: str | Path = "features",
        notes: Iterable[str] = (),
    ) -> StepOutputs:
        """Stitched per-step outputs of pre-computed consecutive feature chunks (a cache).

        ``duration`` (seconds) is the source video's; None uses the steps' span. ``source``
        names the input in errors.
        """
        steps = self._stitch(chunks, source)
        return replace(
            steps, duration=float(duration) if duration else steps.duration, notes=list(notes)
        )

    def _stitch(self, chunks: Iterable[VideoFeatures], source: str | Path) -> StepOutputs:
        """The shared core: chunks -> windows -> model -> stitched steps. ``duration`` is
        the steps' span (callers replace it with the container's) and ``notes`` empty."""
        chunks = _check_spec(chunks, self.spec, source, self.experts)
        n_channels = _STEP_CHANNELS + 3 * self.n_levels
        stitcher = OverlapStitcher(self.window_steps, n_channels, self.weighting)
        finished: list[np.ndarray] = []  # (n, channels) blocks of final steps
        window_probs: list[np.ndarray] = []
        summary = _RunningMean()  # of the windows' block summaries: F floats, not per window
        audio_present: list[np.ndarray] = []  # (n,) bool per chunk: a bit per step
        face_present: list[np.ndarray] = []
        pending: list[VideoFeatures] = []

        def flush() -> None:
            channels, video_prob, window_summary = self._run_batch(pending)
            summary.add(window_summary)
            for window, values in zip(pending, channels, strict=True):
                finished.append(stitcher.add(window.first_step, values[: window.n_steps]))
            window_probs.append(video_prob)
            pending.clear()

        def record_presence(chunks: Iterable[VideoFeatures]) -> Iterator[VideoFeatures]:
            for chunk in chunks:
                audio_present.append(chunk.audio_mask.copy())
                face_present.append(chunk.face_mask.copy())
                yield chunk

        for window in iter_windows(record_presence(chunks), self.window_steps, self.hop_steps):
            pending.append(window)
            if len(pending) == self.batch_size:
                flush()
        if pending:
            flush()
        finished.append(stitcher.finish())
        steps = np.concatenate(finished).astype(np.float32)  # (N, channels)
        n = len(steps)
        if n == 0:
            raise InputError(source, "no video frames could be decoded")
        levels = steps[:, _STEP_CHANNELS:].reshape(n, self.n_levels, 3)
        has_edges = bool(self.model.head.has_boundary_logits)
        return StepOutputs(
            spec=self.spec,
            duration=n * self.spec.step_seconds,
            fake_prob=steps[:, 0],
            audio_prob=steps[:, 1],
            visual_prob=steps[:, 2],
            level_prob=levels[..., 0],
            level_boundaries=levels[..., 1:3],
            start_prob=steps[:, 3] if has_edges else None,
            end_prob=steps[:, 4] if has_edges else None,
            window_video_prob=np.concatenate(window_probs).astype(np.float32),
            block_summary=summary.value(),
            audio_present=np.concatenate(audio_present),
            face_present=np.concatenate(face_present),
        )

    # --- decoding -----------------------------------------------------------------------
    def predict(self, steps: StepOutputs, video_id: str) -> Prediction:
        """Turn stitched step outputs into a Prediction (segments, scores, modalities).

        A modality cannot be blamed where it was absent: its probability counts as 0 at
        steps without it (for segment attribution), and a modality absent from the whole
        video gets no entry in ``modality_scores`` (``modalities_present`` says 0).
        """
        inputs = self.decoder_inputs(steps)
        audio_prob, visual_prob = inputs["audio_prob"], inputs["visual_prob"]
        segments = decode_proposals(**inputs, config=self.decode_config, rescorer=self.rescorer)
        modality_scores = {
            name: float(prob.max())
            for name, prob, present in (
                ("audio", audio_prob, steps.audio_present),
                ("visual", visual_prob, steps.face_present),
            )
            if present.any()
        }
        return Prediction(
            video_id=video_id,
            duration=steps.duration,
            score=self.calibration.calibrate(self.raw_video_score(steps, segments)),
            modality_scores=modality_scores,
            segments=segments,
            modalities_present=steps.modalities_present,
        )

    @staticmethod
    def decoder_inputs(steps: StepOutputs) -> dict[str, Any]:
        """The arguments :func:`~avdf.inference.decode.decode_proposals` takes from a video's
        steps; a modality's probability counts as 0 where it was absent."""
        return {
            "fake_prob": steps.fake_prob,
            "level_prob": steps.level_prob,
            "level_boundaries": steps.level_boundaries,
            "spec": steps.spec,
            "duration": steps.duration,
            "start_prob": steps.start_prob,
            "end_prob": steps.end_prob,
            "audio_prob": np.where(steps.audio_present, steps.audio_prob, 0.0),  # (N,)
            "visual_prob": np.where(steps.face_present, steps.visual_prob, 0.0),  # (N,)
        }

    def raw_video_score(
        self, steps: StepOutputs, segments: Sequence[ScoredSegment] | None = None
    ) -> float:
        """The video score before calibration (the rule score): the video stacker's
        probability when the checkpoint has one (:mod:`avdf.inference.video_score`), else
        :func:`aggregate_video_score` with the calibration's pooling, or the best proposal's
        score with its ``from_proposals``; blended with the video probe's when the
        checkpoint has one (:meth:`avdf.inference.probe.VideoProbe.score`). ``segments``:
        the video's proposals, decoded here when needed and not given."""
        if self.stacker is not None:
            rule = self.stacker.score(self.video_statistics(steps, segments))
        elif self.calibration.from_proposals:
            rule = self.best_proposal_score(steps, segments)
        else:
            rule = aggregate_video_score(
                steps.window_video_prob, steps.fake_prob, self.calibration.top_fraction
            )
        if self.probe is None:
            return rule
        if steps.block_summary is None:
            raise ValueError("the checkpoint's video probe needs a model with a block summary")
        return self.probe.score(steps.block_summary, rule)

    def best_proposal_score(
        self, steps: StepOutputs, segments: Sequence[ScoredSegment] | None = None
    ) -> float:
        """The best proposal's score (0 without proposals), decoding ``steps`` when
        ``segments`` is not given."""
        if segments is None:
            segments = decode_proposals(
                **self.decoder_inputs(steps), config=self.decode_config, rescorer=self.rescorer
            )
        return max((float(s.score) for s in segments), default=0.0)

    def video_statistics(
        self, steps: StepOutputs, segments: Sequence[ScoredSegment] | None = None
    ) -> np.ndarray:
        """What the video stacker reads (:func:`avdf.inference.video_score.video_statistics`)."""
        return video_statistics(steps, self.best_proposal_score(steps, segments))

    def detect_with_steps(
        self, path: str | Path, video_id: str | None = None
    ) -> tuple[Prediction, StepOutputs]:
        """Prediction plus the per-step outputs (for the HTML timeline)."""
        steps = self.detect_steps(path)
        return self.predict(steps, video_id or Path(path).stem), steps

    def detect(self, path: str | Path, video_id: str | None = None) -> Prediction:
        """Score the video at ``path``; ``video_id`` defaults to the file name's stem."""
        return self.detect_with_steps(path, video_id)[0]

    def detect_features(
        self, chunks: Iterable[VideoFeatures], duration: float | None, video_id: str
    ) -> Prediction:
        """Score pre-computed feature chunks (e.g. read from a cache) exactly as
        :meth:`detect` scores a video: same windows, model, stitching and decoding."""
        return self.predict(self.steps_from_features(chunks, duration, video_id), video_id)


class _RunningMean:
    """Feature-wise mean of (B, F) batches ignoring NaN, in F floats of memory."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count: np.ndarray | None = None

    def add(self, batch: np.ndarray | None) -> None:
        if batch is None:
            return
        batch = np.asarray(batch, dtype=np.float64)
        if self.total is None or self.count is None:
            self.total = np.zeros(batch.shape[-1])
            self.count = np.zeros(batch.shape[-1])
        self.total += np.nansum(batch, axis=0)
        self.count += np.sum(~np.isnan(batch), axis=0)

    def value(self) -> np.ndarray | None:
        """The mean (F,) float32, NaN where no batch had the feature; None before any."""
        if self.total is None or self.count is None:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.count > 0, self.total / self.count, np.nan).astype(np.float32)


def _check_spec(
    chunks: Iterable[VideoFeatures],
    spec: MediaSpec,
    source: str | Path,
    experts: Sequence[str] = (),
) -> Iterator[VideoFeatures]:
    """Pass chunks through, refusing features made with another MediaSpec than the model's
    or without the expert streams it reads."""
    for chunk in chunks:
        if chunk.spec != spec:
            raise InputError(
                source, f"features were made with {chunk.spec}, the model expects {spec}"
            )
        lacking = [name for name in experts if name not in chunk.experts]
        if lacking:
            raise InputError(
                source,
                f"features lack the expert stream(s) the model needs ({', '.join(lacking)}): "
                f"rerun avdf preprocess with --experts {' '.join(lacking)}",
            )
        yield chunk
