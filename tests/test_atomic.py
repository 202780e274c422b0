"""Atomic writes: temporaries of killed runs are removed by the next write, others stay."""

import subprocess
import sys

from avdf.atomic import remove_stale_temporaries, temporary_sibling, write_text_atomic


def test_next_write_removes_only_dead_local_temporaries(tmp_path):
    target = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    dead = int(done.stdout)  # a pid whose process has exited
    stale = tmp_path / f".report.json.{dead}@{temporary_sibling(target).name.split('@')[1]}"
    stale.write_text("half")  # this machine, dead writer
    old_form = tmp_path / f".report.json.{dead}.0123abcd.tmp"
    old_form.write_text("half")
    live = temporary_sibling(target)  # this process
    live.write_text("writing")
    elsewhere = tmp_path / f".report.json.{dead}@00000000.0123abcd.tmp"  # another machine
    elsewhere.write_text("writing")
    other_target = tmp_path / f".summary.csv.{dead}.0123abcd.tmp"
    other_target.write_text("half")
    write_text_atomic(target, "{}")
    assert target.read_text() == "{}"
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"report.json", live.name, elsewhere.name, other_target.name}
    assert remove_stale_temporaries(tmp_path / "summary.csv") == [other_target]
