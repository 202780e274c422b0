"""MMMS-BA (Katamneni & Rattani, IJCB 2024) and its ablation variants as one configurable
model; the registered variants at the end of the file only set kwargs.

Pipeline per window (B, T steps):
    feature blocks (per modality) -> (B, T, block_dim)
    [optional] temporal contrast: each step's features minus the window's mean, appended
    [optional] expert streams (avdf.experts, e.g. speaker consistency) appended to the audio
    contextual encoder: packed bidirectional GRU -> dense + tanh -> A, V, L (B, T, d)
    fusion (mmms_ba | mmus_sa | ms_sa | none) [+ lip–audio sync profile, avdf.models.sync]
        -> dense + ReLU -> (B, T, fusion_dim)
    heads: per-step fake logit, boundary distances, audio/visual-fake logits; video logit.

Masks: ``step_mask`` (B, T) marks real steps (padding must be at the end: the GRU is
packed, so padding never changes the outputs of real steps). ``presence`` (B, T, 3) marks
which modality is available at each step; an absent modality's inputs are never read
(its features are zero and its steps are never attention keys).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from avdf.experts import expert_streams
from avdf.models.attention import FUSIONS
from avdf.models.base import ModelOutput
from avdf.models.blocks import create_block
from avdf.models.heads import create_head
from avdf.models.registry import jsonable, register_model
from avdf.models.sync import SyncEmbedding
from avdf.timebase import MediaSpec
from avdf.types import MODALITIES


class ContextEncoder(nn.Module):
    """Bidirectional GRU over the steps, then a per-step dense layer with tanh.

    The GRU also sees a 0/1 presence flag per step so it can tell "modality absent here"
    from "features happen to be zero". It is run on a packed sequence: with plain padding
    the backward direction would start in the padding and change every real step.
    """

    def __init__(
        self, in_dim: int, gru_hidden: int, out_dim: int, gru_dropout: float, dense_dropout: float
    ) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim + 1, gru_hidden, batch_first=True, bidirectional=True)
        self.gru_dropout = nn.Dropout(gru_dropout)
        self.dense = nn.Linear(2 * gru_hidden, out_dim)
        self.dense_dropout = nn.Dropout(dense_dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """x (B, T, in_dim), valid (B, T) bool, lengths (B,) real steps -> (B, T, out_dim),
        zero where not valid."""
        t = x.shape[1]
        x = torch.cat([x, valid.unsqueeze(-1).to(x.dtype)], dim=-1)
        packed = pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, 2H)
        h = torch.tanh(self.dense(self.gru_dropout(out)))
        return self.dense_dropout(h) * valid.unsqueeze(-1).to(h.dtype)


class MMMSBA(nn.Module):
    """The configurable model behind every registered variant.

    Args:
        modalities: any non-empty subset of ("audio", "face", "lips"); the model ignores
            the input tensors of the others (they may be None).
        fusion: "mmms_ba" (bi-modal attention across sequences), "mmus_sa" (self-attention
            over the modalities at each step), "ms_sa" (per-modality self-attention across
            steps) or "none" (concatenation).
        spec: the MediaSpec (or its dict) the inputs follow; when given, input shapes are
            checked against it. None: blocks use the default MediaSpec and only the audio
            mel frames per step (which the weights depend on) are checked.
        audio_block, face_block, lips_block: names in the block registry.
        block_dim: vector size out of each feature block; block_width: its first channels.
        gru_hidden: GRU units per direction; context_dim: d, the dense+tanh size.
        gru_dropout, context_dropout: dropout after the GRU and after the dense+tanh.
        fusion_dim, fusion_dropout: the dense fusion layer (+ ReLU + dropout).
        modality_dropout: in training, probability per sample and modality of hiding that
            modality for the whole window (never all of a sample's available modalities).
        temporal_contrast: also feed each encoder its block features minus their mean over
            the window's valid steps, so a stretch unlike the rest of its own video (another
            identity, another voice) does not have to be found through the GRU alone.
        sync_dim: size of the learned lip–audio sync embedding (0: none; needs audio and
            lips); its per-step profile joins the fusion output.
        attention_scale, attention_band: attention across steps divided by sqrt(d), and
            limited to keys within ``attention_band`` steps (None: the whole window).
        head: localization head in :mod:`avdf.models.heads` ("pyramid" or the paper's
            "single_scale"); head_kwargs: its arguments.
        experts: expert streams (names in :mod:`avdf.experts`) whose per-step channels are
            appended to the input of the encoder of the modality they describe, zero where
            that modality is absent; ``forward`` then needs ``experts={name: (B, T, C)}``.
    """

    def __init__(
        self,
        *,
        modalities: Sequence[str] = MODALITIES,
        fusion: str = "mmms_ba",
        spec: MediaSpec | Mapping[str, Any] | None = None,
        audio_block: str = "mel_cnn",
        face_block: str = "face_3d",
        lips_block: str = "lip_3d",
        block_dim: int = 64,
        block_width: int = 16,
        gru_hidden: int = 128,
        context_dim: int = 64,
        gru_dropout: float = 0.3,
        context_dropout: float = 0.3,
        fusion_dim: int = 128,
        fusion_dropout: float = 0.3,
        modality_dropout: float = 0.1,
        temporal_contrast: bool = True,
        sync_dim: int = 32,
        attention_scale: bool = True,
        attention_band: int | None = 8,
        head: str = "pyramid",
        head_kwargs: Mapping[str, Any] | None = None,
        experts: Sequence[str] = (),
    ) -> None:
        super().__init__()
        unknown = [m for m in modalities if m not in MODALITIES]
        if unknown or not modalities or len(set(modalities)) != len(modalities):
            raise ValueError(
                f"modalities must be a non-empty subset of {MODALITIES}, got {modalities}"
            )
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose from {sorted(FUSIONS)}")
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}")
        if spec is not None and not isinstance(spec, MediaSpec):
            spec = MediaSpec.from_dict(spec)
        # The visual blocks pool globally, so their weights fit any crop size; the audio
        # block's depend on mel frames per step. A given spec is recorded and every input
        # shape is checked against it; None means the default MediaSpec for the blocks.
        self.spec = spec
        # Canonical order, so presence[..., MODALITIES.index(m)] and the feature list agree.
        self.modalities = tuple(m for m in MODALITIES if m in modalities)
        self.modality_dropout = modality_dropout

        block_names = {"audio": audio_block, "face": face_block, "lips": lips_block}
        self.blocks = nn.ModuleDict(
            {
                m: create_block(block_names[m], spec or MediaSpec(), block_dim, block_width)
                for m in self.modalities
            }
        )
        self.temporal_contrast = temporal_contrast
        streams = expert_streams(experts)
        if any(s.modality not in self.modalities for s in streams):
            raise ValueError(f"experts {list(experts)} describe a modality the model lacks")
        self.experts = tuple(s.name for s in streams)
        self._expert_channels = {s.name: s.n_channels for s in streams}
        self._expert_modality = {s.name: s.modality for s in streams}
        encoder_in = 2 * block_dim if temporal_contrast else block_dim
        extra = {m: sum(s.n_channels for s in streams if s.modality == m) for m in self.modalities}
        self.encoders = nn.ModuleDict(
            {
                m: ContextEncoder(
                    encoder_in + extra[m], gru_hidden, context_dim, gru_dropout, context_dropout
                )
                for m in self.modalities
            }
        )
        if sync_dim < 0:
            raise ValueError(f"sync_dim must be >= 0, got {sync_dim}")
        has_pair = "audio" in self.modalities and "lips" in self.modalities
        self.sync = SyncEmbedding(block_dim, sync_dim) if sync_dim and has_pair else None
        self.fusion = FUSIONS[fusion](
            self.modalities, context_dim, scaled=attention_scale, band=attention_band
        )
        fusion_in = self.fusion.out_dim + (self.sync.profile_dim if self.sync else 0)
        self.fusion_layer = nn.Sequential(
            nn.Linear(fusion_in, fusion_dim), nn.ReLU(), nn.Dropout(fusion_dropout)
        )
        self.head = create_head(head, fusion_dim, **dict(head_kwargs or {}))
        self.modality_head = nn.Linear(fusion_dim, 2)  # (audio-fake, visual-fake)
        self.video_head = nn.Linear(2 * fusion_dim, 1)  # [masked mean ; masked max]

        # Every argument spelled out, so a checkpoint rebuilds exactly this architecture.
        self.model_kwargs: dict[str, Any] = jsonable(
            {
                "modalities": list(self.modalities),
                "fusion": fusion,
                "spec": spec,
                "audio_block": audio_block,
                "face_block": face_block,
                "lips_block": lips_block,
                "block_dim": block_dim,
                "block_width": block_width,
                "gru_hidden": gru_hidden,
                "context_dim": context_dim,
                "gru_dropout": gru_dropout,
                "context_dropout": context_dropout,
                "fusion_dim": fusion_dim,
                "fusion_dropout": fusion_dropout,
                "modality_dropout": modality_dropout,
                "temporal_contrast": temporal_contrast,
                "sync_dim": sync_dim,
                "attention_scale": attention_scale,
                "attention_band": attention_band,
                "head": head,
                "head_kwargs": dict(head_kwargs or {}),
                "experts": list(self.experts),
            }
        )
        self.model_name = fusion  # create_model overwrites with the registered name

    # ------------------------------------------------------------------------------
    def _drop_modalities(self, present: torch.Tensor) -> torch.Tensor:
        """Hide whole modalities per sample (training only).

        present (B, T, M) bool -> same shape. A sample keeps at least one of the
        modalities it has: if every available one was drawn for dropping, one of them,
        chosen at random, is kept.
        """
        b, _, m = present.shape
        available = present.any(dim=1)  # (B, M)
        keep = torch.rand(b, m, device=present.device) >= self.modality_dropout
        kept = keep & available
        rescue = ~kept.any(dim=1) & available.any(dim=1)  # (B,)
        # Random available modality per sample: argmax of noise restricted to available.
        noise = torch.rand(b, m, device=present.device).masked_fill(~available, -1.0)
        pick = F.one_hot(noise.argmax(dim=1), m).bool()  # (B, M)
        keep = torch.where(rescue.unsqueeze(1), pick, keep)
        return present & keep.unsqueeze(1)

    def _check_shapes(self, inputs: Mapping[str, torch.Tensor | None]) -> None:
        """Per-step input shapes against the spec. Without a spec only what the weights
        depend on is checked: the audio block's mel frames per step."""
        spec = self.spec or MediaSpec()
        expected = {
            "audio": (spec.mel_frames_per_step, spec.n_mels),
            "face": (3, spec.face_size, spec.face_size),
            "lips": (3, spec.mouth_size, spec.mouth_size),
        }
        for m in self.modalities:
            got, want = tuple(inputs[m].shape[2:]), expected[m]
            if self.spec is None:
                if m != "audio":
                    continue
                got, want = got[:1], want[:1]
            if got != want:
                raise ValueError(
                    f"{m} input has per-step shape {got}, the model was built for {want} "
                    "(build it with create_model(..., spec=<the data's MediaSpec>))"
                )

    def forward(
        self,
        audio: torch.Tensor | None = None,
        face: torch.Tensor | None = None,
        lips: torch.Tensor | None = None,
        step_mask: torch.Tensor | None = None,
        presence: torch.Tensor | None = None,
        experts: Mapping[str, torch.Tensor] | None = None,
    ) -> ModelOutput:
        """Inputs as in :mod:`avdf.models.base`; returns :class:`ModelOutput`.

        ``step_mask`` may be omitted (all steps real); ``presence`` may be omitted (every
        modality of the model present at every real step). ``experts``: name -> (B, T, C)
        expert streams; those the model was not built with are ignored.
        """
        inputs = {"audio": audio, "face": face, "lips": lips}
        for m in self.modalities:
            if inputs[m] is None:
                raise ValueError(f"model {self.model_name!r} needs the {m!r} input")
        self._check_shapes(inputs)
        reference = inputs[self.modalities[0]]
        b, t = reference.shape[:2]
        streams = self._expert_inputs(experts, b, t)
        if step_mask is None:
            step_mask = torch.ones(b, t, dtype=torch.bool, device=reference.device)
        step_mask = step_mask.bool()
        lengths = step_mask.sum(dim=1)  # (B,)
        steps = torch.arange(t, device=step_mask.device)
        if not torch.equal(step_mask, steps.unsqueeze(0) < lengths.unsqueeze(1)):
            raise ValueError("step_mask must mark a prefix of each window (padding at the end)")
        if presence is None:
            present = step_mask.unsqueeze(-1).expand(b, t, len(self.modalities))
        else:
            columns = [MODALITIES.index(m) for m in self.modalities]
            present = presence.bool()[..., columns] & step_mask.unsqueeze(-1)  # (B, T, M)
        if self.training and self.modality_dropout > 0:
            present = self._drop_modalities(present)

        valid = [present[..., i] for i in range(len(self.modalities))]  # M x (B, T)
        masks = dict(zip(self.modalities, valid, strict=True))
        blocks = {m: self.blocks[m](inputs[m], masks[m]) for m in self.modalities}
        features = [
            self.encoders[m](
                self._encoder_input(blocks[m], masks[m], streams.get(m)), masks[m], lengths
            )
            for m in self.modalities
        ]  # M x (B, T, d)
        fusion = self.fusion(features, valid)
        sync_audio = sync_lips = None
        if self.sync is not None:
            sync_audio, sync_lips, profile = self.sync(
                blocks["audio"], blocks["lips"], masks["audio"], masks["lips"]
            )
            fusion = torch.cat([fusion, profile], dim=-1)
        fused = self.fusion_layer(fusion)  # (B, T, fusion_dim)

        localization = self.head(fused, step_mask)
        modality_logits = self.modality_head(fused)  # (B, T, 2)
        used = torch.zeros(b, t, len(MODALITIES), dtype=torch.bool, device=present.device)
        used[..., [MODALITIES.index(m) for m in self.modalities]] = present
        summaries = [_masked_mean_std(blocks[m], masks[m]) for m in self.modalities]
        return ModelOutput(
            fake_logits=localization.fake_logits,
            levels=localization.levels,
            start_logits=localization.start_logits,
            end_logits=localization.end_logits,
            audio_fake_logits=modality_logits[..., 0],
            visual_fake_logits=modality_logits[..., 1],
            video_logit=self.video_head(_masked_mean_max(fused, step_mask)).squeeze(-1),
            presence_used=used,
            sync_audio=sync_audio,
            sync_lips=sync_lips,
            block_summary=torch.cat([summary for summary, _ in summaries], dim=-1),
            block_summary_used=torch.cat([used for _, used in summaries], dim=-1),
        )

    def _expert_inputs(
        self, experts: Mapping[str, torch.Tensor] | None, b: int, t: int
    ) -> dict[str, torch.Tensor]:
        """The model's expert streams, checked, concatenated per modality -> (B, T, C)."""
        if not self.experts:
            return {}
        experts = experts or {}
        lacking = [name for name in self.experts if name not in experts]
        if lacking:
            raise ValueError(
                f"model {self.model_name!r} needs the expert stream(s) {lacking} "
                "(features made without them: preprocess with --experts)"
            )
        for name in self.experts:
            want = (b, t, self._expert_channels[name])
            if tuple(experts[name].shape) != want:
                raise ValueError(
                    f"expert {name!r} has shape {tuple(experts[name].shape)}, not {want}"
                )
        by_modality: dict[str, list[torch.Tensor]] = {}
        for name in self.experts:  # each describes a modality the model has (__init__)
            by_modality.setdefault(self._expert_modality[name], []).append(experts[name].float())
        return {m: torch.cat(streams, dim=-1) for m, streams in by_modality.items()}

    def _encoder_input(
        self, x: torch.Tensor, valid: torch.Tensor, stream: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Block features (B, T, D) -> the encoder's input: with temporal contrast,
        ``[x ; x - mean of x over the window's valid steps]``, then the modality's expert
        stream (B, T, C) if any (all zero at invalid steps)."""
        w = valid.unsqueeze(-1).to(x.dtype)
        if self.temporal_contrast:
            mean = (x * w).sum(dim=1, keepdim=True) / w.sum(dim=1, keepdim=True).clamp_min(1)
            x = torch.cat([x, (x - mean) * w], dim=-1)
        if stream is not None:
            x = torch.cat([x, stream.to(x.dtype) * w], dim=-1)
        return x


def _masked_mean_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[mean ; max] of x (B, T, C) over the steps where mask (B, T) is True -> (B, 2C);
    zeros for a window with no real step."""
    m = mask.unsqueeze(-1)
    count = m.sum(dim=1).clamp(min=1).to(x.dtype)  # (B, 1)
    mean = (x * m.to(x.dtype)).sum(dim=1) / count
    peak = x.masked_fill(~m, torch.finfo(x.dtype).min).amax(dim=1)
    peak = torch.where(mask.any(dim=1, keepdim=True), peak, torch.zeros_like(peak))
    return torch.cat([mean, peak], dim=-1)


def _masked_mean_std(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[mean ; sd] of x (B, T, C) over the steps where mask (B, T) is True -> (B, 2C), zeros
    for a window with no such step, and whether it had one, as a (B, 2C) bool."""
    m = mask.unsqueeze(-1)
    count = m.sum(dim=1).to(x.dtype)  # (B, 1)
    mean = torch.where(m, x, 0.0).sum(dim=1) / count.clamp(min=1)
    sd = (torch.where(m, x - mean.unsqueeze(1), 0.0) ** 2).sum(dim=1) / count.clamp(min=1)
    out = torch.cat([mean, sd.clamp(min=1e-12).sqrt()], dim=-1)  # finite gradient at 0
    return out, (count > 0).expand_as(out)


# --- registered variants: kwargs only ----------------------------------------------------
# The paper's form of the options added since (checkpoints written before them lack the
# keys, and load with these values: avdf.models.checkpoint).
PAPER_FORM: dict[str, Any] = {
    "experts": (),
    "temporal_contrast": False,
    "sync_dim": 0,
    "attention_scale": False,
    "attention_band": None,
}


@register_model("mmms_ba")
def mmms_ba(**kwargs: Any) -> MMMSBA:
    """MMMS-BA with CPU-friendly sizes (GRU 128 per direction, d = 64), a face block that
    sees motion, temporal contrast, a learned lip–audio sync stream and scaled, banded
    attention (the defaults of :class:`MMMSBA`)."""
    return MMMSBA(**{"fusion": "mmms_ba", **kwargs})


@register_model("mmms_ba_paper")
def mmms_ba_paper(**kwargs: Any) -> MMMSBA:
    """MMMS-BA as the paper has it: GRU 300 per direction (dropout 0.5), dense 100 with
    tanh (dropout 0.7), unscaled attention over the whole window, one frame at a time into
    the face block, no temporal contrast or sync stream. The fusion width (not given in
    the paper) is 100."""
    paper = {
        "fusion": "mmms_ba",
        "face_block": "face_cnn",
        **PAPER_FORM,
        "gru_hidden": 300,
        "gru_dropout": 0.5,
        "context_dim": 100,
        "context_dropout": 0.7,
        "fusion_dim": 100,
    }
    return MMMSBA(**{**paper, **kwargs})


@register_model("mmms_ba_single_scale")
def mmms_ba_single_scale(**kwargs: Any) -> MMMSBA:
    """Ablation: MMMS-BA with the paper's single-scale localization head."""
    return MMMSBA(**{"fusion": "mmms_ba", "head": "single_scale", **kwargs})


@register_model("mmus_sa")
def mmus_sa(**kwargs: Any) -> MMMSBA:
    """Ablation: self-attention over the modality vectors at each step."""
    return MMMSBA(**{"fusion": "mmus_sa", **kwargs})


@register_model("ms_sa")
def ms_sa(**kwargs: Any) -> MMMSBA:
    """Ablation: per-modality self-attention across steps."""
    return MMMSBA(**{"fusion": "ms_sa", **kwargs})


@register_model("none")
def concat(**kwargs: Any) -> MMMSBA:
    """Ablation: plain concatenation of the contextual features, no attention."""
    return MMMSBA(**{"fusion": "none", **kwargs})
