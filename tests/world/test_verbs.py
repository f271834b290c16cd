"""Each verb's preconditions (a failing step names why and changes nothing) and effects."""

from __future__ import annotations

import pytest

from e2wm.world import VERBS, World
from tests.world.homes import (
    ALICE,
    APPLE,
    BATHROOM,
    BOB,
    CHAIR,
    COFFEE_TABLE,
    COUNTER,
    CUP,
    FRIDGE,
    KITCHEN,
    KNIFE,
    LIGHT,
    LIVING,
    MILK,
    NOVEL,
    PLATE,
    REMOTE,
    SHIRT,
    SINK,
    SOFA,
    TOWEL,
    TV,
    WATER,
    line,
    small_home,
)


@pytest.fixture
def w() -> World:
    return World.from_dict(small_home())


def ok(world: World, *ids_or_text, char: int = ALICE):
    text = ids_or_text[0] if isinstance(ids_or_text[0], str) and ids_or_text[0].startswith("[") else line(*ids_or_text)
    result = world.step(text, char)
    assert result.success, f"{text}: {result.reason}"
    return result.diff


def fails(world: World, reason: str, *ids, char: int = ALICE) -> None:
    before = world.to_dict()
    result = world.step(line(*ids), char)
    assert not result.success
    assert reason in result.reason, result.reason
    assert world.to_dict() == before, "a failed step must change nothing"


# ---------------------------------------------------------------- every RobotHow verb has a handler
def test_every_robothow_verb_is_registered():
    robothow = {
        "FIND", "WALK", "GRAB", "SWITCHON", "PUTBACK", "TURNTO", "SIT", "LOOKAT", "OPEN", "CLOSE", "TOUCH", "TYPE",
        "RINSE", "SWITCHOFF", "WATCH", "POUR", "READ", "PUTIN", "PUTOBJBACK", "DRINK", "PUSH", "WASH", "LIE", "DROP",
        "POINTAT", "SCRUB", "SLEEP", "RUN", "STANDUP", "PLUGIN", "WIPE", "PULL", "PUTON", "SQUEEZE", "PUTOFF",
        "PLUGOUT", "WAKEUP",
    }  # fmt: skip
    names = {name.upper() for name in VERBS}
    assert robothow <= names
    assert {"Greet", "Move", "Cut", "Eat", "Release", "WalkTowards"} <= set(VERBS)


# ---------------------------------------------------------------- moving
def test_walk_to_object_goes_to_its_room_and_close_to_it_and_its_container(w):
    ok(w, "Walk", MILK)
    assert w.room_of(ALICE) == KITCHEN
    assert w.has_edge(ALICE, "CLOSE", MILK) and w.has_edge(MILK, "CLOSE", ALICE)
    assert w.has_edge(ALICE, "CLOSE", FRIDGE), "closeness to the container holding the target"


def test_walk_to_a_room_drops_old_closeness(w):
    ok(w, "Walk", PLATE)
    ok(w, "Walk", LIVING)
    assert w.room_of(ALICE) == LIVING
    assert not w.targets(ALICE, "CLOSE")


def test_walk_close_to_what_the_target_stands_on(w):
    ok(w, "Walk", TV)
    assert w.has_edge(ALICE, "CLOSE", 33)  # the tvstand the TV is ON


def test_walk_close_to_everything_inside_an_openable_target(w):
    ok(w, "Walk", FRIDGE)
    assert w.has_edge(ALICE, "CLOSE", MILK)


def test_walk_fails_while_sitting(w):
    ok(w, "Walk", SOFA, char=BOB)
    ok(w, "Sit", SOFA, char=BOB)
    fails(w, "is sitting", "Walk", KITCHEN, char=BOB)


def test_run_and_walktowards_walk(w):
    ok(w, "[Run] <sofa> (31)")
    assert w.room_of(ALICE) == LIVING
    ok(w, "[WalkTowards] <fridge> (11)")
    assert w.room_of(ALICE) == KITCHEN


def test_find_close_object_does_not_move_the_character(w):
    ok(w, "Walk", COUNTER)
    diff = ok(w, "Find", PLATE)
    assert w.room_of(ALICE) == KITCHEN
    assert all(rel in ("CLOSE", "FACING") for _, rel, _ in diff.edges_added + diff.edges_removed)


def test_find_far_object_walks_to_it(w):
    ok(w, "Find", NOVEL)  # in the living room: VirtualHome crashes here, e2wm walks
    assert w.room_of(ALICE) == LIVING and w.is_close(ALICE, NOVEL)


def test_find_while_sitting_needs_the_object_close(w):
    ok(w, "Walk", SOFA, char=BOB)
    ok(w, "Sit", SOFA, char=BOB)
    fails(w, "is not close to", "Find", TV, char=BOB)


def test_turnto_faces_and_lookat_needs_facing(w):
    ok(w, "Walk", COFFEE_TABLE)
    fails(w, "does not face", "LookAt", TV)
    ok(w, "TurnTo", TV)
    assert w.targets(ALICE, "FACING") == {TV}
    ok(w, "LookAt", TV)
    ok(w, "PointAt", TV)


# ---------------------------------------------------------------- hands
def test_grab_preconditions(w):
    fails(w, "is not close to", "Grab", NOVEL)
    fails(w, "is not grabbable", "Grab", COUNTER)
    ok(w, "Walk", FRIDGE)
    fails(w, "is inside fridge (11), which is closed", "Grab", MILK)


def test_grab_takes_into_right_then_left_hand_and_then_no_hand_is_free(w):
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", PLATE)
    ok(w, "Grab", CUP)
    assert w.has_edge(ALICE, "HOLDS_RH", PLATE) and w.has_edge(ALICE, "HOLDS_LH", CUP)
    fails(w, "does not have a free hand", "Grab", KNIFE)
    assert not w.targets(PLATE, "ON"), "a grabbed object is no longer on its surface"
    assert w.room_of(PLATE) == KITCHEN


def test_grab_an_object_held_by_another_character_fails(w):
    ok(w, "Walk", COUNTER, char=BOB)
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", PLATE, char=BOB)
    fails(w, "is already held by character (101)", "Grab", PLATE)


def test_things_on_a_grabbed_object_stay_behind(w):
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", APPLE)
    ok(w, "PutBack", APPLE, PLATE)
    ok(w, "Grab", PLATE)
    assert not w.has_edge(APPLE, "ON", PLATE)
    ok(w, "Walk", LIVING)
    assert w.room_of(APPLE) == KITCHEN and w.room_of(PLATE) == LIVING


def test_putback_and_putin_preconditions(w):
    fails(w, "is not holding", "PutBack", PLATE, COUNTER)
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", PLATE)
    fails(w, "is not close to", "PutBack", PLATE, COFFEE_TABLE)
    ok(w, "Walk", FRIDGE)
    fails(w, "fridge (11) is not open", "PutIn", PLATE, FRIDGE)


def test_carried_object_changes_room_and_is_put_in_the_destination_room(w):
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", PLATE)
    ok(w, "Walk", COFFEE_TABLE)
    assert w.room_of(PLATE) == LIVING, "a carried object is in its carrier's room"
    assert w.targets(PLATE, "INSIDE") == {LIVING}
    ok(w, "PutBack", PLATE, COFFEE_TABLE)
    assert w.has_edge(PLATE, "ON", COFFEE_TABLE) and w.targets(PLATE, "INSIDE") == {LIVING}
    assert not w.holding(ALICE)
    assert not w.room_violations()


def test_putin_an_open_container(w):
    ok(w, "Walk", FRIDGE)
    ok(w, "SwitchOff", FRIDGE)
    ok(w, "Open", FRIDGE)
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", CUP)
    ok(w, "Walk", FRIDGE)
    ok(w, "PutIn", CUP, FRIDGE)
    assert w.has_edge(CUP, "INSIDE", FRIDGE) and w.room_of(CUP) == KITCHEN


def test_put_an_object_on_itself_fails(w):
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", PLATE)
    fails(w, "cannot be put on itself", "PutBack", PLATE, PLATE)


def test_putobjback_returns_the_object_where_it_was_grabbed(w):
    fails(w, "was not grabbed", "PutObjBack", NOVEL)
    ok(w, "Walk", NOVEL)
    ok(w, "Grab", NOVEL)
    ok(w, "PutObjBack", NOVEL)
    assert w.has_edge(NOVEL, "ON", COFFEE_TABLE) and not w.holding(ALICE)


def test_drop_and_release_leave_the_object_in_the_room(w):
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", KNIFE)
    ok(w, "Walk", LIVING)
    fails(w, "is not holding", "Drop", CUP)
    ok(w, "Drop", KNIFE)
    assert w.room_of(KNIFE) == LIVING and not w.holding(ALICE) and w.location_of(KNIFE) is None
    ok(w, "Walk", NOVEL)
    ok(w, "Grab", NOVEL)
    ok(w, "Release", NOVEL)
    assert not w.holding(ALICE)


def test_put_on_and_take_off_clothes(w):
    ok(w, "Walk", SHIRT, char=BOB)
    fails(w, "is not holding", "PutOn", SHIRT, char=BOB)
    ok(w, "Grab", SHIRT, char=BOB)
    ok(w, "PutOn", SHIRT, char=BOB)
    assert w.has_edge(SHIRT, "ON", BOB) and not w.holding(BOB)
    ok(w, "Walk", KITCHEN, char=BOB)
    assert w.room_of(SHIRT) == KITCHEN, "worn clothes go where the character goes"
    ok(w, "PutOff", SHIRT, char=BOB)  # VirtualHome crashes on [PutOff]
    assert not w.has_edge(SHIRT, "ON", BOB)
    fails(w, "is not on character (101)", "PutOff", SHIRT, char=BOB)


def test_put_on_needs_clothes(w):
    ok(w, "Walk", NOVEL)
    ok(w, "Grab", NOVEL)
    fails(w, "is not clothes", "PutOn", NOVEL)


def test_pour_water_into_a_cup(w):
    ok(w, "Walk", SINK)
    ok(w, "Grab", WATER)  # water is grabbable by class name, as in VirtualHome
    fails(w, "is not pourable or drinkable", "Pour", COUNTER, CUP)
    ok(w, "Pour", WATER, CUP)
    assert w.has_edge(WATER, "INSIDE", CUP) and not w.holding(ALICE)


# ---------------------------------------------------------------- states of things
def test_open_close_preconditions_and_effects(w):
    fails(w, "cannot be opened", "Open", COUNTER)
    fails(w, "is not close to", "Open", FRIDGE)
    ok(w, "Walk", FRIDGE)
    fails(w, "is still on", "Open", FRIDGE)
    ok(w, "SwitchOff", FRIDGE)
    fails(w, "is not open", "Close", FRIDGE)
    ok(w, "Open", FRIDGE)
    assert "OPEN" in w.nodes[FRIDGE].states and "CLOSED" not in w.nodes[FRIDGE].states
    fails(w, "is not closed", "Open", FRIDGE)
    ok(w, "Close", FRIDGE)
    assert "CLOSED" in w.nodes[FRIDGE].states


def test_open_needs_a_free_hand(w):
    ok(w, "Walk", COUNTER)
    ok(w, "Grab", PLATE)
    ok(w, "Grab", CUP)
    ok(w, "Walk", FRIDGE)
    ok(w, "SwitchOff", FRIDGE)
    fails(w, "does not have a free hand", "Open", FRIDGE)


def test_switch_preconditions_and_effects(w):
    ok(w, "Walk", TV)
    fails(w, "does not have a switch", "SwitchOn", 33)
    fails(w, "is not on", "SwitchOff", TV)
    diff = ok(w, "SwitchOn", TV)
    assert diff.states_added == ((TV, "ON"),) and diff.states_removed == ((TV, "OFF"),)
    fails(w, "is not off", "SwitchOn", TV)


def test_plug_in_then_switch_on(w):
    ok(w, "Walk", LIGHT)
    fails(w, "is unplugged", "SwitchOn", LIGHT)
    fails(w, "is not plugged in", "PlugOut", LIGHT)
    ok(w, "PlugIn", LIGHT)
    ok(w, "SwitchOn", LIGHT)
    fails(w, "is still on", "PlugOut", LIGHT)  # VirtualHome logs this but unplugs anyway
    ok(w, "SwitchOff", LIGHT)
    ok(w, "PlugOut", LIGHT)
    assert "PLUGGED_OUT" in w.nodes[LIGHT].states


@pytest.mark.parametrize("verb", ["Wash", "Rinse", "Scrub"])
def test_washing_makes_clean(w, verb):
    fails(w, "is not close to", verb, PLATE)
    ok(w, "Walk", PLATE)
    ok(w, verb, PLATE)
    assert "CLEAN" in w.nodes[PLATE].states and "DIRTY" not in w.nodes[PLATE].states


def test_wipe_needs_something_in_hand(w):
    ok(w, "Walk", PLATE)
    fails(w, "does not hold anything", "Wipe", PLATE)
    ok(w, "Grab", KNIFE)
    ok(w, "Wipe", PLATE)
    assert "CLEAN" in w.nodes[PLATE].states


# ---------------------------------------------------------------- posture
def test_sit_faces_what_the_seat_faces_and_standup_leaves_the_seat(w):
    fails(w, "is not close to", "Sit", SOFA)
    ok(w, "Walk", SOFA, char=BOB)
    fails(w, "is not sittable", "Sit", COFFEE_TABLE, char=BOB)
    ok(w, "Sit", SOFA, char=BOB)
    assert w.has_edge(BOB, "ON", SOFA) and w.has_edge(BOB, "FACING", TV) and "SITTING" in w.nodes[BOB].states
    fails(w, "is sitting", "Sit", SOFA, char=BOB)
    ok(w, "[StandUp]", char=BOB)
    assert not w.has_edge(BOB, "ON", SOFA) and "SITTING" not in w.nodes[BOB].states
    fails(w, "is not sitting or lying", "StandUp", char=BOB)


def test_a_chair_seats_one_and_standing_up_frees_it(w):
    ok(w, "Walk", CHAIR, char=BOB)
    ok(w, "Sit", CHAIR, char=BOB)
    ok(w, "Walk", CHAIR)
    fails(w, "no room left on chair (34)", "Sit", CHAIR)
    ok(w, "[StandUp]", char=BOB)
    ok(w, "Sit", CHAIR)  # VirtualHome keeps the first sitter ON the chair forever


def test_lie_sleep_wakeup(w):
    ok(w, "Walk", SOFA, char=BOB)
    fails(w, "is not lying or sitting", "Sleep", char=BOB)
    ok(w, "Lie", SOFA, char=BOB)
    assert "LYING" in w.nodes[BOB].states
    fails(w, "is lying", "Lie", SOFA, char=BOB)
    ok(w, "[Sleep]", char=BOB)
    ok(w, "[WakeUp]", char=BOB)
    ok(w, "[StandUp]", char=BOB)
    assert "LYING" not in w.nodes[BOB].states


# ---------------------------------------------------------------- verbs without effects
def test_drink_needs_a_held_drinkable_or_recipient(w):
    ok(w, "Walk", COUNTER)
    fails(w, "is not holding", "Drink", CUP)
    fails(w, "is not drinkable", "Drink", KNIFE)
    ok(w, "Grab", CUP)
    assert not ok(w, "Drink", CUP), "drinking changes nothing"


def test_eat_read_touch_type(w):
    ok(w, "Walk", COUNTER)
    ok(w, "Eat", APPLE)
    ok(w, "Eat", COUNTER)  # something eatable is on it
    fails(w, "is not eatable", "Eat", KNIFE)
    ok(w, "Touch", KNIFE)
    ok(w, "Walk", NOVEL)
    fails(w, "is not holding", "Read", NOVEL)
    ok(w, "Grab", NOVEL)
    ok(w, "Read", NOVEL)
    fails(w, "is not something to type on", "Type", COFFEE_TABLE)
    ok(w, "Type", REMOTE)


def test_touch_fails_inside_a_closed_container(w):
    ok(w, "Walk", FRIDGE)
    fails(w, "which is closed", "Touch", MILK)


def test_watch_needs_facing_and_same_room(w):
    ok(w, "Walk", SOFA, char=BOB)
    fails(w, "does not face", "Watch", TV, char=BOB)
    ok(w, "Sit", SOFA, char=BOB)
    ok(w, "Watch", TV, char=BOB)
    fails(w, "is not lookable", "Watch", SOFA, char=BOB)
    fails(w, "is not in the same room", "Watch", TV)


def test_push_pull_move(w):
    ok(w, "Walk", COUNTER)
    ok(w, "Push", COUNTER)  # anything can be pushed
    fails(w, "is not movable", "Pull", COUNTER)
    ok(w, "Walk", CHAIR)
    ok(w, "Move", CHAIR)


def test_squeeze_and_cut(w):
    ok(w, "Walk", COUNTER)
    fails(w, "is not squeezable", "Squeeze", PLATE)
    fails(w, "is not holding a knife", "Cut", APPLE)
    ok(w, "Grab", KNIFE)
    ok(w, "Cut", APPLE)
    fails(w, "is not eatable", "Cut", PLATE)


def test_greet_needs_a_person(w):
    fails(w, "is not a person", "Greet", BOB)


# ---------------------------------------------------------------- addressing
def test_unknown_node_and_wrong_class_name_fail_with_a_reason(w):
    result = w.step("[Walk] <plate> (999)")
    assert not result.success and "there is no node 999" in result.reason
    result = w.step("[Walk] <plate> (10)")
    assert not result.success and "node 10 is kitchen_counter" in result.reason


def test_robothow_ids_address_node_ids(w):
    assert w.step("[WALK] <kitchen_counter> (1.10)").success
    assert w.is_close(ALICE, PLATE)


def test_bathroom_is_reachable(w):
    ok(w, "Walk", TOWEL)
    assert w.room_of(ALICE) == BATHROOM
