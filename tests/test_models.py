"""Tests for avdf.models: registry, variants, masking invariants, attention math and
checkpoints. Parametrized over the registry so a new variant is tested automatically."""

from __future__ import annotations

import itertools
import json
from pathlib import PurePosixPath

import pytest
import torch

from avdf.errors import InputError
from avdf.models import (
    ModelOutput,
    bimodal_attention,
    create_block,
    create_model,
    list_models,
    load_checkpoint,
    masked_softmax,
    save_checkpoint,
)
from avdf.timebase import MediaSpec
from avdf.types import MODALITIES

SPEC = MediaSpec(face_size=32, mouth_size=24)  # small crops: same code paths, 4x less work
# Every registered architecture; an ensemble combines trained models (tests/test_ensemble.py).
ARCHITECTURES = [name for name in list_models() if name != "ensemble"]
SUBSETS = [
    tuple(c) for r in (1, 2, 3) for c in itertools.combinations(MODALITIES, r)
]  # all 7 non-empty subsets
# Small sizes keep every test fast on a shared 2-core CPU; the architecture is unchanged.
SMALL = {"block_dim": 16, "block_width": 8, "gru_hidden": 16, "context_dim": 12, "fusion_dim": 16}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The models here are tiny; on a shared 2-core machine one thread is faster than two
    threads fighting other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_inputs(b: int, t: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "audio": torch.randn(b, t, SPEC.mel_frames_per_step, SPEC.n_mels, generator=g) * 3 - 5,
        "face": torch.rand(b, t, 3, SPEC.face_size, SPEC.face_size, generator=g),
        "lips": torch.rand(b, t, 3, SPEC.mouth_size, SPEC.mouth_size, generator=g),
        "step_mask": torch.ones(b, t, dtype=torch.bool),
        "presence": torch.ones(b, t, 3, dtype=torch.bool),
    }


def build(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    small = {} if name.endswith("_paper") else SMALL
    return create_model(name, **{**small, "spec": SPEC, **kwargs})


def as_tensors(out: ModelOutput) -> dict[str, torch.Tensor]:
    """Every floating-point tensor of the output, levels included."""
    tensors = {k: getattr(out, k) for k in ModelOutput.__dataclass_fields__}
    for i, level in enumerate(tensors.pop("levels")):
        tensors[f"level{i}_logits"] = level.logits
        tensors[f"level{i}_boundaries"] = level.boundaries
    return {
        k: v for k, v in tensors.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
    }


def test_registry_has_the_paper_variants() -> None:
    assert {"mmms_ba", "mmms_ba_paper", "mmus_sa", "ms_sa", "none"} <= set(list_models())
    with pytest.raises(KeyError, match="unknown model"):
        create_model("no_such_model")


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_model_describes_itself(name: str) -> None:
    model = build(name)
    assert model.model_name == name
    kwargs = json.loads(json.dumps(model.model_kwargs))  # JSON round trip
    assert kwargs["spec"] == SPEC.to_dict()
    again = create_model(name, **kwargs)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in again.state_dict().items()} == shapes
    assert again.model_kwargs == model.model_kwargs


def test_paper_variant_uses_paper_sizes() -> None:
    model = create_model("mmms_ba_paper")
    gru = model.encoders["audio"].gru
    assert gru.hidden_size == 300 and gru.bidirectional
    assert model.encoders["audio"].dense.out_features == 100
    assert model.fusion.out_dim == 900  # 9d for d = 100, as in the paper


@pytest.mark.parametrize("modalities", SUBSETS, ids="+".join)
@pytest.mark.parametrize("name", ARCHITECTURES)
def test_output_shapes(name: str, modalities: tuple[str, ...]) -> None:
    model = build(name, modalities=modalities).eval()
    inputs = make_inputs(2, 7)
    for m in MODALITIES:  # the model must not need the modalities it was not built for
        if m not in modalities:
            inputs[m] = None
    out = model(**inputs)
    assert isinstance(out, ModelOutput)
    assert out.fake_logits.shape == (2, 7)
    level_logits, level_boundaries = out.level_steps()
    assert level_logits.shape[:2] == (2, 7) and level_boundaries.shape[:2] == (2, 7)
    assert level_boundaries.shape[-1] == 2
    assert out.audio_fake_logits.shape == out.visual_fake_logits.shape == (2, 7)
    assert out.video_logit.shape == (2,)
    assert all(bool((level.boundaries >= 0).all()) for level in out.levels)
    assert all(torch.isfinite(v).all() for v in as_tensors(out).values())
    # Same output type in training mode.
    assert isinstance(model.train()(**inputs), ModelOutput)


@pytest.mark.parametrize(
    ("modalities", "expected"),
    [(MODALITIES, 9), (("audio", "face"), 4), (("face", "lips"), 4), (("lips",), 1)],
)
def test_mmms_ba_fusion_width(modalities: tuple[str, ...], expected: int) -> None:
    model = build("mmms_ba", modalities=modalities)
    assert model.fusion.out_dim == expected * SMALL["context_dim"]


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_padding_never_changes_real_steps(name: str) -> None:
    model = build(name).eval()
    short = make_inputs(2, 20, seed=1)
    short["step_mask"][1, 13:] = False  # second window already shorter
    short["presence"][1, 13:] = False
    padded = make_inputs(2, 32, seed=2)  # garbage in the padding
    for key in ("audio", "face", "lips", "presence"):
        padded[key][:, :20] = short[key]
    padded["step_mask"][:, 20:] = False
    padded["step_mask"][1, 13:] = False
    with torch.no_grad():
        a, b = as_tensors(model(**short)), as_tensors(model(**padded))
    for key in a:
        if key == "video_logit":
            torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5)
        else:
            n = a[key].shape[1]  # level tensors have ceil(T / stride) cells
            torch.testing.assert_close(a[key][0], b[key][0, :n], rtol=1e-5, atol=1e-5)
            m = -(-13 * n // 20)  # cells holding the 13 real steps of row 1
            torch.testing.assert_close(a[key][1, :m], b[key][1, :m], rtol=1e-5, atol=1e-5)


def test_gru_is_packed_padding_would_otherwise_leak() -> None:
    """Guard the guard: without masking, different padding content must change outputs,
    otherwise the padding test above could not fail."""
    model = build("mmms_ba").eval()
    a, b = make_inputs(1, 24, seed=3), make_inputs(1, 24, seed=4)
    for key in ("audio", "face", "lips"):
        b[key][:, :16] = a[key][:, :16]
    with torch.no_grad():
        differs = not torch.allclose(model(**a).fake_logits[:, :16], model(**b).fake_logits[:, :16])
    assert differs  # unmasked, the later steps influence earlier ones (bidirectional GRU)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_absent_modality_values_are_never_read(name: str) -> None:
    model = build(name).eval()
    zeros = make_inputs(2, 12, seed=5)
    zeros["presence"][0, :, 0] = False  # no audio track in sample 0
    zeros["presence"][1, 4:9, 1:] = False  # face (and lips) lost for a while in sample 1
    zeros["audio"][0] = 0.0
    zeros["face"][1, 4:9] = 0.0
    zeros["lips"][1, 4:9] = 0.0
    noisy = {k: v.clone() for k, v in zeros.items()}
    noisy["audio"][0] = torch.randn_like(noisy["audio"][0]) * 100
    noisy["face"][1, 4:9] = torch.rand_like(noisy["face"][1, 4:9])
    noisy["lips"][1, 4:9] = torch.full_like(noisy["lips"][1, 4:9], float("nan"))
    with torch.no_grad():
        a, b = as_tensors(model(**zeros)), as_tensors(model(**noisy))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_all_absent_modality_gives_no_nan(name: str) -> None:
    model = build(name)
    inputs = make_inputs(2, 9)
    inputs["presence"][..., 0] = False  # no audio anywhere in the batch
    inputs["presence"][1, :, 1:] = False  # sample 1 has nothing at all
    for mode in (model.eval(), model.train()):
        out = as_tensors(mode(**inputs))
        assert all(torch.isfinite(v).all() for v in out.values())


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_gradient_reaches_every_parameter(name: str) -> None:
    model = build(name, modality_dropout=0.0).train()
    out = model(**make_inputs(2, 8, seed=6))
    loss = sum(v.float().sum() for v in as_tensors(out).values())
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert bool((p.grad != 0).any()), pname


def test_modality_dropout_keeps_one_available_modality() -> None:
    model = build("mmms_ba", modality_dropout=0.9).train()
    torch.manual_seed(7)
    present = torch.rand(64, 10, 3) > 0.3
    present[0] = False  # nothing available: stays empty
    present[1, :, :2] = False  # only lips available: lips must survive
    dropped = model._drop_modalities(present)
    assert bool((dropped <= present).all())  # never adds a modality
    had, has = present.any(dim=1).any(dim=1), dropped.any(dim=1).any(dim=1)
    assert bool((had == has).all())
    assert bool(dropped[1, :, 2].equal(present[1, :, 2]))
    # Whole modalities go per sample: a kept modality keeps all its steps.
    kept = dropped.any(dim=1)  # (B, M)
    assert bool((dropped == present & kept.unsqueeze(1)).all())
    assert int((present.any(dim=1) & ~kept).sum()) > 0  # p = 0.9 does drop something


def test_bimodal_attention_matches_direct_einsum() -> None:
    g = torch.Generator().manual_seed(8)
    x, y = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    xv = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 1, 0]], dtype=torch.bool)
    yv = torch.tensor([[1, 0, 1, 1, 1], [0, 0, 0, 0, 0]], dtype=torch.bool)

    def direction(q, k, qv, kv):
        out = torch.zeros_like(q)
        for b in range(q.shape[0]):
            keys = k[b][kv[b]]  # (Tk_valid, d)
            if len(keys) == 0:
                continue
            weights = torch.softmax(torch.einsum("td,sd->ts", q[b], keys), dim=-1)
            attended = torch.einsum("ts,sd->td", weights, keys)
            out[b] = attended * q[b] * qv[b, :, None]
        return out

    expected = torch.cat([direction(x, y, xv, yv), direction(y, x, yv, xv)], dim=-1)
    got = bimodal_attention(x, y, xv, yv)
    assert got.shape == (2, 5, 6)
    torch.testing.assert_close(got, expected)
    assert bool((got[1, :, :3] == 0).all())  # no valid key at all -> zeros, not NaN


def test_masked_softmax_ignores_masked_keys() -> None:
    scores = torch.tensor([[[1.0, 50.0, 2.0]]])
    w = masked_softmax(scores, torch.tensor([[True, False, True]]))
    torch.testing.assert_close(w, torch.softmax(torch.tensor([[[1.0, -1e9, 2.0]]]), dim=-1))


def test_step_mask_must_be_a_prefix() -> None:
    model = build("none").eval()
    inputs = make_inputs(1, 6)
    inputs["step_mask"][0, 2] = False
    with pytest.raises(ValueError, match="prefix"):
        model(**inputs)


def test_input_shapes_are_checked_against_spec() -> None:
    model = build("mmms_ba").eval()
    inputs = make_inputs(1, 4)
    inputs["face"] = torch.rand(1, 4, 3, 40, 40)
    with pytest.raises(ValueError, match="face input"):
        model(**inputs)


@pytest.mark.parametrize("name", ["mmms_ba", "ms_sa"])
def test_checkpoint_round_trip(tmp_path, name: str) -> None:
    model = build(name, modalities=("audio", "lips"))
    model.train()(**make_inputs(2, 6))  # move BatchNorm running stats off their init
    model.eval()
    path = save_checkpoint(tmp_path / "m.pt", model, SPEC, {"epoch": 3, "note": "test"})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == 1 and raw["model_name"] == name
    loaded, spec, info = load_checkpoint(path)
    assert spec == SPEC and info["format"] == "avdf" and info["extra"]["epoch"] == 3
    assert not loaded.training
    inputs = make_inputs(2, 10, seed=9)
    with torch.no_grad():
        a, b = as_tensors(model(**inputs)), as_tensors(loaded(**inputs))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_lightning_checkpoint_with_prefixed_keys(tmp_path) -> None:
    model = build("mmus_sa").eval()
    ckpt = {
        "epoch": 2,
        "global_step": 40,
        "pytorch-lightning_version": "2.6.0",
        "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}
        | {"frame_auroc.thresholds": torch.linspace(0, 1, 5)},  # non-model state is ignored
        "hyper_parameters": {
            "model_name": model.model_name,
            "model_kwargs": model.model_kwargs,
            "media_spec": SPEC.to_dict(),
            "optim": {"lr": 1e-3},
        },
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3}]}],
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    loaded, spec, info = load_checkpoint(path)
    assert info["format"] == "lightning" and info["extra"] == {"epoch": 2, "global_step": 40}
    inputs = make_inputs(1, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).fake_logits, loaded(**inputs).fake_logits)


def test_bad_checkpoints_raise_one_line_input_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="junk.pt"):
        load_checkpoint(junk)

    evil = tmp_path / "evil.pt"  # arbitrary objects must be refused by the weights_only loader
    torch.save({"format_version": 1, "obj": PurePosixPath("x")}, evil)
    with pytest.raises(InputError, match="not a loadable checkpoint"):
        load_checkpoint(evil)


def test_save_refuses_a_mismatched_spec(tmp_path) -> None:
    model = build("none")
    with pytest.raises(ValueError, match="spec"):
        save_checkpoint(tmp_path / "m.pt", model, MediaSpec())
    assert not any(tmp_path.iterdir())


def test_lip_front_end_is_a_temporal_3d_convolution() -> None:
    """The sliced 2-D implementation must equal a Conv3d with kernel 3 in time (zero
    padding at the window edges and at invalid steps), the lip-reading front end."""
    block = create_block("lip_3d", SPEC, out_dim=8, width=4).eval()
    x = torch.rand(2, 6, 3, SPEC.mouth_size, SPEC.mouth_size)
    valid = torch.ones(2, 6, dtype=torch.bool)
    valid[1, 4:] = False  # padding
    valid[1, 1] = False  # a missing face in the middle
    got = block.front_end(x, valid)
    # front.weight (3 time offsets * c_out, 3 colours, 4, 4) -> Conv3d (c_out, 3, 3, 4, 4)
    weight3d = block.front.weight.unflatten(0, (3, 4)).permute(1, 2, 0, 3, 4)
    x_zeroed = x * valid[:, :, None, None, None]
    expected = torch.nn.functional.conv3d(
        x_zeroed.transpose(1, 2), weight3d, stride=(1, 4, 4), padding=(1, 0, 0)
    ).transpose(1, 2)  # (B, T, c_out, M/4, M/4)
    expected = expected * valid[:, :, None, None, None]
    torch.testing.assert_close(got, expected)


def test_banded_scaled_attention_only_sees_nearby_keys() -> None:
    """With band k, a query's output depends on keys within k steps only, and the scores
    are divided by sqrt(d); band=None, unscaled is the paper's form above."""
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(1, 12, 4, generator=g), torch.randn(1, 12, 4, generator=g)
    valid = torch.ones(1, 12, dtype=torch.bool)
    base = bimodal_attention(x, y, valid, valid, scaled=True, band=2)
    far = y.clone()
    far[0, 9:] += 5.0  # keys 9..11 are more than 2 steps from queries 0..6
    moved = bimodal_attention(x, far, valid, valid, scaled=True, band=2)
    torch.testing.assert_close(moved[0, :7, :4], base[0, :7, :4], rtol=0, atol=0)
    assert not torch.allclose(moved[0, 7:, :4], base[0, 7:, :4])
    # Query 0 with band 2: softmax over keys 0..2 of x·y / sqrt(4), gated by x.
    w = torch.softmax(x[0, 0] @ y[0, :3].T / 2.0, dim=-1)
    torch.testing.assert_close(base[0, 0, :4], (w @ y[0, :3]) * x[0, 0])


def test_face_3d_block_sees_motion_face_cnn_does_not() -> None:
    """Frozen frames look like any other frame to a per-frame block; the default face
    block's time taps make a step's features depend on its neighbours."""
    x = torch.rand(1, 5, 3, SPEC.face_size, SPEC.face_size)
    frozen = x.clone()
    frozen[0, 1] = frozen[0, 2]  # step 1 repeats step 2: step 2's own frame is unchanged
    valid = torch.ones(1, 5, dtype=torch.bool)
    for name, sees_motion in (("face_cnn", False), ("face_3d", True)):
        torch.manual_seed(0)
        block = create_block(name, SPEC, out_dim=8, width=4).eval()
        with torch.no_grad():
            changed = not torch.equal(block(x, valid)[0, 2], block(frozen, valid)[0, 2])
        assert changed == sees_motion, name


def test_checkpoint_from_before_the_new_options_loads_in_paper_form(tmp_path) -> None:
    """A checkpoint whose kwargs predate temporal contrast, the sync stream and scaled /
    banded attention must load as it was built, not with today's defaults."""
    paper_form = {
        "temporal_contrast": False,
        "sync_dim": 0,
        "attention_scale": False,
        "attention_band": None,
    }
    model = build("mmms_ba", face_block="face_cnn", **paper_form).eval()
    path = save_checkpoint(tmp_path / "old.pt", model, SPEC)
    raw = torch.load(path, weights_only=True)
    for key in paper_form:
        del raw["model_kwargs"][key]
    torch.save(raw, path)
    loaded, _, info = load_checkpoint(path)
    assert {k: info["model_kwargs"][k] for k in paper_form} == paper_form
    inputs = make_inputs(1, 10, seed=4)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).fake_logits, loaded(**inputs).fake_logits)


def test_sync_profile_is_zero_where_a_modality_is_missing() -> None:
    model = build("mmms_ba").eval()
    assert model.sync is not None and build("mmms_ba_paper").sync is None
    assert build("mmms_ba", modalities=("face", "lips")).sync is None
    inputs = make_inputs(1, 8)
    inputs["presence"][0, 5:, MODALITIES.index("lips")] = False
    with torch.no_grad():
        out = model(**inputs)
    assert bool((out.sync_lips[0, 5:] == 0).all()) and bool((out.sync_audio[0, 5:] != 0).any())
    torch.testing.assert_close(out.sync_lips[0, :5].norm(dim=-1), torch.ones(5))


# --- expert streams ----------------------------------------------------------------------
def with_speaker(inputs: dict[str, torch.Tensor], seed: int = 9) -> dict:
    b, t = inputs["step_mask"].shape
    g = torch.Generator().manual_seed(seed)
    return {**inputs, "experts": {"speaker": torch.rand(b, t, 4, generator=g)}}


def test_speaker_stream_reaches_the_model_and_padding_never_changes_real_steps() -> None:
    model = build("mmms_ba", experts=["speaker"]).eval()
    assert model.model_kwargs["experts"] == ["speaker"]
    short = with_speaker(make_inputs(2, 20, seed=1))
    short["step_mask"][1, 13:] = False
    short["presence"][1, 13:] = False
    padded = with_speaker(make_inputs(2, 32, seed=2), seed=10)  # garbage in the padding
    for key in ("audio", "face", "lips", "presence"):
        padded[key][:, :20] = short[key]
    padded["experts"]["speaker"][:, :20] = short["experts"]["speaker"]
    padded["step_mask"][:, 20:] = False
    padded["step_mask"][1, 13:] = False
    with torch.no_grad():
        a, b = as_tensors(model(**short)), as_tensors(model(**padded))
        other = with_speaker(make_inputs(2, 20, seed=1), seed=11)
        other["step_mask"], other["presence"] = short["step_mask"], short["presence"]
        changed = model(**other).fake_logits
    torch.testing.assert_close(a["fake_logits"][0], b["fake_logits"][0, :20])
    torch.testing.assert_close(a["fake_logits"][1, :13], b["fake_logits"][1, :13])
    torch.testing.assert_close(a["video_logit"], b["video_logit"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(changed[0], a["fake_logits"][0])  # the stream is read
    with pytest.raises(ValueError, match="speaker"):
        model(**make_inputs(1, 8))


def test_speaker_stream_is_not_read_where_the_audio_is_absent() -> None:
    model = build("mmms_ba", experts=["speaker"]).eval()
    inputs = with_speaker(make_inputs(1, 12))
    inputs["presence"][0, 3:7, 0] = False
    noisy = {**inputs, "experts": {"speaker": inputs["experts"]["speaker"].clone()}}
    noisy["experts"]["speaker"][0, 3:7] = 1e3
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).fake_logits, model(**noisy).fake_logits)


def test_checkpoints_record_experts_and_older_ones_load_without(tmp_path) -> None:
    model = build("mmms_ba", experts=["speaker"]).eval()
    loaded, _, info = load_checkpoint(save_checkpoint(tmp_path / "s.pt", model, SPEC))
    assert loaded.experts == ("speaker",) and info["model_kwargs"]["experts"] == ["speaker"]
    inputs = with_speaker(make_inputs(1, 10))
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).fake_logits, loaded(**inputs).fake_logits)
    plain = build("mmms_ba").eval()
    path = save_checkpoint(tmp_path / "old.pt", plain, SPEC)
    raw = torch.load(path, weights_only=True)
    del raw["model_kwargs"]["experts"]
    torch.save(raw, path)
    assert load_checkpoint(path)[0].experts == ()


def test_residual_face_block_sees_texture_that_colour_means_hide() -> None:
    """face_3d_residual adds the crop minus its blur: fine noise with the same local means
    (what separates a rendered face from a camera one) moves its first layer's input, and a
    flat crop gives a zero residual."""
    torch.manual_seed(0)
    block = create_block("face_3d_residual", SPEC, out_dim=8, width=4).eval()
    flat = torch.full((1, 3, SPEC.face_size, SPEC.face_size), 0.5)
    channels = block.input_channels(flat)
    assert channels.shape[1] == 6
    torch.testing.assert_close(channels[:, 3:], torch.zeros_like(channels[:, 3:]))
    checker = (torch.arange(SPEC.face_size)[:, None] + torch.arange(SPEC.face_size)) % 2
    noisy = flat + 0.02 * (2 * checker - 1)  # +-5 grey levels around the same mean
    assert block.input_channels(noisy)[:, 3:].abs().mean() > 0.05
    x = torch.rand(2, 4, 3, SPEC.face_size, SPEC.face_size)
    valid = torch.ones(2, 4, dtype=torch.bool)
    valid[1, 3] = False
    out = block(x, valid)
    assert out.shape == (2, 4, 8) and torch.equal(out[1, 3], torch.zeros(8))
