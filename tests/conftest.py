"""Session-wide test settings."""
from __future__ import annotations

import os
import shutil
import tempfile

_made: list[str] = []


def pytest_configure(config):
    # earmark keeps phrase features (and similar) in ~/.cache/earmark between runs; tests get a
    # throwaway cache of their own so they neither read a user's cache nor leave files behind
    if "EARMARK_CACHE" not in os.environ:
        d = tempfile.mkdtemp(prefix="earmark-test-cache-")
        _made.append(d)
        os.environ["EARMARK_CACHE"] = d


def pytest_unconfigure(config):
    for d in _made:
        shutil.rmtree(d, ignore_errors=True)
