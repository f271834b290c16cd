"""Goals: satisfaction, distance, RobotHow graph-change goals, sampled goals that are achievable."""

from __future__ import annotations

import copy
import random

import pytest

from e2wm.experience.goals import CountFact, EdgeFact, Goal, RoomFact, StateFact, goal_from_graphs, sample_goal
from e2wm.experience.mcts import plan, verify_plan
from e2wm.world import World
from e2wm.world.scenes import generate_scene
from tests.world.homes import ALICE, COFFEE_TABLE, COUNTER, CUP, KITCHEN, LIVING, PLATE, TV, line, small_home


def test_facts_count_units_and_distance():
    world = World.from_dict(small_home())
    goal = Goal(
        "tidy",
        (
            StateFact(TV, "ON"),
            EdgeFact(PLATE, "ON", COFFEE_TABLE),
            RoomFact(ALICE, LIVING),
            CountFact("cup", "ON", COUNTER, 1),
            EdgeFact(CUP, "HOLDS", ALICE),
        ),
        ALICE,
    )
    assert goal.size() == 5
    assert goal.progress(world) == 1  # the cup is on the counter already
    assert goal.distance(world) == 4 and not goal.satisfied(world)
    for text in (line("Walk", COUNTER), line("Grab", CUP)):
        assert world.step(text)
    assert goal.progress(world) == 1, "holding the cup undoes 'a cup on the counter'"
    assert {type(f).__name__ for f in goal.unsatisfied(world)} == {"StateFact", "EdgeFact", "RoomFact", "CountFact"}


def test_count_facts_count_objects_of_the_class():
    world = World.from_dict(small_home())
    fact = CountFact("plate", "ON", COFFEE_TABLE, 1)
    assert fact.units(world) == (0, 1)
    for text in (
        line("Walk", PLATE),
        line("Grab", PLATE),
        line("Walk", COFFEE_TABLE),
        line("PutBack", PLATE, COFFEE_TABLE),
    ):
        assert world.step(text)
    assert fact.units(world) == (1, 1)
    assert CountFact("plate", "ON", COFFEE_TABLE, 3).units(world) == (1, 3)


def test_goal_round_trips_through_dict():
    goal = Goal("x", (StateFact(1, "ON"), EdgeFact(2, "INSIDE", 3), RoomFact(4, 5), CountFact("cup", "ON", 6, 2)), 4)
    assert Goal.from_dict(goal.to_dict()) == goal


def test_goal_from_graphs_is_what_the_final_graph_adds():
    init = small_home()
    world = World.from_dict(init)
    for text in (
        line("Walk", PLATE),
        line("Grab", PLATE),
        line("Walk", TV),
        line("SwitchOn", TV),
        line("PutBack", PLATE, 33),
    ):
        assert world.step(text)
    goal = goal_from_graphs("Watch TV", init, world.to_dict())
    assert goal.activity == "Watch TV" and goal.character == ALICE
    assert set(goal.facts) == {StateFact(TV, "ON"), EdgeFact(PLATE, "ON", 33), RoomFact(ALICE, LIVING)}
    assert goal.satisfied(world) and not goal.satisfied(World.from_dict(init))


def test_goal_from_graphs_holds_in_either_hand_and_skips_unproducible_states():
    init = small_home()
    final = copy.deepcopy(init)
    final["edges"].append({"from_id": ALICE, "relation_type": "HOLDS_LH", "to_id": CUP})
    next(n for n in final["nodes"] if n["id"] == COUNTER)["states"] = ["DIRTY"]
    goal = goal_from_graphs("Drink", init, final)
    assert goal.facts == (EdgeFact(CUP, "HOLDS", ALICE),)
    world = World.from_dict(init)
    for text in (line("Walk", PLATE), line("Grab", PLATE), line("Grab", CUP)):
        assert world.step(text)
    assert goal.satisfied(world), "held in the right hand satisfies a left-hand goal"
    assert goal_from_graphs("nothing", init, copy.deepcopy(init)).facts == ()


@pytest.mark.parametrize("seed", range(12))
def test_sampled_goals_are_achievable_and_not_already_true(seed):
    world = World.from_dict(generate_scene(seed, characters=1))
    goal = sample_goal(world, random.Random(seed))
    assert goal is not None and goal.facts and not goal.satisfied(world)
    for fact in goal.facts:
        if isinstance(fact, CountFact):
            assert fact.count <= len(world.nodes_of_class(fact.class_name))
    result = plan(world, goal, seed=seed)
    assert result.reached, (goal.describe(world), result.failure)
    assert verify_plan(generate_scene(seed, characters=1), result.lines, goal) is None


def test_sampled_goals_cover_several_activities():
    activities = set()
    for seed in range(40):
        world = World.from_dict(generate_scene(seed))
        goal = sample_goal(world, random.Random(seed))
        activities.add(goal.activity)
    assert len(activities) >= 8


def test_room_fact_uses_the_current_room():
    world = World.from_dict(small_home())
    assert RoomFact(ALICE, KITCHEN).units(world) == (1, 1)
