"""``avdf preprocess`` end to end on small real files, good and bad mixed."""

from __future__ import annotations

import shutil

import media_fixtures as fx
import pytest

from avdf.cli import main
from avdf.cli.preprocess import collect_jobs, parse_shard
from avdf.preprocess.cache import CacheReader, cache_path_for
from avdf.types import Sample, write_manifest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    fx.short_clip(root / "good" / "a.mp4", seconds=1.0)
    fx.video_only(root / "good" / "sub" / "b.mp4", seconds=1.0)
    fx.no_face(root / "good" / "wall.mp4", seconds=1.0)
    (root / "good" / "notes.txt").write_text("ignored: not a video extension")
    fx.text_as_mp4(root / "bad" / "text.mp4")
    fx.zero_bytes(root / "bad" / "zero.mp4")
    return root


def test_folder_with_bad_files(corpus, tmp_path, capsys):
    out = tmp_path / "cache"
    status = main(
        ["preprocess", str(corpus / "good"), str(corpus / "bad"), "--out", str(out), "--quiet"]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "3 done, 0 skipped, 2 failed" in err
    assert f"failed: {corpus / 'bad' / 'text.mp4'}: not a readable media file" in err
    assert f"failed: {corpus / 'bad' / 'zero.mp4'}: empty file" in err
    assert "no face found" in err and "Traceback" not in err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a.npz", "sub__b.npz", "wall.npz"]
    b = CacheReader(out / "sub__b.npz")
    assert b.n_steps == 25 and not b.read().audio_mask.any()
    assert CacheReader(out / "wall.npz").meta["face_rate"] == 0.0

    # Rerun: finished videos are skipped, files untouched; the bad ones fail again.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    status = main(
        ["preprocess", str(corpus / "good"), str(corpus / "bad"), "--out", str(out), "--quiet"]
    )
    err = capsys.readouterr().err
    assert status == 1 and "0 done, 3 skipped, 2 failed" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    # --force rebuilds; a clean input set exits 0.
    assert main(["preprocess", str(corpus / "good"), "--out", str(out), "--force", "--quiet"]) == 0
    assert "3 done" in capsys.readouterr().err


def test_manifest_ids_and_relative_paths(corpus, tmp_path, capsys):
    folder = tmp_path / "ds"
    (folder / "test").mkdir(parents=True)
    shutil.copy(corpus / "good" / "a.mp4", folder / "test" / "000001.mp4")
    manifest = folder / "manifest.jsonl"
    write_manifest(
        [
            Sample("test/000001", "lavdf", "test", "test/000001.mp4"),
            Sample("test/000002", "lavdf", "test", "test/missing.mp4"),
        ],
        str(manifest),
    )
    out = tmp_path / "cache"
    assert main(["preprocess", str(manifest), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "missing.mp4: file not found" in err
    assert cache_path_for(out, "test/000001").exists()
    assert CacheReader(cache_path_for(out, "test/000001")).meta["video_id"] == "test/000001"


def test_sharding_partitions_the_sorted_inputs(corpus, monkeypatch):
    jobs = collect_jobs([str(corpus / "good"), str(corpus / "bad")])
    assert [j.video_id for j in jobs] == ["a", "sub/b", "text", "wall", "zero"]
    assert parse_shard("1/3", {}) == (1, 3)
    assert parse_shard(None, {}) == (0, 1)
    assert parse_shard(None, {"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)
    assert parse_shard(None, {"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}) == (1, 2)
    assert parse_shard(None, {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "5"}) == (0, 5)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(ValueError):
            parse_shard(bad, {})
    shards = [jobs[k::2] for k in range(2)]
    assert sorted(j.video_id for s in shards for j in s) == [j.video_id for j in jobs]


def test_overlapping_inputs_are_one_job_per_video(corpus, tmp_path):
    # The same folder twice (as overlapping manifests list the same rows): no "~1" copies.
    once = collect_jobs([str(corpus / "good")])
    assert collect_jobs([str(corpus / "good"), str(corpus / "good")]) == once
    # Two different files that share an id still both get a job.
    other = tmp_path / "a.mp4"
    other.write_bytes(b"")
    ids = [j.video_id for j in collect_jobs([str(corpus / "good"), str(other)])]
    assert "a" in ids and "a~1" in ids


def test_shard_option_and_bad_shard(corpus, tmp_path, capsys):
    out = tmp_path / "cache"
    assert (
        main(["preprocess", str(corpus / "good"), "--out", str(out), "--shard", "1/2", "--quiet"])
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["sub__b.npz"]  # ids a, sub/b, wall -> index 1
    assert main(["preprocess", str(corpus / "good"), "--out", str(out), "--shard", "2/2"]) == 2
    assert "out of range" in capsys.readouterr().err


@pytest.mark.slow
def test_two_spawned_workers(corpus, tmp_path, capsys):
    out = tmp_path / "cache"
    status = main(
        [
            "preprocess",
            str(corpus / "good"),
            str(corpus / "bad"),
            "--out",
            str(out),
            "--workers",
            "2",
            "--quiet",
        ]
    )
    assert status == 1 and "3 done, 0 skipped, 2 failed" in capsys.readouterr().err
    assert len(list(out.glob("*.npz"))) == 3 and not list(out.glob("*.tmp-*"))


def test_face_size_option_sets_the_crop_and_the_cache_spec(corpus, tmp_path, capsys):
    out = tmp_path / "cache112"
    clip = str(corpus / "good" / "a.mp4")
    assert main(["preprocess", clip, "--out", str(out), "--face-size", "112", "--quiet"]) == 0
    reader = CacheReader(out / "a.npz")
    assert reader.spec.face_size == 112 and reader.spec.mouth_size == 48
    features = reader.read()
    assert features.face.shape[1:] == (112, 112, 3) and features.face_mask.any()
    # The same video at the default size is a different cache: rebuilt, not skipped.
    assert main(["preprocess", clip, "--out", str(out), "--quiet"]) == 0
    assert "1 done" in capsys.readouterr().err
    assert CacheReader(out / "a.npz").spec.face_size == 64
