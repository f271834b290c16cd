"""The world state: undo, diffs, several characters, and rooms that follow containment."""

from __future__ import annotations

import random

import pytest

from e2wm.world import World
from e2wm.world.actions import valid_lines
from e2wm.world.scenes import generate_scene
from tests.world.homes import ALICE, BOB, COFFEE_TABLE, COUNTER, KITCHEN, LIVING, PLATE, SOFA, TV, line, small_home


def edge_set(world: World) -> set[tuple[int, str, int]]:
    return set(world.edges())


def state_set(world: World) -> set[tuple[int, str]]:
    return {(n.id, s) for n in world.nodes.values() for s in n.states}


def explore(world: World, steps: int, seed: int) -> list:
    rng, results = random.Random(seed), []
    for i in range(steps):
        char = world.characters[i % len(world.characters)]
        result = world.step(rng.choice(valid_lines(world, char)), char)
        assert result.success, result.reason
        results.append(result)
    return results


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_restore_brings_back_the_exact_graph(seed):
    graph = generate_scene(seed, characters=2)
    world = World.from_dict(graph)
    snap = world.snapshot()
    explore(world, 150, seed)
    assert world.to_dict() != World.from_dict(graph).to_dict()
    world.restore(snap)
    assert world.to_dict() == World.from_dict(graph).to_dict()  # node order and state order included
    assert world.grab_origin == {}


def test_nested_snapshots_restore_in_any_order():
    world = World.from_dict(small_home())
    first = world.snapshot()
    world.step(line("Walk", PLATE))
    middle_edges, middle_states = edge_set(world), state_set(world)
    second = world.snapshot()
    world.step(line("Grab", PLATE))
    world.restore(second)
    assert (edge_set(world), state_set(world)) == (middle_edges, middle_states)
    world.restore(first)
    assert world.to_dict() == World.from_dict(small_home()).to_dict()


def test_commit_forgets_history_and_invalidates_snapshots():
    world = World.from_dict(small_home())
    snap = world.snapshot()
    world.step(line("Walk", PLATE))
    world.commit()
    with pytest.raises(ValueError, match="no longer valid"):
        world.restore(snap)


@pytest.mark.parametrize("seed", [3, 4])
def test_each_diff_is_exactly_the_change_the_step_made(seed):
    world = World.from_dict(generate_scene(seed, characters=2))
    rng = random.Random(seed)
    for i in range(80):
        char = world.characters[i % 2]
        before_edges, before_states = edge_set(world), state_set(world)
        diff = world.step(rng.choice(valid_lines(world, char)), char).diff
        after_edges, after_states = edge_set(world), state_set(world)
        assert set(diff.edges_added) == after_edges - before_edges
        assert set(diff.edges_removed) == before_edges - after_edges
        assert set(diff.states_added) == after_states - before_states
        assert set(diff.states_removed) == before_states - after_states


def test_a_failed_step_has_no_diff_and_check_changes_nothing():
    world = World.from_dict(small_home())
    before = world.to_dict()
    assert world.check(line("Grab", PLATE)) == "character (100) is not close to plate (20)"
    result = world.step(line("Grab", PLATE))
    assert not result.success and not result.diff
    assert world.check(line("Walk", PLATE)) is None
    assert world.to_dict() == before


@pytest.mark.parametrize("seed", [5, 6, 7, 8])
def test_rooms_follow_containment_through_random_exploration(seed):
    world = World.from_dict(generate_scene(seed, characters=3))
    assert world.room_violations() == []
    rng = random.Random(seed)
    for i in range(120):
        char = world.characters[i % 3]
        world.step(rng.choice(valid_lines(world, char)), char)
        assert world.room_violations() == []
        for obj in world.holding(char):
            assert world.room_of(obj) == world.room_of(char)


def test_two_characters_act_independently():
    world = World.from_dict(small_home())
    assert world.step(line("Walk", COUNTER), ALICE)
    assert world.step(line("Grab", PLATE), ALICE)
    assert world.step(line("Walk", SOFA), BOB)
    assert world.step(line("Sit", SOFA), BOB)
    assert world.room_of(ALICE) == KITCHEN and world.room_of(BOB) == LIVING
    assert world.holding(ALICE) == [PLATE] and world.holding(BOB) == []
    assert world.step(line("Walk", COFFEE_TABLE), ALICE)
    assert world.step(line("PutBack", PLATE, COFFEE_TABLE), ALICE)
    assert "SITTING" in world.nodes[BOB].states and "SITTING" not in world.nodes[ALICE].states
    assert world.step(line("Watch", TV), BOB)


def test_character_prefix_in_the_script_selects_the_character():
    world = World.from_dict(small_home())
    result = world.step("<char1> " + line("Walk", KITCHEN))
    assert result.success and result.character == BOB and world.room_of(BOB) == KITCHEN
    assert not world.step("<char5> " + line("Walk", KITCHEN)).success


def test_carrying_into_another_room_keeps_one_room_edge_per_object():
    world = World.from_dict(small_home())
    for text in (line("Walk", COUNTER), line("Grab", PLATE), line("Walk", COFFEE_TABLE)):
        assert world.step(text).success
    assert {r for r in world.targets(PLATE, "INSIDE") if r in world.rooms} == {LIVING}
    assert world.to_dict()["edges"].count({"from_id": PLATE, "relation_type": "INSIDE", "to_id": KITCHEN}) == 0


def test_copy_is_independent():
    world = World.from_dict(small_home())
    twin = world.copy()
    world.step(line("Walk", PLATE))
    assert twin.room_of(ALICE) == KITCHEN and not twin.targets(ALICE, "CLOSE")
    assert twin.to_dict() == World.from_dict(small_home()).to_dict()
