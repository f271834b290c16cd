"""A small collection and corpus shared by the task and evaluation tests (built once per session)."""

from __future__ import annotations

import pytest

from e2wm.experience.collect import CollectConfig, collect
from e2wm.experience.exploration import ExplorationConfig
from e2wm.tasks.corpus import build_corpus


@pytest.fixture(scope="session")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    config = CollectConfig(
        "generated",
        plans=40,
        explorations=60,
        seed=5,
        chunk_size=20,
        goals_per_scene=2,
        exploration=ExplorationConfig(steps=24),
    )
    collect(config, folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def corpus(collection, tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus") / "experiences"
    summary = build_corpus(collection, folder, progress=False)
    return folder, summary
