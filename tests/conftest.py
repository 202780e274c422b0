"""Shared test settings. Where the real media lives: see ``media_fixtures``."""

from __future__ import annotations

from hypothesis import settings

# The same examples on every run: a CI result must not depend on the draw. (Run with
# ``--hypothesis-profile=explore`` to search new examples locally.)
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("repeatable")
