"""The MCTS planner: plans re-execute to their goal, the world is left as it was, failures say why."""

from __future__ import annotations

import pytest

from e2wm.experience.goals import CountFact, EdgeFact, Goal, RoomFact, StateFact
from e2wm.experience.macros import propose_macros
from e2wm.experience.mcts import MCTSConfig, _Search, plan, verify_plan
from e2wm.world import World
from e2wm.world.scenes import RobotHowUnavailableError, load_robothow
from tests.conftest import require
from tests.world.homes import (
    ALICE,
    CHAIR,
    COFFEE_TABLE,
    COUNTER,
    CUP,
    FRIDGE,
    LIGHT,
    LIVING,
    MILK,
    PLATE,
    SOFA,
    TV,
    small_home,
)

GOALS = {
    "carry": (EdgeFact(PLATE, "ON", COFFEE_TABLE),),
    "fridge": (EdgeFact(CUP, "INSIDE", FRIDGE), StateFact(FRIDGE, "CLOSED"), StateFact(FRIDGE, "ON")),
    "milk": (EdgeFact(MILK, "HOLDS", ALICE),),
    "light": (StateFact(LIGHT, "ON"),),
    "watch": (StateFact(TV, "ON"), StateFact(ALICE, "SITTING"), EdgeFact(ALICE, "ON", SOFA), RoomFact(ALICE, LIVING)),
    "count": (CountFact("cup", "ON", COFFEE_TABLE, 1), CountFact("plate", "ON", COFFEE_TABLE, 1)),
    "two_hands": (EdgeFact(CUP, "HOLDS", ALICE), EdgeFact(PLATE, "HOLDS", ALICE), EdgeFact(MILK, "ON", COUNTER)),
}


@pytest.mark.parametrize("name", list(GOALS))
def test_plans_reach_the_goal_on_re_execution_and_leave_the_world_unchanged(name):
    world = World.from_dict(small_home())
    goal = Goal(name, GOALS[name], ALICE)
    before = world.to_dict()
    result = plan(world, goal, seed=0)
    assert result.reached, result.failure
    assert world.to_dict() == before
    assert verify_plan(small_home(), result.lines, goal) is None
    assert len(result.lines) <= 12


def test_a_plan_that_does_not_reach_the_goal_is_caught_by_verification():
    goal = Goal("carry", GOALS["carry"], ALICE)
    result = plan(World.from_dict(small_home()), goal, seed=0)
    assert "does not hold" in verify_plan(small_home(), result.lines[:-1], goal)
    assert "failed on re-execution" in verify_plan(small_home(), result.lines[1:], goal)


def test_an_impossible_goal_fails_with_a_reason():
    goal = Goal("sit twice", (EdgeFact(ALICE, "ON", COUNTER),), ALICE)  # a counter is not sittable
    result = plan(World.from_dict(small_home()), goal, seed=0)
    assert not result.reached and "no action leads toward" in result.failure


def test_the_same_seed_gives_the_same_plan():
    goal = Goal("watch", GOALS["watch"], ALICE)
    first = plan(World.from_dict(small_home()), goal, seed=3).lines
    assert plan(World.from_dict(small_home()), goal, seed=3).lines == first


def test_reward_shaping_follows_the_paper():
    world = World.from_dict(small_home())  # the light is off and unplugged; the chair is clean
    goal = Goal("light", (StateFact(LIGHT, "ON"), StateFact(CHAIR, "CLEAN")), ALICE)
    search = _Search(world, ALICE, goal, MCTSConfig(discount=0.5), None)
    (macro,) = propose_macros(world, ALICE, goal)
    assert [str(line) for line in macro] == ["[Walk] <light> (12)", "[PlugIn] <light> (12)"]
    reward, steps, done = search.run_macro(macro)
    assert (steps, done) == (2, False) and reward == pytest.approx(-0.1 + 0.5 * -0.1)  # -0.1 per step
    (macro,) = propose_macros(world, ALICE, goal)
    reward, steps, done = search.run_macro(macro)  # switch on: +2 for the fact, +5 for the goal
    assert done and reward == pytest.approx(2 - 0.1 + 5)
    undo = _Search(world, ALICE, Goal("both", (StateFact(LIGHT, "ON"), StateFact(TV, "ON")), ALICE), MCTSConfig(), None)
    off = world.step("[SwitchOff] <light> (12)").line
    world.step("[SwitchOn] <light> (12)")
    assert undo.run_macro((off,))[0] == pytest.approx(-1.5 - 0.1)  # a fact undone


def test_config_is_validated():
    with pytest.raises(ValueError, match="simulations must be at least 1"):
        MCTSConfig(simulations=0)
    with pytest.raises(ValueError, match="discount"):
        MCTSConfig(discount=1.5)


def test_robothow_goals_are_planned():
    try:
        programs = load_robothow()
    except RobotHowUnavailableError as err:
        require(str(err))
    from e2wm.experience.goals import goal_from_graphs

    reached = 0
    sample = programs[::37]
    for program in sample:
        graphs = program.graphs()
        goal = goal_from_graphs(program.title, graphs["init_graph"], graphs["final_graph"])
        result = plan(World.from_dict(graphs["init_graph"]), goal, seed=0)
        if result.reached and verify_plan(graphs["init_graph"], result.lines, goal) is None:
            reached += 1
            assert len(result.lines) <= len(program.lines) + 2
    assert reached >= len(sample) - 1
