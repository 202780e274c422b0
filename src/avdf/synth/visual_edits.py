"""Visual manipulation families. Each rewrites the frames ``[first, stop)`` of a clip in
place and returns the parameters it drew. Frames outside the segment are never touched.

Masks are feathered (Gaussian-blurred) polygons from the face-mesh landmarks, so a blended
region has no hard edge, as in face-swap and lip-sync fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from avdf.preprocess.face import LIP_INDICES
from avdf.synth.sources import TalkingSource
from avdf.timebase import MediaSpec

LIPS = np.asarray(LIP_INDICES, dtype=np.int64)  # (40,) face-mesh indices of the lips
MIN_SHIFT_FRAMES = 12  # "another moment" is at least 0.48 s away at 25 fps


@dataclass
class VisualContext:
    """What a visual family may draw material from."""

    spec: MediaSpec
    source: TalkingSource  # the clip's own source (other moments of the same person)
    clip_start: int  # source frame index of the clip's first frame
    donors: list[TalkingSource]  # other identities of the same split (face swap)
    # Set for a lip-sync edit whose audio came from another moment of the source: the mouth is
    # then taken from that same moment (source frames from the segment's own position).
    matched_shift_frames: int | None = None


VisualFamily = Callable[
    [np.ndarray, np.ndarray, int, int, VisualContext, np.random.Generator], dict[str, Any]
]


def feathered_mask(
    points: np.ndarray, shape: tuple[int, int], grow: int, feather: float
) -> np.ndarray:
    """(H, W) float32 in [0, 1]: convex hull of ``points`` (K, 2) pixels, grown (or shrunk when
    ``grow`` < 0) by ``grow`` pixels, edges blurred with a Gaussian of sigma ``feather``."""
    mask = np.zeros(shape, dtype=np.uint8)
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255)
    if grow:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(grow) + 1,) * 2)
        mask = cv2.dilate(mask, kernel) if grow > 0 else cv2.erode(mask, kernel)
    mask = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), feather)
    return mask


def blend(base: np.ndarray, overlay: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: ``overlay`` where ``mask`` (H, W) is 1, ``base`` where it is 0."""
    alpha = mask[..., None]
    out = base.astype(np.float32) * (1.0 - alpha) + overlay.astype(np.float32) * alpha
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _valid_offsets(present: np.ndarray, first: int, length: int, min_distance: int) -> np.ndarray:
    """Start indices ``s`` into ``present`` (N,) bool with ``present[s:s+length]`` all true and
    ``|s - first| >= min_distance``."""
    n = len(present)
    if n < length:
        return np.zeros(0, dtype=np.int64)
    missing = np.concatenate([[0], np.cumsum(~present)])
    starts = np.arange(n - length + 1)
    ok = (missing[starts + length] - missing[starts]) == 0
    ok &= np.abs(starts - first) >= min_distance
    return starts[ok]


def _similarity(src_points: np.ndarray, dst_points: np.ndarray) -> np.ndarray:
    """(2, 3) similarity transform (rotation, uniform scale, shift) taking src to dst."""
    matrix, _ = cv2.estimateAffinePartial2D(
        src_points.astype(np.float32), dst_points.astype(np.float32), method=cv2.LMEDS
    )
    if matrix is None:
        raise ValueError("could not fit a similarity transform")
    return matrix


def mouth_other_moment(
    frames: np.ndarray,
    landmarks: np.ndarray,
    first: int,
    stop: int,
    ctx: VisualContext,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Lip-audio mismatch (Wav2Lip-like): the mouth of each frame is replaced by the mouth of
    the same person at another moment, aligned on the lip landmarks and feather-blended."""
    length = stop - first
    here = ctx.clip_start + first
    offsets = _valid_offsets(ctx.source.face_present, here, length, MIN_SHIFT_FRAMES)
    if len(offsets) == 0:
        raise ValueError("no other moment with a visible face to take the mouth from")
    start = _most_different_moment(offsets, landmarks[first:stop], ctx.source, rng)
    grow = int(rng.integers(4, 11))
    feather = float(rng.uniform(2.0, 5.0))
    size = frames.shape[1:3]
    for k in range(length):
        target = landmarks[first + k][LIPS]  # (40, 2)
        source_points = ctx.source.landmarks[start + k][LIPS]
        matrix = _similarity(source_points, target)
        warped = cv2.warpAffine(
            ctx.source.frames[start + k], matrix, size[::-1], borderMode=cv2.BORDER_REFLECT
        )
        mask = feathered_mask(target, size, grow, feather)
        frames[first + k] = blend(frames[first + k], warped, mask)
    return {
        "shift_seconds": round((start - here) / ctx.spec.fps, 4),
        "mask_grow_px": grow,
        "feather_sigma_px": round(feather, 3),
    }


def _most_different_moment(
    offsets: np.ndarray, landmarks: np.ndarray, source: TalkingSource, rng: np.random.Generator
) -> int:
    """Of 8 random source frames in ``offsets``, the start of the stretch whose mouth opening
    differs from ``landmarks`` (L, 468, 2) in the most frames (a lip-sync fake shows the wrong
    visemes, not the same ones by chance): ranked by the 20th percentile of the per-frame
    difference, then by its mean."""
    length = len(landmarks)
    opening = _mouth_opening(landmarks)
    picks = rng.choice(offsets, size=min(8, len(offsets)), replace=False)

    def difference(offset: int) -> tuple[float, float]:
        d = np.abs(_mouth_opening(source.landmarks[offset : offset + length]) - opening)
        return float(np.quantile(d, 0.2)), float(d.mean())

    return int(max(picks, key=difference))


def _mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """(N,) inner-lip gap (points 13, 14) over mouth width (points 61, 291), per frame."""
    gap = np.linalg.norm(landmarks[:, 13] - landmarks[:, 14], axis=-1)
    width = np.linalg.norm(landmarks[:, 61] - landmarks[:, 291], axis=-1)
    return gap / np.maximum(width, 1e-3)


def _match_colour(overlay: np.ndarray, base: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Shift ``overlay``'s LAB mean/std inside ``region`` (H, W) bool to ``base``'s."""
    over = cv2.cvtColor(overlay, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(base, cv2.COLOR_RGB2LAB).astype(np.float32)
    o, r = over[region], ref[region]  # (P, 3)
    over = (over - o.mean(0)) / (o.std(0) + 1e-3) * r.std(0) + r.mean(0)
    return cv2.cvtColor(np.clip(over, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def face_from_other_identity(
    frames: np.ndarray,
    landmarks: np.ndarray,
    first: int,
    stop: int,
    ctx: VisualContext,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Face swap: another identity's face, similarity-aligned on all landmarks, colour-matched
    in LAB (mean/std) and blended with a feathered face-hull mask."""
    length = stop - first
    order = rng.permutation(len(ctx.donors))
    for index in order:
        donor = ctx.donors[int(index)]
        offsets = _valid_offsets(donor.face_present, -(10**9), length, 0)
        if len(offsets):
            break
    else:
        raise ValueError("no donor identity with a visible face for the whole segment")
    start = int(rng.choice(offsets))
    shrink = int(rng.integers(2, 7))
    feather = float(rng.uniform(3.0, 7.0))
    size = frames.shape[1:3]
    for k in range(length):
        target = landmarks[first + k]  # (468, 2)
        matrix = _similarity(donor.landmarks[start + k], target)
        warped = cv2.warpAffine(
            donor.frames[start + k], matrix, size[::-1], borderMode=cv2.BORDER_REFLECT
        )
        mask = feathered_mask(target, size, -shrink, feather)
        warped = _match_colour(warped, frames[first + k], mask > 0.5)
        frames[first + k] = blend(frames[first + k], warped, mask)
    return {
        "donor": donor.name,
        "donor_start": round(start / ctx.spec.fps, 4),
        "colour_space": "LAB",
        "mask_shrink_px": shrink,
        "feather_sigma_px": round(feather, 3),
    }


def _jpeg_round_trip(frame: np.ndarray, quality: int, resolution: float) -> np.ndarray:
    """(H, W, 3) uint8: ``frame`` downscaled, JPEG-compressed, decoded and scaled back."""
    height, width = frame.shape[:2]
    small = cv2.resize(
        frame, (round(width * resolution), round(height * resolution)), interpolation=cv2.INTER_AREA
    )
    ok, data = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return cv2.resize(decoded, (width, height), interpolation=cv2.INTER_LINEAR)


def face_artefact(
    frames: np.ndarray,
    landmarks: np.ndarray,
    first: int,
    stop: int,
    ctx: VisualContext,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """A local rendering seam inside the face: smooth warp, blur, or heavy JPEG compression."""
    kind = str(rng.choice(["warp", "blur", "jpeg"]))
    feather = float(rng.uniform(3.0, 6.0))
    size = frames.shape[1:3]
    params: dict[str, Any] = {"kind": kind, "feather_sigma_px": round(feather, 3)}
    if kind == "warp":
        amplitude = float(rng.uniform(2.0, 4.0))  # pixels
        wavelength = float(rng.uniform(30.0, 60.0))  # pixels
        phase = float(rng.uniform(0.0, 2.0 * np.pi))
        ys, xs = np.mgrid[0 : size[0], 0 : size[1]].astype(np.float32)
        map_x = xs + amplitude * np.sin(2.0 * np.pi * ys / wavelength + phase)
        map_y = ys + amplitude * np.cos(2.0 * np.pi * xs / wavelength + phase)
        params |= {"amplitude_px": round(amplitude, 3), "wavelength_px": round(wavelength, 3)}
    elif kind == "blur":
        sigma = float(rng.uniform(2.5, 5.0))
        params["sigma_px"] = round(sigma, 3)
    else:
        quality = int(rng.integers(3, 11))
        resolution = float(rng.uniform(0.3, 0.5))  # compressed at this fraction of the size
        params |= {"jpeg_quality": quality, "resolution_scale": round(resolution, 3)}
    for k in range(first, stop):
        frame = frames[k]
        if kind == "warp":
            altered = cv2.remap(
                frame, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        elif kind == "blur":
            altered = cv2.GaussianBlur(frame, (0, 0), sigma)
        else:
            altered = _jpeg_round_trip(frame, quality, resolution)
        frames[k] = blend(frame, altered, feathered_mask(landmarks[k], size, 0, feather))
    return params


def _thumbnails(frames: np.ndarray) -> np.ndarray:
    """(N, 32, 32) float32 grey thumbnails of (N, H, W, 3) uint8 frames, for cheap comparison."""
    return np.stack(
        [
            cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
            for f in frames
        ]
    ).astype(np.float32)


def _most_different_start(
    source: np.ndarray,
    segment: np.ndarray,
    starts: np.ndarray,
    still: bool,
    rng: np.random.Generator,
) -> int:
    """Of 8 random ``starts`` into ``source`` frames (N, H, W, 3), the one whose stretch (or
    single frame when ``still``) differs most from ``segment`` (L, H, W, 3) in most frames: the
    20th percentile of per-frame thumbnail differences, so that even a nearly still speaker's
    freeze or repeat is visible from the segment's first frame to its last."""
    length = len(segment)
    target = _thumbnails(segment)  # (L, 32, 32)
    picks = rng.choice(starts, size=min(8, len(starts)), replace=False)

    def difference(start: int) -> float:
        moved = _thumbnails(source[start : start + (1 if still else length)])
        return float(np.quantile(np.abs(moved - target).mean(axis=(1, 2)), 0.2))

    return int(max(picks, key=difference))


def frozen_or_repeated(
    frames: np.ndarray,
    landmarks: np.ndarray,
    first: int,
    stop: int,
    ctx: VisualContext,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Temporal fakes: one frame from another moment held still for the segment ("freeze"),
    or another stretch of the same length played again ("repeat"). Of a few candidate moments
    (at least MIN_SHIFT_FRAMES away, and a repeat at least its own length away), the one that
    looks most different from the segment is used."""
    length = stop - first
    here = ctx.clip_start + first
    source = ctx.source.frames
    segment = frames[first:stop]
    kind = str(rng.choice(["freeze", "repeat"]))
    if kind == "repeat":
        shift = max(length, MIN_SHIFT_FRAMES)
        starts = np.arange(len(source) - length + 1)
        starts = starts[np.abs(starts - here) >= shift]
        if len(starts):
            origin = _most_different_start(source, segment, starts, False, rng)
            frames[first:stop] = source[origin : origin + length]
            return {"kind": kind, "shift_seconds": round((origin - here) / ctx.spec.fps, 4)}
        kind = "freeze"
    choices = np.flatnonzero(np.abs(np.arange(len(source)) - here) >= MIN_SHIFT_FRAMES)
    if len(choices) == 0:
        raise ValueError("source too short for a frozen frame from another moment")
    held = _most_different_start(source, segment, choices, True, rng)
    frames[first:stop] = source[held]
    return {"kind": kind, "held_offset_seconds": round((held - here) / ctx.spec.fps, 4)}


def _lower_face_points(landmarks: np.ndarray) -> np.ndarray:
    """(K, 2) landmarks of one face at or below the nose tip (point 1): the region a lip-sync
    generator re-renders (mouth, cheeks, chin)."""
    return landmarks[landmarks[:, 1] >= landmarks[1, 1]]


def _render_low_resolution(image: np.ndarray, box: tuple[int, int, int], size: int) -> np.ndarray:
    """``image`` with the square ``box`` (x0, y0, side) rendered at ``size`` pixels and scaled
    back: the detail a generator working on ``size``-pixel faces cannot produce."""
    x0, y0, side = box
    out = image.copy()
    patch = image[y0 : y0 + side, x0 : x0 + side]
    small = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    out[y0 : y0 + side, x0 : x0 + side] = cv2.resize(
        small, (side, side), interpolation=cv2.INTER_LINEAR
    )
    return out


def _face_box(landmarks: np.ndarray, shape: tuple[int, int]) -> tuple[int, int, int]:
    """Square (x0, y0, side) around a face's landmarks (468, 2), 10% margin, inside ``shape``."""
    low, high = landmarks.min(0), landmarks.max(0)
    side = int(min(min(shape), max(8.0, 1.1 * float((high - low).max()))))
    centre = (low + high) / 2
    x0 = int(np.clip(round(centre[0] - side / 2), 0, shape[1] - side))
    y0 = int(np.clip(round(centre[1] - side / 2), 0, shape[0] - side))
    return x0, y0, side


def mouth_rerender_lowres(
    frames: np.ndarray,
    landmarks: np.ndarray,
    first: int,
    stop: int,
    ctx: VisualContext,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Lip-sync generator stand-in (Wav2Lip, VideoReTalking): the lower face of each frame is
    taken from another moment of the same person (or, in a lip-sync edit, from the moment the
    new audio came from), aligned on all face landmarks, rendered at ~96 px, colour-shifted
    slightly, and blended back with a feathered lower-face mask."""
    length = stop - first
    here = ctx.clip_start + first
    if ctx.matched_shift_frames is not None:
        start = here + ctx.matched_shift_frames
        present = ctx.source.face_present[max(0, start) : start + length]
        if start < 0 or len(present) < length or not present.all():
            raise ValueError("no face at the moment the audio came from")
    else:
        offsets = _valid_offsets(ctx.source.face_present, here, length, MIN_SHIFT_FRAMES)
        if len(offsets) == 0:
            raise ValueError("no other moment with a visible face to take the mouth from")
        start = _most_different_moment(offsets, landmarks[first:stop], ctx.source, rng)
    render_size = int(rng.integers(80, 97))  # pixels across the face box
    # A colour mismatch of the re-rendered region: per channel, a gain of 3-6% and an offset of
    # 3-8 grey levels in the same direction (opposite ones could cancel).
    signs = rng.choice([-1.0, 1.0], size=3)
    gain = (1.0 + signs * rng.uniform(0.03, 0.06, size=3)).astype(np.float32)
    offset = (signs * rng.uniform(3.0, 8.0, size=3)).astype(np.float32)
    grow = int(rng.integers(2, 7))
    feather = float(rng.uniform(3.0, 6.0))
    size = frames.shape[1:3]
    for k in range(length):
        target = landmarks[first + k]  # (468, 2)
        matrix = _similarity(ctx.source.landmarks[start + k], target)
        warped = cv2.warpAffine(
            ctx.source.frames[start + k], matrix, size[::-1], borderMode=cv2.BORDER_REFLECT
        )
        mask = feathered_mask(_lower_face_points(target), size, grow, feather)
        # Colour-matched first (as generators' blending does), then the deliberate mismatch.
        warped = _match_colour(warped, frames[first + k], mask > 0.5)
        rendered = _render_low_resolution(warped, _face_box(target, size), render_size)
        rendered = np.clip(rendered.astype(np.float32) * gain + offset, 0, 255)
        frames[first + k] = blend(frames[first + k], rendered.astype(np.uint8), mask)
    return {
        "shift_seconds": round((start - here) / ctx.spec.fps, 4),
        "matched_to_audio": ctx.matched_shift_frames is not None,
        "render_px": render_size,
        "colour_gain": [round(float(g), 4) for g in gain],
        "colour_offset": [round(float(o), 3) for o in offset],
        "mask_grow_px": grow,
        "feather_sigma_px": round(feather, 3),
    }


def self_blended(
    frames: np.ndarray,
    landmarks: np.ndarray,
    first: int,
    stop: int,
    ctx: VisualContext,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Self-blended image (Shiohara & Yamasaki, CVPR 2022): each frame's own face, slightly
    rescaled, shifted, recoloured and blurred, blended back onto itself with a feathered
    landmark-hull mask. A blending boundary with no change of identity."""
    scale = float(rng.uniform(0.95, 1.05))
    shift = rng.uniform(-4.0, 4.0, size=2)  # pixels
    colour = rng.choice([-1.0, 1.0], size=3) * rng.uniform(14.0, 26.0, size=3)  # RGB grey levels
    contrast = float(rng.uniform(0.85, 1.15))
    blur = float(rng.uniform(0.5, 1.5))
    grow = int(rng.integers(-4, 3))  # the mask shrinks or grows a little around the hull
    feather = float(rng.uniform(2.0, 5.0))
    ratio = float(rng.uniform(0.8, 1.0))  # blend weight at the mask's centre
    size = frames.shape[1:3]
    for k in range(first, stop):
        centre = landmarks[k].mean(0)
        matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), 0.0, scale)
        matrix[:, 2] += shift
        moved = cv2.warpAffine(frames[k], matrix, size[::-1], borderMode=cv2.BORDER_REFLECT)
        moved = cv2.GaussianBlur(moved, (0, 0), blur).astype(np.float32)
        mean = moved.mean(axis=(0, 1))
        altered = np.clip((moved - mean) * contrast + mean + colour, 0, 255).astype(np.uint8)
        mask = feathered_mask(landmarks[k], size, grow, feather) * ratio
        frames[k] = blend(frames[k], altered, mask)
    return {
        "scale": round(scale, 4),
        "shift_px": [round(float(v), 3) for v in shift],
        "colour_offset": [round(float(c), 3) for c in colour],
        "contrast": round(contrast, 4),
        "blur_sigma_px": round(blur, 3),
        "mask_grow_px": grow,
        "feather_sigma_px": round(feather, 3),
        "blend_ratio": round(ratio, 4),
    }


VISUAL_FAMILIES: dict[str, VisualFamily] = {
    "mouth_other_moment": mouth_other_moment,
    "face_from_other_identity": face_from_other_identity,
    "face_artefact": face_artefact,
    "frozen_or_repeated": frozen_or_repeated,
    "mouth_rerender_lowres": mouth_rerender_lowres,
    "self_blended": self_blended,
}
