"""Shared test setup: everything offline and deterministic."""

from __future__ import annotations

import os

from tests.corpus_fixtures import collection, corpus  # noqa: F401
from tests.fake_hub import fake_hub  # noqa: F401

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def require(reason: str) -> None:
    """A test needs data or a package the machine lacks: fail in CI (which must provide it), else skip."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must provide it: see .ci/run)")
    pytest.skip(reason)
