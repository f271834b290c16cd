"""Shared test setup: everything offline and deterministic."""

from __future__ import annotations

import os

from tests.fake_hub import fake_hub  # noqa: F401

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
