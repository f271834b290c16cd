"""Macro actions for goal-directed search: the next few script lines toward one unsatisfied fact.

A macro folds navigation into an interaction ("walk to the plate, grab it"; "walk to the fridge,
switch it off, open it"), so the planner searches over a handful of meaningful moves per state
instead of every (verb, object) pair. Macros are proposed only for facts that do not hold yet and
only touch objects the goal names (or that contain, support or are held instead of them), which is
how E2WM restricted MCTS to the program's objects. Every macro returned executes in the current
state (checked by running it and undoing).
"""

from __future__ import annotations

import random

from e2wm.experience.goals import EdgeFact, Fact, Goal, RoomFact, StateFact
from e2wm.world import ScriptLine, World

__all__ = ["Macro", "macro_for_fact", "propose_macros"]

Macro = tuple[ScriptLine, ...]


def _line(world: World, verb: str, *nodes: int) -> ScriptLine:
    return ScriptLine.make(verb, *((world.nodes[n].class_name, n) for n in nodes))


def _posture(world: World, c: int) -> bool:
    states = world.nodes[c].states
    return "SITTING" in states or "LYING" in states


def _go(world: World, c: int, target: int) -> list[ScriptLine]:
    """Lines that bring the character close to ``target`` (standing up first if needed)."""
    if world.is_close(c, target):
        return []
    lines = [_line(world, "StandUp")] if _posture(world, c) else []
    return [*lines, _line(world, "Walk", target)]


def _free_hand(world: World, c: int, keep: set[int]) -> list[list[ScriptLine]]:
    """Ways to free a hand: put something held (not in ``keep`` if possible) on a surface close by."""
    held = world.holding(c)
    order = [h for h in held if h not in keep] + [h for h in held if h in keep]
    options = []
    for obj in order[:2]:
        surfaces = sorted(
            n
            for n in world.targets(c, "CLOSE")
            if n != obj and "SURFACES" in world.nodes[n].properties and n not in held
        )
        if surfaces:
            options.append([_line(world, "PutBack", obj, surfaces[0])])
        else:
            options.append([_line(world, "Drop", obj)])
    return options


def _acquire(world: World, c: int, obj: int, keep: set[int]) -> list[list[ScriptLine]]:
    """Next lines toward holding ``obj``."""
    if world.hand_holding(c, obj):
        return []
    container = world.closed_container_of(obj)
    if container is not None:
        go = _go(world, c, container)
        if "ON" in world.nodes[container].states:
            return [[*go, _line(world, "SwitchOff", container)]]
        if world.free_hand(c) is None:
            return _free_hand(world, c, keep)
        return [[*go, _line(world, "Open", container)]]
    if world.free_hand(c) is None:
        return _free_hand(world, c, keep)
    return [[*_go(world, c, obj), _line(world, "Grab", obj)]]


def _place(world: World, c: int, obj: int, relation: str, dest: int, keep: set[int]) -> list[list[ScriptLine]]:
    """Next lines toward ``obj`` being ``relation`` ``dest`` (ON, INSIDE, or worn ON the character)."""
    if not world.hand_holding(c, obj):
        return _acquire(world, c, obj, keep)
    if dest == c and relation == "ON":
        return [[_line(world, "PutOn", obj)]]
    go = _go(world, c, dest)
    node = world.nodes[dest]
    if relation == "INSIDE":
        if "CAN_OPEN" in node.properties and "OPEN" not in node.states:
            if "ON" in node.states:
                return [[*go, _line(world, "SwitchOff", dest)]]
            if world.free_hand(c) is None:
                return [option for option in _free_hand(world, c, keep | {obj}) if option[0].node_ids[0] != obj]
            return [[*go, _line(world, "Open", dest)]]
        props = world.nodes[obj].properties
        if (
            ("POURABLE" in props or "DRINKABLE" in props)
            and "RECIPIENT" in node.properties
            and "CONTAINERS" not in node.properties
        ):
            return [[*go, _line(world, "Pour", obj, dest)]]
        return [[*go, _line(world, "PutIn", obj, dest)]]
    return [[*go, _line(world, "PutBack", obj, dest)]]


_SWITCH = {"ON": "SwitchOn", "OFF": "SwitchOff", "OPEN": "Open", "CLOSED": "Close", "CLEAN": "Wash"}


def _set_state(world: World, c: int, node: int, state: str, keep: set[int]) -> list[list[ScriptLine]]:
    go = _go(world, c, node)
    states = world.nodes[node].states
    if state == "ON" and "PLUGGED_OUT" in states:
        state = "PLUGGED_IN"
    if state == "OPEN" and "ON" in states:
        return [[*go, _line(world, "SwitchOff", node)]]
    if state == "PLUGGED_OUT" and "ON" in states:
        return [[*go, _line(world, "SwitchOff", node)]]
    if state in ("PLUGGED_IN", "PLUGGED_OUT", "OPEN") and world.free_hand(c) is None:
        return _free_hand(world, c, keep)
    verb = {"PLUGGED_IN": "PlugIn", "PLUGGED_OUT": "PlugOut"}.get(state) or _SWITCH.get(state)
    return [] if verb is None else [[*go, _line(world, verb, node)]]


def _seat(world: World, c: int, seat: int, lying: bool) -> list[list[ScriptLine]]:
    lines = [_line(world, "StandUp")] if _posture(world, c) else []
    if not world.is_close(c, seat):
        lines.append(_line(world, "Walk", seat))
    return [[*lines, _line(world, "Lie" if lying else "Sit", seat)]]


def macro_for_fact(
    world: World, c: int, goal: Goal, fact: Fact, rng: random.Random | None = None
) -> list[list[ScriptLine]]:
    """Candidate next lines toward one unsatisfied fact (not yet checked for executability)."""
    keep = goal.node_ids()
    if isinstance(fact, RoomFact):
        lines = [_line(world, "StandUp")] if _posture(world, fact.node) else []
        return [[*lines, _line(world, "Walk", fact.room)]]
    if isinstance(fact, StateFact):
        if fact.node == c and fact.state in ("SITTING", "LYING"):
            seats = [f.target for f in goal.facts if isinstance(f, EdgeFact) and f.node == c and f.relation == "ON"]
            if seats:
                return []  # the ON fact says where: its macro does it
            prop = "LIEABLE" if fact.state == "LYING" else "SITTABLE"
            room = world.room_of(c)
            options = sorted(n for n in world.nodes if prop in world.nodes[n].properties and world.room_of(n) == room)
            return [m for seat in options[:2] for m in _seat(world, c, seat, fact.state == "LYING")]
        return _set_state(world, c, fact.node, fact.state, keep)
    if isinstance(fact, EdgeFact):
        if fact.relation == "HOLDS":
            return _acquire(world, c, fact.node, keep)
        if fact.node == c and fact.relation == "ON":
            lying = any(isinstance(f, StateFact) and f.node == c and f.state == "LYING" for f in goal.facts)
            return _seat(world, c, fact.target, lying)
        return _place(world, c, fact.node, fact.relation, fact.target, keep)
    # CountFact: move more objects of the class there; held ones first, then the nearest few.
    there = set(fact.matching(world))
    candidates = [n for n in world.nodes_of_class(fact.class_name) if n not in there]
    room = world.room_of(c)
    candidates.sort(key=lambda n: (not world.hand_holding(c, n), world.room_of(n) != room, n))
    macros = []
    for obj in candidates[:3]:
        macros += _place(world, c, obj, fact.relation, fact.target, keep | set(candidates[:3]))
    return macros


def _ready(world: World, c: int, goal: Goal, facts: list[Fact]) -> list[Fact]:
    """The facts worth working on now: finishing touches wait for the facts they would block.

    A container is switched on or closed only once nothing more must go in or come out of it. Facts
    about how the character ends wait for the rest, in this order: what it holds (hands are needed
    to work), then its room, then sitting or lying (on something).
    """
    needs_open: set[int] = set()
    for fact in facts:
        if isinstance(fact, EdgeFact) and fact.relation == "INSIDE":
            needs_open.add(fact.target)
        if isinstance(fact, EdgeFact) and fact.node != c:
            container = world.closed_container_of(fact.node)
            if container is not None:
                needs_open.add(container)
    waiting = [
        f for f in facts if not (isinstance(f, StateFact) and f.state in ("ON", "CLOSED") and f.node in needs_open)
    ] or facts
    first = min(_finish_level(f, c) for f in waiting)
    return [f for f in waiting if _finish_level(f, c) == first]


def _finish_level(fact: Fact, c: int) -> int:
    """0 for facts about the world; 1 holding, 2 the character's room, 3 sitting or lying."""
    if isinstance(fact, EdgeFact) and fact.relation == "HOLDS" and fact.target == c:
        return 1
    if isinstance(fact, RoomFact) and fact.node == c:
        return 2
    if isinstance(fact, StateFact) and fact.node == c and fact.state in ("SITTING", "LYING"):
        return 3
    if isinstance(fact, EdgeFact) and fact.node == c and fact.relation == "ON":
        return 3
    return 0


def _executes(world: World, c: int, lines: list[ScriptLine]) -> bool:
    snap = world.snapshot()
    try:
        return all(world.step(line, c, diff=False).success for line in lines)
    finally:
        world.restore(snap)


def propose_macros(
    world: World, c: int, goal: Goal, rng: random.Random | None = None, limit_facts: int | None = None
) -> list[Macro]:
    """Executable macros toward the goal's unsatisfied facts, de-duplicated, in a stable order.

    ``limit_facts`` (with ``rng``) samples that many unsatisfied facts instead of all of them, for
    cheap rollouts.
    """
    facts = _ready(world, c, goal, goal.unsatisfied(world))
    if limit_facts is not None and rng is not None and len(facts) > limit_facts:
        facts = rng.sample(facts, limit_facts)
    seen: dict[Macro, None] = {}
    for fact in facts:
        for lines in macro_for_fact(world, c, goal, fact, rng):
            macro = tuple(lines)
            if macro and macro not in seen and _executes(world, c, lines):
                seen[macro] = None
    return list(seen)
