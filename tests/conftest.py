"""Shared test settings and fixtures: where the real media lives."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# The same examples on every run: a CI result must not depend on the draw. (Run with
# ``--hypothesis-profile=explore`` to search new examples locally.)
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "media"


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not (SHARED_MEDIA / "talking").is_dir():
        pytest.skip(f"shared media not found at {SHARED_MEDIA}")
    return SHARED_MEDIA


@pytest.fixture(scope="session")
def talking_clips(shared_media: Path) -> list[Path]:
    return sorted((shared_media / "talking").glob("*.mp4"))
