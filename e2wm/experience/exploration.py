"""Random exploration with object tracking: characters take random valid actions, and the location
of every object that moves is recorded over time.

Each step, the next character (round robin) draws a verb among those it can execute now, with
``ExplorationConfig.verb_weights`` (carrying things around is favoured over switching lights), then a
line of that verb uniformly. Characters carry props (not furniture) and put them on or in furniture
(not on other props). Every step's diff is kept, and each moved object gets a track: its
location (``ON``/``INSIDE`` a support, held ``HOLDS_RH``/``HOLDS_LH`` by a character, or just in a
room) and its room, before it first moved and after every step that changed either.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from e2wm.world import Diff, ScriptLine, StepResult, World
from e2wm.world.actions import valid_lines

__all__ = ["Exploration", "ExplorationConfig", "Location", "explore", "location"]

_DEFAULT_WEIGHTS = {
    "Walk": 2.0,
    "Grab": 3.0,
    "PutBack": 3.0,
    "PutIn": 2.0,
    "Open": 0.6,
    "Close": 0.6,
    "SwitchOn": 0.3,
    "SwitchOff": 0.3,
}


@dataclass(frozen=True)
class ExplorationConfig:
    """How long and how characters explore."""

    steps: int = 30
    characters: int | None = None  # how many characters act (None: every character of the scene)
    verb_weights: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_WEIGHTS))

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"ExplorationConfig.steps must be at least 1, got {self.steps}")
        if self.characters is not None and self.characters < 1:
            raise ValueError(f"ExplorationConfig.characters must be at least 1 (or None), got {self.characters}")
        if not self.verb_weights or any(w < 0 for w in self.verb_weights.values()):
            raise ValueError("ExplorationConfig.verb_weights must map verbs to non-negative weights")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Location:
    """Where an object is after ``step`` (0: before the first step)."""

    step: int
    relation: str | None  # ON, INSIDE, HOLDS_RH, HOLDS_LH, or None (only in a room)
    support: int | None  # what it is on or in, or the character holding it
    room: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def location(world: World, node: int, step: int) -> Location:
    where = world.location_of(node)
    return Location(step, where[0] if where else None, where[1] if where else None, world.room_of(node))


@dataclass
class Exploration:
    """The steps taken (with their diffs) and the tracks of every object that moved."""

    characters: list[int]
    steps: list[StepResult]
    tracks: dict[int, list[Location]]


def _moved(diff: Diff, world: World) -> set[int]:
    """Objects whose location or room the step changed."""
    moved = set()
    for frm, rel, to in diff.edges_added + diff.edges_removed:
        if rel in ("ON", "INSIDE"):
            moved.add(frm)
        elif rel in ("HOLDS_RH", "HOLDS_LH"):
            moved.add(to)
    return {n for n in moved if world.nodes[n].class_name != "character" and n not in world.rooms}


def _before(world: World, node: int, diff: Diff, step: int) -> Location:
    """Where ``node`` was before the step whose ``diff`` moved it (read back from the diff)."""
    found: dict[str, int] = {}
    room = world.room_of(node)
    for frm, rel, to in diff.edges_removed:
        if frm == node and rel in ("ON", "INSIDE"):
            if to in world.rooms:
                room = to
            else:
                found[rel] = to
        elif to == node and rel in ("HOLDS_RH", "HOLDS_LH"):
            found[rel] = frm
    for rel in ("HOLDS_RH", "HOLDS_LH", "ON", "INSIDE"):  # the precedence of World.location_of
        if rel in found:
            return Location(step, rel, found[rel], room)
    return Location(step, None, None, room)


def _sensible(world: World, line: ScriptLine) -> bool:
    """Carry props, not furniture; put them on or in furniture, not on other props."""
    if line.verb == "Grab":
        return world.nodes[line.node_ids[0]].category != "Furniture"
    if line.verb in ("PutBack", "PutIn"):
        return "GRABBABLE" not in world.nodes[line.node_ids[1]].properties
    return True


def explore(world: World, config: ExplorationConfig, rng: random.Random) -> Exploration:
    """Explore from the world's current state (the world is changed: pass a copy to keep it)."""
    characters = list(world.characters[: config.characters] if config.characters else world.characters)
    if not characters:
        raise ValueError("the scene has no character to explore with")
    weights = config.verb_weights
    steps: list[StepResult] = []
    tracks: dict[int, list[Location]] = {}
    for index in range(config.steps):
        char = characters[index % len(characters)]
        by_verb: dict[str, list[Any]] = {}
        for line in valid_lines(world, char, verbs=weights):
            if _sensible(world, line):
                by_verb.setdefault(line.verb, []).append(line)
        verbs = sorted(v for v in by_verb if weights.get(v, 0) > 0)
        if not verbs:
            break
        verb = rng.choices(verbs, [weights[v] for v in verbs])[0]
        result = world.step(rng.choice(by_verb[verb]), char)
        steps.append(result)
        for node in sorted(_moved(result.diff, world)):
            if node not in tracks:
                tracks[node] = [_before(world, node, result.diff, index)]
            now = location(world, node, index + 1)
            last = tracks[node][-1]
            if (now.relation, now.support, now.room) != (last.relation, last.support, last.room):
                tracks[node].append(now)
    return Exploration(characters, steps, tracks)
