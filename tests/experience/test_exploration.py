"""Random exploration: valid steps, diffs, and object tracks that agree with the simulator."""

from __future__ import annotations

import random

import pytest

from e2wm.experience.exploration import ExplorationConfig, explore, location
from e2wm.world import World
from e2wm.world.scenes import generate_scene


@pytest.mark.parametrize("seed", range(6))
def test_tracked_locations_agree_with_the_simulator_at_every_step(seed):
    graph = generate_scene(seed, characters=3)
    run = explore(World.from_dict(graph), ExplorationConfig(steps=40), random.Random(seed))
    assert len(run.steps) == 40 and all(step.success for step in run.steps)
    assert run.tracks, "something moved"
    replay = World.from_dict(graph)
    for node, track in run.tracks.items():
        first = track[0]
        assert (first.relation, first.support, first.room) == tuple(list(vars(location(replay, node, 0)).values())[1:])
    for index, step in enumerate(run.steps):
        assert replay.step(step.line, step.character).diff == step.diff
        for node, track in run.tracks.items():
            past = [loc for loc in track if loc.step <= index + 1]
            expected = past[-1] if past else track[0]
            now = location(replay, node, index + 1)
            assert (expected.relation, expected.support, expected.room) == (now.relation, now.support, now.room)
    for track in run.tracks.values():
        steps = [loc.step for loc in track]
        assert steps == sorted(steps) and len(set(steps)) == len(steps), "one entry per change, in order"


def test_characters_take_turns_and_exploration_is_deterministic():
    graph = generate_scene(2, characters=2)
    first = explore(World.from_dict(graph), ExplorationConfig(steps=20), random.Random(7))
    second = explore(World.from_dict(graph), ExplorationConfig(steps=20), random.Random(7))
    assert [s.line for s in first.steps] == [s.line for s in second.steps]
    assert [s.character for s in first.steps][:4] == [first.characters[0], first.characters[1]] * 2
    one = explore(World.from_dict(graph), ExplorationConfig(steps=10, characters=1), random.Random(7))
    assert {s.character for s in one.steps} == {one.characters[0]}


def test_objects_move_between_rooms_during_exploration():
    moved_rooms = 0
    for seed in range(8):
        run = explore(
            World.from_dict(generate_scene(seed, characters=2)), ExplorationConfig(steps=40), random.Random(seed)
        )
        moved_rooms += sum(len({loc.room for loc in track}) > 1 for track in run.tracks.values())
    assert moved_rooms > 0


def test_config_is_validated():
    with pytest.raises(ValueError, match="steps must be at least 1"):
        ExplorationConfig(steps=0)
    with pytest.raises(ValueError, match="characters must be at least 1"):
        ExplorationConfig(characters=0)
