"""Source-disjoint folds: invariants on hand-made corpora with donors, the script on a real
synthetic corpus (manifests readable by training, ``avdf evaluate --manifest``), and the
short-segment recall by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from evaluation_corpus import synth_corpus

from avdf.cli import main
from avdf.data.datamodule import load_samples
from avdf.evaluation.folds import donor_units, make_folds, source_unit
from avdf.metrics import short_segment_recall
from avdf.types import Sample, Segment

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_folds.py"


def _corpus(n_people: int, seed: int) -> list[Sample]:
    """Videos of ``n_people`` people (some with two clips), some borrowing a face or a voice
    from another person's clip or from a speech file."""
    import random

    rng = random.Random(seed)
    clips = [(f"talking/p{p}_{c}.mp4", f"p{p}") for p in range(n_people)
             for c in range(1 + (p % 3 == 0))]  # fmt: skip
    samples = []
    for i in range(12 * n_people):
        source, person = rng.choice(clips)
        edits = []
        if rng.random() < 0.4:
            donor = rng.choice([c for c, p in clips if p != person] + ["speech/s1.wav"])
            edits.append({"segment": [0.5, 1.0], "audio" if donor.startswith("speech")
                          else "visual": {"family": "x", "donor": donor}})  # fmt: skip
        samples.append(
            Sample(f"train/{i:06d}", "lavdf", "train", f"/c/train/{i:06d}.mp4", 4.0,
                   label=int(bool(edits)), fake_segments=(Segment(0.5, 1.0),) if edits else (),
                   extra={"source": source, "speaker": person, "edits": edits,
                          "file": f"train/{i:06d}.mp4"})
        )  # fmt: skip
    return samples


@pytest.mark.parametrize(("n_people", "k", "seed"), [(7, 5, 0), (12, 5, 1), (5, 3, 2), (9, 4, 3)])
def test_every_source_is_in_exactly_one_test_fold(n_people: int, k: int, seed: int) -> None:
    samples = _corpus(n_people, seed)
    by_id = {s.id: s for s in samples}
    unit_of_source = {s.extra["source"]: s.extra["speaker"] for s in samples}
    folds = make_folds(samples, k)
    assert len(folds) == k
    people = {source_unit(s) for s in samples}
    # Each person is in exactly one test fold, with all of its videos.
    tested = [u for f in folds for u in f.test_units]
    assert sorted(tested) == sorted(people)
    test_ids = [s.id for f in folds for s in f.split("test")]
    assert sorted(test_ids) == sorted(by_id)  # every video is tested exactly once
    for f in folds:
        roles = {name: {source_unit(s) for s in f.split(name)} for name in ("train", "dev", "test")}
        assert roles["test"] == set(f.test_units)
        assert roles["dev"] == set(f.dev_units) == set(folds[(f.index + 1) % k].test_units)
        assert not roles["train"] & roles["test"] and not roles["dev"] & roles["test"]
        assert not roles["train"] & roles["dev"]
        # No face or voice of a test person (or of a test-fold speech file) in train / dev.
        test_fold_units = {u for s in f.split("test") for u in [source_unit(s)]}
        for s in f.split("train") + f.split("dev"):
            assert not donor_units(s, unit_of_source) & test_fold_units
        # Nothing else is lost: kept + left out = the corpus, and each one left out had reason.
        assert sorted([s.id for s in f.samples] + f.left_out) == sorted(by_id)
        for sample_id in f.left_out:
            assert donor_units(by_id[sample_id], unit_of_source)
        assert all(s.extra["fold"] == f.index for s in f.samples)
    # Balanced: test folds differ by at most the largest person's number of videos.
    sizes = [len(f.split("test")) for f in folds]
    largest = max(sum(source_unit(s) == u for s in samples) for u in people)
    assert max(sizes) - min(sizes) <= largest


def test_extra_people_join_every_train_split_and_change_nothing_else() -> None:
    samples = _corpus(9, 3)
    plain = make_folds(samples, 4)

    # Another corpus's people (q*), two of its videos borrowing the speech file that the main
    # corpus's videos also borrow (a unit dealt to one fold), one borrowing its own speech file.
    def other_people(sample: Sample) -> Sample:
        def q(name: str) -> str:
            return name.replace("/p", "/q")

        edits = [{**e, **{m: {**e[m], "donor": q(e[m]["donor"])} for m in ("audio", "visual")
                          if m in e}} for e in sample.extra["edits"]]  # fmt: skip
        return replace(sample, id=f"extra/{sample.id}", path=f"/e/{sample.id}.mp4", extra={
            **sample.extra, "source": q(sample.extra["source"]), "edits": edits,
            "speaker": sample.extra["speaker"].replace("p", "q")})  # fmt: skip

    extra = [other_people(s) for s in _corpus(3, 4)[:20]]

    def borrowing(sample: Sample, new_id: str, voice: str) -> Sample:
        edit = {"segment": [0.5, 1.0], "audio": {"family": "x", "donor": voice}}
        return replace(sample, id=new_id, extra={**sample.extra, "edits": [edit]})

    voiced = borrowing(extra[0], "extra/voiced", "speech/s1.wav")
    own_voice = borrowing(extra[1], "extra/own", "speech/only_extra.wav")
    extra += [voiced, own_voice]
    s1_users = sorted(s.id for s in extra if "speech/s1.wav" in donor_units(s, {}))
    folds = make_folds(samples, 4, extra)
    speech_fold = [f.index for f in plain if "extra/voiced" not in {
        s.id for s in folds[f.index].samples}]  # fmt: skip
    assert len(speech_fold) == 1  # left out exactly where its donor voice is tested
    for before, after in zip(plain, folds, strict=True):
        for name in ("dev", "test"):
            assert [s.id for s in after.split(name)] == [s.id for s in before.split(name)]
        added = [s for s in after.split("train") if s.id.startswith("extra/")]
        assert [s.id for s in after.split("train") if not s.id.startswith("extra/")] == [
            s.id for s in before.split("train")
        ]
        assert after.extra_train == len(added)
        assert "extra/own" in {s.id for s in added}  # a voice no fold tests never blocks
        blocked = s1_users if after.index in speech_fold else []
        assert len(added) == len(extra) - len(blocked)
        assert sorted(after.left_out) == sorted(before.left_out + blocked)


def test_too_few_sources_or_folds_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot fill"):
        make_folds(_corpus(3, 0), 5)
    with pytest.raises(ValueError, match="at least 3"):
        make_folds(_corpus(5, 0), 2)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return synth_corpus(tmp_path_factory)


def test_script_writes_manifests_training_and_evaluate_read(
    corpus: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, cache = corpus
    out = tmp_path / "folds"
    run = [sys.executable, str(SCRIPT), str(root), str(out), "--k", "3"]
    table = subprocess.run(run, capture_output=True, text=True, check=True).stdout
    assert "| fold | test people |" in table
    assert subprocess.run(run, capture_output=True, text=True).returncode == 1  # no --force
    summary = json.loads((out / "folds.json").read_text())
    records = json.loads((root / "metadata.json").read_text())
    people = {r["extra"]["speaker"] for r in records}
    assert sorted(u for f in summary["folds"] for u in f["test_units"]) == sorted(people)
    total_test = 0
    for k in range(3):
        manifest = out / f"fold{k}.jsonl"
        # What a training config with data.manifest reads.
        train = load_samples(None, None, manifest, "train")
        test = load_samples(None, None, manifest, "test")
        total_test += len(test)
        assert {s.extra["speaker"] for s in train}.isdisjoint({s.extra["speaker"] for s in test})
        assert all(Path(s.path).is_file() for s in train + test)
    assert total_test == len(records)

    # `avdf evaluate --manifest` scores a fold's test split from the shared cache.
    scores = tmp_path / "scores.json"
    argv = ["evaluate", "--manifest", str(out / "fold0.jsonl"), "--split", "test"]
    argv += ["--checkpoint", str(_bundled()), "--cache", str(cache), "--json", str(scores)]
    assert main(argv) == 0
    numbers = json.loads(scores.read_text())
    n_test = summary["folds"][0]["videos"]["test"]
    assert numbers["n_videos"] == numbers["n_scored"] == n_test
    assert f"{n_test} of {n_test} videos scored, {n_test} from the cache" in capsys.readouterr().err


def _bundled() -> Path:
    from avdf.inference.detector import bundled_checkpoint_path

    return bundled_checkpoint_path()


def test_short_segment_recall_by_hand() -> None:
    labels = {
        "a": [[1.0, 1.3], [2.0, 2.4], [3.0, 4.0]],  # 0.3 s and 0.4 s are short; 1 s is not
        "b": [[0.5, 0.9]],  # short, and no proposal at all: a miss
        "c": [],
    }
    proposals = {
        # [1.0, 1.25] vs [1.0, 1.3]: IoU 0.25 / 0.3 = 0.83 > 0.5, found.
        # [2.2, 2.7] vs [2.0, 2.4]: IoU 0.2 / 0.7 = 0.29, missed. [3, 4] is long: not counted.
        "a": [[0.9, 1.0, 1.25], [0.8, 2.2, 2.7], [0.7, 3.0, 4.0]],
        "b": [],
        "c": [[0.5, 0.0, 0.3]],
    }
    result = short_segment_recall(proposals, labels)
    assert (result.n_segments, result.n_found) == (3, 1)
    assert result.recall == pytest.approx(1 / 3)
    # Only the first N proposals count (list order), like AR@N.
    reordered = {**proposals, "a": [[0.9, 2.2, 2.7], [0.8, 1.0, 1.25]]}
    assert short_segment_recall(reordered, labels, n_proposals=1).n_found == 0
    assert short_segment_recall(reordered, labels, n_proposals=2).n_found == 1
    # A longer limit counts the 1 s segment too (found by [3, 4]); none short: NaN.
    assert short_segment_recall(proposals, labels, max_length=1.5).n_found == 2
    nothing = short_segment_recall(proposals, {"c": []})
    assert nothing.n_segments == 0 and nothing.recall != nothing.recall
