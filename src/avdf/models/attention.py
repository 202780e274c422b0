"""Fusion of the per-modality contextual features: MMMS-BA's bi-modal attention and the
paper's ablation variants, each one module with the same interface.

A fusion module takes ``features`` — one (B, T, d) tensor per model modality in canonical
order (audio, face, lips) — and ``valid`` — one (B, T) bool per modality, False at padded
or absent steps — and returns (B, T, out_dim). Invalid steps are never used as keys
(masked before the softmax; a query with no valid key gets zeros, never NaN) and are
zeroed as queries.

Attention across steps takes two options beyond the paper: ``scaled`` divides the dot
products by sqrt(d) (the paper's unscaled products of tanh features saturate the softmax
early or, measured on the first checkpoint, leave it nearly uniform), and ``band`` limits
each query to keys within ``band`` steps, so a step is compared with its neighbourhood in
the other modality (alignment) rather than pooled with the whole window.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Paper notation: A = audio, V = face (visual), L = lips. Pairs in the paper's order.
_PAIRS = (("face", "lips"), ("audio", "face"), ("lips", "audio"))  # (V,L), (A,V), (L,A)
_SKIP_ORDER = ("face", "audio", "lips")  # residual skips [V, A, L]


def masked_softmax(scores: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis of ``scores`` (..., Q, K) ignoring keys where
    ``key_valid`` — (..., K), or (..., Q, K) for a per-query mask — is False. A row with
    no valid key is all zeros."""
    keep = key_valid if key_valid.dim() == scores.dim() else key_valid.unsqueeze(-2)
    scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
    # With every key masked the softmax is uniform over garbage; the multiply zeroes it.
    return torch.softmax(scores, dim=-1) * keep.to(scores.dtype)


def band_mask(key_valid: torch.Tensor, n_queries: int, band: int | None) -> torch.Tensor:
    """(B, Tk) key mask -> (B, Tq, Tk) that also drops keys more than ``band`` steps
    from the query (None: every valid key). Queries and keys share one step grid."""
    if band is None:
        return key_valid.unsqueeze(-2).expand(*key_valid.shape[:-1], n_queries, -1)
    q = torch.arange(n_queries, device=key_valid.device)
    k = torch.arange(key_valid.shape[-1], device=key_valid.device)
    near = (q[:, None] - k[None, :]).abs() <= band  # (Tq, Tk)
    return key_valid.unsqueeze(-2) & near


def gated_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    query_valid: torch.Tensor,
    key_valid: torch.Tensor,
    scaled: bool = False,
    band: int | None = None,
) -> torch.Tensor:
    """One direction of the paper's attention: ``N = softmax(Q·Kᵀ)``, ``O = N·K``,
    output ``O ⊙ Q`` (multiplicative gating), zeroed at invalid queries.

    query (B, Tq, d), key (B, Tk, d), query_valid (B, Tq), key_valid (B, Tk) -> (B, Tq, d).
    The paper's dot products are unscaled (features are tanh outputs, so bounded by d);
    ``scaled`` divides them by sqrt(d), ``band`` keeps keys within that many steps.
    """
    scores = query @ key.transpose(-1, -2)  # (B, Tq, Tk)
    if scaled:
        scores = scores / query.shape[-1] ** 0.5
    mask = key_valid if band is None else band_mask(key_valid, query.shape[-2], band)
    weights = masked_softmax(scores, mask)
    attended = weights @ key  # (B, Tq, d)
    return attended * query * query_valid.unsqueeze(-1).to(query.dtype)


def bimodal_attention(
    x: torch.Tensor,
    y: torch.Tensor,
    x_valid: torch.Tensor,
    y_valid: torch.Tensor,
    scaled: bool = False,
    band: int | None = None,
) -> torch.Tensor:
    """BA(X, Y) across sequences: ``[O1 ⊙ X ; O2 ⊙ Y]`` with ``O1 = softmax(X·Yᵀ)·Y`` and
    ``O2 = softmax(Y·Xᵀ)·X``. x, y (B, T, d); masks (B, T) -> (B, T, 2d)."""
    a1 = gated_attention(x, y, x_valid, y_valid, scaled, band)
    a2 = gated_attention(y, x, y_valid, x_valid, scaled, band)
    return torch.cat([a1, a2], dim=-1)


class BimodalFusion(nn.Module):
    """MMMS-BA: ``[BA(V,L), BA(A,V), BA(L,A), V, A, L]`` restricted to the pairs whose two
    modalities the model uses (3 modalities -> 9d, 2 -> 4d, 1 -> d)."""

    def __init__(
        self, modalities: Sequence[str], dim: int, scaled: bool = False, band: int | None = None
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.scaled, self.band = scaled, band
        self.pairs = [p for p in _PAIRS if p[0] in self.modalities and p[1] in self.modalities]
        self.skips = [m for m in _SKIP_ORDER if m in self.modalities]
        self.out_dim = dim * (2 * len(self.pairs) + len(self.skips))

    def forward(
        self, features: Sequence[torch.Tensor], valid: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        feats = dict(zip(self.modalities, features, strict=True))
        masks = dict(zip(self.modalities, valid, strict=True))
        parts = [
            bimodal_attention(feats[x], feats[y], masks[x], masks[y], self.scaled, self.band)
            for x, y in self.pairs
        ]
        parts += [feats[m] for m in self.skips]
        return torch.cat(parts, dim=-1)


class StepSelfAttentionFusion(nn.Module):
    """MMUS-SA: at every step, gated self-attention over the stack of the M modality
    vectors (tokens = modalities), then ``[attended_1..M ; skips_1..M]`` -> (B, T, 2Md).
    The tokens are modalities, not steps, so ``band`` does not apply."""

    def __init__(
        self, modalities: Sequence[str], dim: int, scaled: bool = False, band: int | None = None
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.scaled = scaled
        self.out_dim = 2 * len(self.modalities) * dim

    def forward(
        self, features: Sequence[torch.Tensor], valid: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        tokens = torch.stack(list(features), dim=2)  # (B, T, M, d)
        token_valid = torch.stack(list(valid), dim=2)  # (B, T, M)
        b, t, m, d = tokens.shape
        attended = gated_attention(
            tokens.reshape(b * t, m, d),
            tokens.reshape(b * t, m, d),
            token_valid.reshape(b * t, m),
            token_valid.reshape(b * t, m),
            self.scaled,
        ).reshape(b, t, m * d)
        return torch.cat([attended, tokens.reshape(b, t, m * d)], dim=-1)


class SequenceSelfAttentionFusion(nn.Module):
    """MS-SA: per modality, gated self-attention across the T steps (masked), then
    ``[attended_1..M ; skips_1..M]`` -> (B, T, 2Md). No cross-modal interaction."""

    def __init__(
        self, modalities: Sequence[str], dim: int, scaled: bool = False, band: int | None = None
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.scaled, self.band = scaled, band
        self.out_dim = 2 * len(self.modalities) * dim

    def forward(
        self, features: Sequence[torch.Tensor], valid: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        attended = [
            gated_attention(f, f, v, v, self.scaled, self.band)
            for f, v in zip(features, valid, strict=True)
        ]
        return torch.cat([*attended, *features], dim=-1)


class ConcatFusion(nn.Module):
    """No attention: the contextual features concatenated -> (B, T, Md)."""

    def __init__(
        self, modalities: Sequence[str], dim: int, scaled: bool = False, band: int | None = None
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.out_dim = len(self.modalities) * dim

    def forward(
        self, features: Sequence[torch.Tensor], valid: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        return torch.cat(list(features), dim=-1)


FUSIONS: dict[str, type[nn.Module]] = {
    "mmms_ba": BimodalFusion,
    "mmus_sa": StepSelfAttentionFusion,
    "ms_sa": SequenceSelfAttentionFusion,
    "none": ConcatFusion,
}
