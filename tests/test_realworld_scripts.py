"""The real-world scripts end to end on a tiny labelled folder cut from the bundled clips:
re-encoding chain, metadata baseline, evaluation with the bundled checkpoint, training
manifest."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import av
import media_fixtures as fx
import numpy as np
import pytest

from avdf.datasets import load_dataset
from avdf.datasets import realworld as rw
from avdf.errors import InputError
from avdf.metrics.detection import roc_auc

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import reencode_corpus  # noqa: E402
from realworld_folder import make_realworld_folder  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_realworld_folder(tmp_path_factory.mktemp("rw_src"))


@pytest.fixture(scope="module")
def reencoded(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rw_out") / "reencoded"
    assert reencode_corpus.main([str(folder), str(out), "--real-copies", "2"]) == 0
    return out


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True
    )


def test_chain_is_seeded_and_in_range() -> None:
    chains = [reencode_corpus.draw_chain(0, f"clip{i}") for i in range(200)]
    assert chains[0] == reencode_corpus.draw_chain(0, "clip0")
    assert chains[0] != reencode_corpus.draw_chain(1, "clip0")
    assert {c.codec for c in chains} == set(reencode_corpus.CODECS)
    assert {c.fps for c in chains} == set(reencode_corpus.FPS_CHOICES)
    assert all(240 <= c.height <= 480 and c.height % 2 == 0 for c in chains)
    assert any(any(c.pad) for c in chains) and any(not any(c.pad) for c in chains)


def test_reencoded_folder_follows_its_chain(folder: Path, reencoded: Path) -> None:
    samples = load_dataset("realworld", reencoded)
    # Two copies of each real; every clip named in labels.tsv exists.
    assert sorted(s.id for s in samples) == ["a", "b", "c", "d", "d~1", "e", "e~1"]
    for sample in samples:
        chain = reencode_corpus.draw_chain(0, Path(sample.path).name)
        assert sample.extra["chain"].startswith(f"{chain.codec} h{chain.height} {chain.fps}fps")
        with av.open(sample.path) as container:
            video = container.streams.video[0]
            assert video.codec_context.height == chain.height
            assert video.codec_context.width % 2 == 0
            assert float(video.average_rate) == chain.fps
            assert bool(container.streams.audio) == (sample.extra["has_audio"] is True)
        assert sample.duration == pytest.approx(1.2, abs=0.1)
    # No-audio shares equal across classes: 1 of 4 reals lacks audio, so 1 of 3 fakes too
    # (round(0.5 * 3) = 2 counting the copies: d and d~1 have none).
    shares = {
        label: np.mean([not s.extra["has_audio"] for s in samples if s.label == label])
        for label in (0, 1)
    }
    assert shares[0] == pytest.approx(0.5) and shares[1] == pytest.approx(2 / 3)
    # Copies of one real stay together in splits and folds.
    by_id = {s.id: s for s in samples}
    assert by_id["d"].split == by_id["d~1"].split and by_id["e"].split == by_id["e~1"].split
    for fold in rw.logo_folds(samples):
        ids = {s.id for s in fold.test}
        assert ("d" in ids) == ("d~1" in ids) and ("e" in ids) == ("e~1" in ids)


def test_rerun_is_idempotent(folder: Path, reencoded: Path) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in reencoded.iterdir()}
    result = run("reencode_corpus.py", str(folder), str(reencoded), "--real-copies", "2")
    assert result.returncode == 0, result.stderr
    assert "0 written, 7 unchanged" in result.stdout
    after = {p.name: p.stat().st_mtime_ns for p in reencoded.iterdir() if p.suffix == ".mp4"}
    assert all(after[name] == before[name] for name in after)
    assert not [p for p in reencoded.iterdir() if p.name.endswith(".tmp")]


def test_framing_window_by_hand() -> None:
    face = reencode_corpus.FaceBox(cx=100, cy=100, height=80, frame_width=200, frame_height=200)
    chain = reencode_corpus.draw_chain(0, "x")

    def window(share: float, **where: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        box = reencode_corpus.FaceBox(**{**face.__dict__, **where})
        out = reencode_corpus.framed(
            reencode_corpus.Chain(**{**chain.__dict__, "face_share": share}), box
        )
        return tuple(round(c, 6) for c in out.crop), tuple(round(p, 6) for p in out.pad)

    # Face 80 px, share 0.2: a 400 px window, the 200 px frame padded 100 px on every side.
    assert window(0.2) == ((0, 0, 0, 0), (0.5, 0.5, 0.5, 0.5))
    # Share 0.8: a 100 px window around the face, cropped 50 px from every side.
    assert window(0.8) == ((0.25, 0.25, 0.25, 0.25), (0, 0, 0, 0))
    # Near the left edge the window slides inside the frame rather than pad.
    assert window(0.8, cx=20) == ((0, 0.25, 0.5, 0.25), (0, 0, 0, 0))
    # Share 0.25 with the face high in the frame: a 320 px window from -100 to 220 px down.
    assert window(0.25, cy=60) == ((0, 0, 0, 0), (0.3, 0.5, 0.3, 0.1))


def test_frame_face_gives_the_drawn_face_share(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "framed"
    assert reencode_corpus.main([str(folder), str(out), "--frame-face", "--limit", "3"]) == 0
    samples = load_dataset("realworld", out)
    assert len(samples) == 3
    shares = []
    for sample in samples:
        drawn = re.search(r" face([0-9.]+) ", sample.extra["chain"])
        assert drawn is not None, sample.extra["chain"]
        face = reencode_corpus.find_face(Path(sample.path))
        assert face is not None
        shares.append((face.height / face.frame_height, float(drawn[1])))
    # The fixture's clips are tight 160 px face crops (share ~0.6); after framing each face
    # fills the drawn share of its frame.
    for measured, drawn in shares:
        assert measured == pytest.approx(drawn, rel=0.15)


def test_face_shares_are_spread_alike_in_every_class() -> None:
    # 73 fakes and 87 reals, as realworld-train re-encoded: independent uniform draws gave the
    # fakes smaller faces by chance (face-share AUC 0.38); the stratified shares may not.
    chain = reencode_corpus.draw_chain(0, "x")
    jobs = [
        reencode_corpus.Job(f"c{i}.mp4", Path("x"), {"label": "fake" if i < 73 else "real"}, chain)
        for i in range(160)
    ]
    shares = np.array(reencode_corpus.stratified_face_shares(jobs, seed=0))
    assert shares.tolist() == reencode_corpus.stratified_face_shares(jobs, seed=0)
    assert shares.tolist() != reencode_corpus.stratified_face_shares(jobs, seed=1)
    low, high = reencode_corpus.FACE_SHARE_RANGE
    assert low < shares.min() and shares.max() < high
    is_fake = np.arange(160) < 73
    assert abs(shares[is_fake].mean() - shares[~is_fake].mean()) < 1e-9
    assert abs(roc_auc(shares, is_fake.astype(float)) - 0.5) < 0.02
    assert not np.all(np.diff(shares[is_fake]) > 0)  # in a random order, not sorted by file


def test_reencode_refuses_bad_labels(tmp_path: Path) -> None:
    (tmp_path / "labels.tsv").write_text("file\tlabel\tkind\tgenerator\nx.mp4\tfake\tk\tG\n")
    result = run("reencode_corpus.py", str(tmp_path), str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no video 'x.mp4'" in result.stderr


def test_metadata_baseline_prints_a_table(folder: Path, reencoded: Path) -> None:
    result = run("metadata_baseline.py", str(folder), str(reencoded), "--resamples", "50")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| set | clips (fake/real) | LOGO AUC")
    assert f"| {folder} | 5 (3/2) |" in lines[2] and f"| {reencoded} | 7 (3/4) |" in lines[3]
    assert any(line.startswith("| log_face_px |") for line in lines)


def test_realworld_table_averages_runs_and_their_ensemble(folder: Path, tmp_path: Path) -> None:
    import eval_realworld

    samples = load_dataset("realworld", folder, split_by="none")
    # Fakes a, b, c; reals d, e. Run 1 ranks 4 of 6 fake-real pairs right, run 2 5 of 6; their
    # mean scores (a .55, b .85, c .5 against d .4, e .25) rank all 6 right.
    runs = [
        {"a": 0.9, "b": 0.8, "c": 0.1, "d": 0.5, "e": 0.4},
        {"a": 0.2, "b": 0.9, "c": 0.9, "d": 0.3, "e": 0.1},
    ]
    files = []
    for i, scores in enumerate(runs):
        file = tmp_path / f"run{i}.json"
        entry = {
            "folder": str(folder),
            "fakes": 3,
            "auc": eval_realworld.auc_or_none(samples, scores),
            "per_kind": eval_realworld.group_table(samples, scores, "kind"),
            "per_generator": eval_realworld.group_table(samples, scores, "generator"),
            "scores": scores,
        }
        file.write_text(json.dumps(entry))
        files.append(str(file))
    result = run("realworld_table.py", "r=" + ",".join(files), "--ensemble")
    assert result.returncode == 0, result.stderr
    assert "| r (2 runs) | r, ensemble |" in result.stdout
    assert "| all clips | 3 | 0.75 ± 0.08 | 1.00 ± 0.00 |" in result.stdout
    # Wav2Lip's one fake (b) is above both reals in each run and in the ensemble.
    assert "| generator: Wav2Lip | 1 | 1.00 ± 0.00 | 1.00 ± 0.00 |" in result.stdout


def test_eval_realworld_with_the_bundled_checkpoint(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.json"
    args = [str(folder), "--cache", str(tmp_path / "cache"), "--robustness", "2"]
    result = run(
        "eval_realworld.py", *args, "--robust-dir", str(tmp_path / "r"), "--json", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "5/5 clips scored (3 fake)" in result.stdout
    assert "| lip-sync | 1 |" in result.stdout and "| Wav2Lip | 1 |" in result.stdout
    numbers = json.loads(out.read_text())
    assert set(numbers["scores"]) == {"a", "b", "c", "d", "e"}
    assert 0.0 <= numbers["auc"] <= 1.0
    assert numbers["robustness"]["clips"] == 2
    assert 0.0 <= numbers["robustness"]["mean_abs_change"] <= 1.0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 5
    # Second run: every feature from the cache, same scores.
    again = run("eval_realworld.py", str(folder), "--cache", str(tmp_path / "cache"))
    assert again.returncode == 0 and f"video AUC: {numbers['auc']:.3f}" in again.stdout
    # --video-pool 1: each clip's raw score is its mean step probability, then calibrated.
    pooled = tmp_path / "pooled.json"
    args = [str(folder), "--cache", str(tmp_path / "cache"), "--video-pool", "1"]
    assert run("eval_realworld.py", *args, "--json", str(pooled)).returncode == 0
    from avdf.evaluation.dataset import iter_sample_steps
    from avdf.inference.detector import Detector

    detector = Detector.from_checkpoint(None)
    samples = load_dataset("realworld", folder, split_by="none")
    scores = json.loads(pooled.read_text())["scores"]
    for sample, steps, _ in iter_sample_steps(detector, samples, tmp_path / "cache"):
        expected = detector.calibration.calibrate(float(steps.fake_prob.mean()))
        assert scores[sample.id] == pytest.approx(expected, abs=1e-6)
    bad = run("eval_realworld.py", *args[:-1], "most")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1


def test_manifest_balances_the_real_world_part_and_keeps_synth_train_dev(
    reencoded: Path, tmp_path: Path
) -> None:
    from avdf.training.config import load_config
    from avdf.types import Sample, read_manifest, write_manifest

    clip = str(fx.talking("talking-face_pc-avs_00067.mp4"))
    fold = tmp_path / "fold0.jsonl"
    write_manifest(
        [Sample(f"{split}/{i}", "lavdf", split, clip, 1.0, label=i % 2)
         for split in ("train", "dev", "test") for i in range(3)],
        str(fold),
    )  # fmt: skip
    out = tmp_path / "mix.jsonl"
    args = [str(out), "--realworld", str(reencoded), "--synth-manifest", str(fold)]
    result = run("make_realworld_manifest.py", *args, "--synth-limit", "2")
    assert result.returncode == 0, result.stderr
    samples = read_manifest(str(out))
    synthetic = [s for s in samples if s.dataset == "lavdf"]
    assert sorted(s.id for s in synthetic) == ["dev/0", "dev/1", "train/0", "train/1"]
    for split in ("train", "dev"):
        part = [s for s in samples if s.dataset == "realworld" and s.split == split]
        assert sum(s.label == 1 for s in part) == sum(s.label == 0 for s in part) > 0
    # Two reals and three fakes (+ two copies): a copy goes in dev, nothing else is lost.
    assert {s.id for s in samples if s.dataset == "realworld" and s.label == 1} == {"a", "b", "c"}
    again = run("make_realworld_manifest.py", *args)
    assert again.returncode == 1 and "already exists" in again.stderr
    # eval_realworld.py scores a manifest's real-world clips of one split (default: test).
    import eval_realworld

    dev = [s.id for s in samples if s.dataset == "realworld" and s.split == "dev"]
    assert [s.id for s in eval_realworld.load_samples(out, "dev")] == dev
    with pytest.raises(InputError, match="no real-world clips in its test split"):
        eval_realworld.load_samples(out)
    # The training config reads such a manifest (a typo in it would fail here).
    config = load_config(SCRIPTS.parent / "configs" / "realworld_mmms_ba.yaml")
    assert config.data.manifest and config.data.val_split == "dev"


def test_manifest_leaves_out_synthetic_videos_of_people_outside_train(
    reencoded: Path, tmp_path: Path
) -> None:
    """An extra-people corpus cut from realworld-train's clips must not show training a
    person of the dev split (session 21 found 53 such videos in a manifest)."""
    from avdf.types import Sample, read_manifest, write_manifest

    clip = str(fx.talking("talking-face_pc-avs_00067.mp4"))
    synthetic = [
        Sample(f"extra/train/{name}", "lavdf", "train", clip, 1.0, label=1,
               extra={"source": f"talking/{name}", "speaker": name, "edits": []})
        for name in ("a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4")
    ]  # fmt: skip
    # Cut from a clip of another corpus, but its mouth borrowed from a.mp4 (FLOAT: dev).
    donor_edit = {"visual": {"donor": "talking/a.mp4"}, "audio": None}
    synthetic.append(Sample("extra/train/donor", "lavdf", "train", clip, 1.0, label=1,
                            extra={"source": "talking/other.mp4", "edits": [donor_edit]}))  # fmt: skip
    fold = tmp_path / "fold0.jsonl"
    write_manifest(synthetic, str(fold))
    out = tmp_path / "mix.jsonl"
    result = run("make_realworld_manifest.py", str(out), "--realworld", str(reencoded),
                 "--synth-manifest", str(fold))  # fmt: skip
    assert result.returncode == 0, result.stderr
    samples = read_manifest(str(out))
    held = {rw.source_file(s) for s in samples if s.dataset == "realworld" and s.split != "train"}
    trained = {
        rw.source_file(s) for s in samples if s.dataset == "realworld" and s.split == "train"
    }
    assert "a.mp4" in held and held.isdisjoint(trained)
    kept = {s.id for s in samples if s.dataset == "lavdf"}
    expected = {f"extra/train/{name}" for name in trained}
    assert kept == expected and len(kept) >= 2
    left_out = len(synthetic) - len(kept)
    assert f"left out {left_out} synthetic videos" in result.stdout


def test_hold_out_manifests_partition_generators_and_pool_into_one_auc(
    reencoded: Path, tmp_path: Path
) -> None:
    from avdf.types import read_manifest

    files, held = [], []
    for k in range(2):
        out = tmp_path / f"hold{k}.jsonl"
        result = run(
            "make_realworld_manifest.py",
            str(out),
            "--realworld",
            str(reencoded),
            "--hold-out",
            f"{k}/2",
        )
        assert result.returncode == 0, result.stderr
        samples = read_manifest(str(out))
        test = [s for s in samples if s.split == "test"]
        trained = [s for s in samples if s.split != "test"]
        # Families FLOAT, Loopy, Wav2Lip dealt into 2 groups; one real source per group, once.
        assert {s.id for s in test if s.label == 1} == [{"a", "b"}, {"c"}][k]
        assert len([s for s in test if s.label == 0]) == 1
        sources = {s.id.split("~")[0] for s in test}
        assert not sources & {s.id.split("~")[0] for s in trained}
        assert any(s.label == 1 for s in trained) and any(s.label == 0 for s in trained)
        held += [s.id for s in test]
        # Fold 0 ranks its fakes above its real; fold 1 ranks its fake below its real.
        scores = {s.id: (0.9 if s.label else 0.2) if k == 0 else (0.3 if s.label else 0.6)
                  for s in test}  # fmt: skip
        file = tmp_path / f"hold{k}.json"
        file.write_text(json.dumps({"folder": str(out), "fakes": 0, "auc": None,
                                    "per_kind": [], "per_generator": [], "scores": scores}))  # fmt: skip
        files.append(str(file))
    assert sorted(held) == ["a", "b", "c", "d", "e"]  # every clip tested once, by one copy
    result = run("realworld_table.py", "logo=" + ",".join(files), "--pool")
    assert result.returncode == 0, result.stderr
    # Pooled: fakes .9 .9 .3 against reals .2 .6 -> 5 of 6 pairs right (only .3 < .6); each
    # fold alone would be 1.0 and 0.0.
    assert "| all clips | 3 | 0.83 ± 0.00 |" in result.stdout
    assert "| generator: Loopy | 1 | 0.50 ± 0.00 |" in result.stdout
    bad = run("make_realworld_manifest.py", str(tmp_path / "x.jsonl"), "--realworld",
              str(reencoded), "--hold-out", "2/2")  # fmt: skip
    assert bad.returncode == 1 and "--hold-out" in bad.stderr


def test_manifest_refuses_the_measuring_set(tmp_path: Path) -> None:
    measuring = tmp_path / "realworld-dev"
    measuring.mkdir()
    result = run(
        "make_realworld_manifest.py", str(tmp_path / "m.jsonl"), "--realworld", str(measuring)
    )
    assert result.returncode == 1 and "for measuring only" in result.stderr


def test_probe_script_with_the_bundled_checkpoint(folder: Path, tmp_path: Path) -> None:
    from avdf.inference.detector import bundled_checkpoint_path

    out = tmp_path / "probe.json"
    args = ["--checkpoint", str(bundled_checkpoint_path()), "--train", str(folder)]
    args += ["--cache", str(tmp_path / "cache"), "--test", str(folder)]
    result = run("probe_realworld.py", *args, "--test-cache", str(tmp_path / "cache"),
                 "--json", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| probe, ridge 1 |" in result.stdout and "| model's video head |" in result.stdout
    numbers = json.loads(out.read_text())
    assert set(numbers["logo_scores"]) == {"a", "b", "c", "d", "e"}
    assert set(numbers["test_scores"]) == {"a", "b", "c", "d", "e"}
    # The model's own column is its plain video score (what eval_realworld prints).
    plain = run("eval_realworld.py", str(folder), "--cache", str(tmp_path / "cache"),
                "--json", str(tmp_path / "plain.json"))  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    own = json.loads((tmp_path / "plain.json").read_text())["scores"]
    for clip, scores in numbers["test_scores"].items():
        assert scores["video"] == pytest.approx(own[clip], abs=1e-6)
        assert 0.0 <= scores["head"] <= 1.0
    # The blocks' features: same clips, same model scores, other probe features.
    blocks = tmp_path / "blocks.json"
    table_json = tmp_path / "probe_test.json"
    result = run("probe_realworld.py", *args, "--test-cache", str(tmp_path / "cache"),
                 "--features", "blocks", "--json", str(blocks), "--test-json", str(table_json))  # fmt: skip
    assert result.returncode == 0, result.stderr
    other = json.loads(blocks.read_text())
    assert other["features"] == "blocks" and set(other["test_scores"]) == set(own)
    for clip, scores in other["test_scores"].items():
        assert scores["video"] == pytest.approx(numbers["test_scores"][clip]["video"], abs=1e-6)
    # --test-json is what realworld_table.py averages: the probe's scores, per kind too.
    table = run("realworld_table.py", f"probe={table_json}")
    assert table.returncode == 0, table.stderr
    auc = roc_auc([other["test_scores"][c]["probe"] for c in "abcde"], [1, 1, 1, 0, 0])
    assert f"| all clips | 3 | {auc:.2f} ± 0.00 |" in table.stdout
    bad = run("probe_realworld.py", *args)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1
