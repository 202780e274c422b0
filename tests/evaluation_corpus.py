"""A tiny synthetic corpus with true labels for the evaluation tests, built from the media
bundled with the package (no ``../shared`` needed) and cached with ``avdf preprocess``.

Built once per test session (under pytest's base temporary folder, shared by every module
that asks for it): 16 videos, about 6 s to synthesise and 8 s to cache on two shared cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from avdf.cli import main
from avdf.synth.sources import bundled_media_root

N_VIDEOS = 16
SEED = 0


def synth_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(corpus root in the LAV-DF layout, feature cache)``."""
    base = tmp_path_factory.getbasetemp() / "evaluation-synth"
    root, cache = base / "corpus", base / "cache"
    done = base / "done"
    if not done.exists():
        argv = ["synth", "--out", str(root), "--videos", str(N_VIDEOS), "--seed", str(SEED)]
        argv += ["--source-media", str(bundled_media_root()), "--force", "--quiet"]
        assert main(argv) == 0
        assert main(["preprocess", str(root), "--out", str(cache), "--quiet"]) == 0
        done.touch()
    return root, cache
