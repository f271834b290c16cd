"""Which script lines a character can execute now: the action space of planners and explorers.

Candidates are built from the graph (walk to rooms and objects; grab what is close; put what is held
on close surfaces or into close containers; open, close and switch what is close) and kept only if the
world's own preconditions accept them, so every returned line executes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from e2wm.world.script import ScriptLine
from e2wm.world.state import World

__all__ = ["EXPLORATION_VERBS", "candidate_lines", "valid_lines"]

#: Verbs with effects that explorers and planners use by default.
EXPLORATION_VERBS = ("Walk", "Grab", "PutBack", "PutIn", "Open", "Close", "SwitchOn", "SwitchOff")


def _line(world: World, verb: str, *nodes: int) -> ScriptLine:
    return ScriptLine.make(verb, *((world.nodes[n].class_name, n) for n in nodes))


def _nearby(world: World, character: int) -> Iterator[int]:
    """Nodes the character may reach without walking (a superset; preconditions decide)."""
    seen: set[int] = set()
    for near in world.targets(character, "CLOSE"):
        for node in (near, *world.targets(near, "CLOSE"), *world.sources(near, "ON")):
            if node not in seen and node != character:
                seen.add(node)
                yield node


def candidate_lines(world: World, character: int, verbs: Iterable[str] = EXPLORATION_VERBS) -> Iterator[ScriptLine]:
    """Lines worth checking for ``character`` (not all of them execute)."""
    verbs = set(verbs)
    nodes = world.nodes
    if "Walk" in verbs:
        for node_id, node in nodes.items():
            if node_id != character and node.category not in ("Characters", "Doors", "Floor", "Walls", "Ceiling"):
                yield _line(world, "Walk", node_id)
    near = sorted(_nearby(world, character))
    held = world.holding(character)
    for node_id in near:
        props = nodes[node_id].properties
        if "Grab" in verbs and "GRABBABLE" in props and node_id not in held:
            yield _line(world, "Grab", node_id)
        if "CAN_OPEN" in props:
            if "Open" in verbs:
                yield _line(world, "Open", node_id)
            if "Close" in verbs:
                yield _line(world, "Close", node_id)
        if "HAS_SWITCH" in props:
            if "SwitchOn" in verbs:
                yield _line(world, "SwitchOn", node_id)
            if "SwitchOff" in verbs:
                yield _line(world, "SwitchOff", node_id)
        for obj in held:
            if obj == node_id:
                continue
            if "PutBack" in verbs and "SURFACES" in props:
                yield _line(world, "PutBack", obj, node_id)
            if "PutIn" in verbs and "CONTAINERS" in props:
                yield _line(world, "PutIn", obj, node_id)


def valid_lines(
    world: World, character: int | None = None, verbs: Iterable[str] = EXPLORATION_VERBS
) -> list[ScriptLine]:
    """Every candidate line that executes now for ``character`` (default: the first character)."""
    char = world.character() if character is None else character
    return [line for line in candidate_lines(world, char, verbs) if world.check(line, char) is None]
