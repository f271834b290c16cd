"""Goals: sets of facts about a world that a plan should make true, with an activity name.

Four kinds of fact:

* :class:`StateFact` ``(node, state)``: the TV is ON, the fridge is CLOSED, the character is SITTING;
* :class:`EdgeFact` ``(node, relation, target)``: the plate is ON the table, the milk INSIDE the
  fridge, the character HOLDS the cup (either hand: ``relation="HOLDS"``);
* :class:`RoomFact` ``(node, room)``: the character is in the bedroom;
* :class:`CountFact` ``(class_name, relation, target, count)``: at least 2 plates ON the kitchen table.

A goal is satisfied when all its facts hold. Its *progress* counts satisfied units (a count fact
contributes ``min(count held, count wanted)``), its *distance* the missing units: the planner's
reward shaping (+2 per unit reached, −1.5 per unit undone) reads these.

Goals come from RobotHow programs (:func:`goal_from_graphs`: what changed between a program's initial
and final graph, with the program's title as activity) or are sampled on generated scenes
(:func:`sample_goal`: household activities whose facts are achievable in that scene).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from e2wm.world import World

__all__ = [
    "CountFact",
    "EdgeFact",
    "Fact",
    "Goal",
    "RoomFact",
    "StateFact",
    "goal_from_graphs",
    "sample_goal",
]

HANDS = ("HOLDS_RH", "HOLDS_LH")


@dataclass(frozen=True)
class StateFact:
    node: int
    state: str

    def units(self, world: World) -> tuple[int, int]:
        """(units held, units wanted)."""
        return int(self.state in world.nodes[self.node].states), 1

    def describe(self, world: World) -> str:
        return f"{world.nodes[self.node].name} is {self.state.lower().replace('_', ' ')}"


@dataclass(frozen=True)
class EdgeFact:
    node: int
    relation: str  # ON, INSIDE, or HOLDS (either hand)
    target: int

    def units(self, world: World) -> tuple[int, int]:
        if self.relation == "HOLDS":
            held = any(world.has_edge(self.target, hand, self.node) for hand in HANDS)
            return int(held), 1
        return int(world.has_edge(self.node, self.relation, self.target)), 1

    def describe(self, world: World) -> str:
        a, b = world.nodes[self.node].name, world.nodes[self.target].name
        if self.relation == "HOLDS":
            return f"{b} holds the {a}"
        return f"the {a} is {'on' if self.relation == 'ON' else 'inside'} the {b}"


@dataclass(frozen=True)
class RoomFact:
    node: int
    room: int

    def units(self, world: World) -> tuple[int, int]:
        return int(world.room_of(self.node) == self.room), 1

    def describe(self, world: World) -> str:
        return f"{world.nodes[self.node].name} is in the {world.nodes[self.room].name}"


@dataclass(frozen=True)
class CountFact:
    class_name: str
    relation: str  # ON or INSIDE
    target: int
    count: int

    def matching(self, world: World) -> list[int]:
        """Nodes of the class that are ``relation`` the target now."""
        return [n for n in world.sources(self.target, self.relation) if world.nodes[n].class_name == self.class_name]

    def units(self, world: World) -> tuple[int, int]:
        return min(len(self.matching(world)), self.count), self.count

    def describe(self, world: World) -> str:
        where = "on" if self.relation == "ON" else "inside"
        name = self.class_name.replace("_", " ")
        return f"{self.count} {name}{'s' if self.count > 1 else ''} {where} the {world.nodes[self.target].name}"


Fact = StateFact | EdgeFact | RoomFact | CountFact
_KINDS: dict[str, type] = {"state": StateFact, "edge": EdgeFact, "room": RoomFact, "count": CountFact}
_KIND_OF = {cls: name for name, cls in _KINDS.items()}


@dataclass(frozen=True)
class Goal:
    """An activity name and the facts that achieve it (all must hold)."""

    activity: str
    facts: tuple[Fact, ...]
    character: int | None = None  # the acting character (facts about "the character" name it)

    def progress(self, world: World) -> int:
        """Satisfied units (see the module docstring)."""
        return sum(fact.units(world)[0] for fact in self.facts)

    def size(self) -> int:
        return sum(fact.count if isinstance(fact, CountFact) else 1 for fact in self.facts)

    def distance(self, world: World) -> int:
        """Missing units: 0 when satisfied."""
        return self.size() - self.progress(world)

    def satisfied(self, world: World) -> bool:
        return all(held == wanted for held, wanted in (fact.units(world) for fact in self.facts))

    def unsatisfied(self, world: World) -> list[Fact]:
        return [fact for fact in self.facts if fact.units(world)[0] < fact.units(world)[1]]

    def describe(self, world: World) -> list[str]:
        return [fact.describe(world) for fact in self.facts]

    def node_ids(self) -> set[int]:
        """Nodes the facts name (not the classes of count facts)."""
        ids: set[int] = set()
        for fact in self.facts:
            for attr in ("node", "target", "room"):
                value = getattr(fact, attr, None)
                if value is not None:
                    ids.add(value)
        return ids

    def to_dict(self) -> dict[str, Any]:
        return {
            "activity": self.activity,
            "character": self.character,
            "facts": [{"kind": _KIND_OF[type(f)], **f.__dict__} for f in self.facts],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Goal:
        facts = []
        for raw in data["facts"]:
            fields = dict(raw)
            kind = fields.pop("kind")
            facts.append(_KINDS[kind](**fields))
        return cls(data["activity"], tuple(facts), data.get("character"))


# ---------------------------------------------------------------------- RobotHow goals
_PRODUCIBLE = frozenset({"ON", "OFF", "OPEN", "CLOSED", "CLEAN", "PLUGGED_IN", "PLUGGED_OUT", "SITTING", "LYING"})


def goal_from_graphs(activity: str, init_graph: dict[str, Any], final_graph: dict[str, Any]) -> Goal:
    """The goal of a RobotHow program: what its final graph has that its initial graph lacks.

    New node states, new ON / INSIDE (not rooms) / HOLDS edges (held in either hand), and the
    character's room if it changed. States that no verb can produce (e.g. DIRTY) are left out.
    Works on the graph dicts directly (no world is built: RobotHow graphs are large).
    """
    rooms = {n["id"] for n in final_graph["nodes"] if n.get("category") == "Rooms"}
    characters = sorted(n["id"] for n in final_graph["nodes"] if n["class_name"] == "character")
    if not characters:
        raise ValueError("the final graph has no character")
    character = characters[0]
    old_states = {n["id"]: {s.upper() for s in n.get("states", [])} for n in init_graph["nodes"]}
    facts: list[Fact] = []
    for node in final_graph["nodes"]:
        before = old_states.get(node["id"], set())
        for state in node.get("states", []):
            state = state.upper()
            if state in _PRODUCIBLE and state not in before:
                facts.append(StateFact(node["id"], state))

    def edge_set(graph: dict[str, Any]) -> set[tuple[int, str, int]]:
        wanted = {"ON", "INSIDE", "HOLDS_RH", "HOLDS_LH"}
        return {
            (e["from_id"], rel, e["to_id"])
            for e in graph["edges"]
            if (rel := str(e["relation_type"]).upper()) in wanted
        }

    old_edges, new_edges = edge_set(init_graph), edge_set(final_graph)
    old_held = {(to, frm) for frm, rel, to in old_edges if rel in HANDS}
    for frm, rel, to in sorted(new_edges - old_edges):
        if rel == "INSIDE" and to in rooms:
            continue
        if rel in HANDS:
            if (to, frm) not in old_held:
                facts.append(EdgeFact(to, "HOLDS", frm))
        else:
            facts.append(EdgeFact(frm, rel, to))

    def room(edges: set[tuple[int, str, int]]) -> int | None:
        return next(
            (to for frm, rel, to in sorted(edges) if frm == character and rel == "INSIDE" and to in rooms), None
        )

    final_room = room(new_edges)
    if final_room is not None and final_room != room(old_edges):
        facts.append(RoomFact(character, final_room))
    return Goal(activity, tuple(dict.fromkeys(facts)), character)


# ---------------------------------------------------------------------- goals on generated scenes
@dataclass(frozen=True)
class _Template:
    """An activity whose facts are built from what the scene has (None when it has not)."""

    activity: str
    build: Callable[[World, int, random.Random], list[Fact] | None]


def _pick(world: World, rng: random.Random, classes: Sequence[str], room: str | None = None) -> int | None:
    options = [
        n.id
        for n in world.nodes.values()
        if n.class_name in classes and (room is None or world.nodes[world.room_of(n.id) or n.id].class_name == room)
    ]
    return rng.choice(sorted(options)) if options else None


def _count_on(
    world: World, rng: random.Random, item: str, surfaces: Sequence[str], relation: str = "ON", most: int = 3
) -> list[Fact] | None:
    target = _pick(world, rng, surfaces)
    available = len(world.nodes_of_class(item))
    if target is None or available == 0:
        return None
    already = sum(1 for n in world.sources(target, relation) if world.nodes[n].class_name == item)
    top = min(most, available)
    if top <= already:
        return None
    return [CountFact(item, relation, target, rng.randint(already + 1, top))]


def _state(world: World, rng: random.Random, classes: Sequence[str], state: str) -> list[Fact] | None:
    node = _pick(world, rng, [c for c in classes if c in {n.class_name for n in world.nodes.values()}])
    if node is None or state in world.nodes[node].states:
        return None
    return [StateFact(node, state)]


def _watch_tv(world: World, char: int, rng: random.Random) -> list[Fact] | None:
    tv, sofa = _pick(world, rng, ["television"]), _pick(world, rng, ["sofa"], "living_room")
    if tv is None or sofa is None:
        return None
    facts: list[Fact] = [StateFact(char, "SITTING"), EdgeFact(char, "ON", sofa)]
    if "ON" not in world.nodes[tv].states:
        facts.insert(0, StateFact(tv, "ON"))
    return facts


def _put_away(world: World, rng: random.Random, item: str, containers: Sequence[str]) -> list[Fact] | None:
    container = _pick(world, rng, containers)
    things = [n for n in world.nodes_of_class(item) if not world.has_edge(n, "INSIDE", container or -1)]
    if container is None or not things:
        return None
    facts: list[Fact] = [EdgeFact(rng.choice(sorted(things)), "INSIDE", container)]
    if "CAN_OPEN" in world.nodes[container].properties:
        facts.append(StateFact(container, "CLOSED"))
    return facts


def _carry(world: World, rng: random.Random, items: Sequence[str], surfaces: Sequence[str]) -> list[Fact] | None:
    item, surface = _pick(world, rng, items), _pick(world, rng, surfaces)
    if item is None or surface is None or world.has_edge(item, "ON", surface):
        return None
    return [EdgeFact(item, "ON", surface)]


def _read(world: World, char: int, rng: random.Random) -> list[Fact] | None:
    book, seat = _pick(world, rng, ["novel", "magazine", "newspaper"]), _pick(world, rng, ["sofa", "chair", "bed"])
    if book is None or seat is None:
        return None
    return [EdgeFact(book, "HOLDS", char), StateFact(char, "SITTING"), EdgeFact(char, "ON", seat)]


def _sleep(world: World, char: int, rng: random.Random) -> list[Fact] | None:
    bed = _pick(world, rng, ["bed"])
    return None if bed is None else [StateFact(char, "LYING"), EdgeFact(char, "ON", bed)]


TEMPLATES: tuple[_Template, ...] = (
    _Template("set up the table", lambda w, c, r: _count_on(w, r, r.choice(["plate", "cup", "fork", "bowl"]), ["table"])),
    _Template("put the dishes on the counter", lambda w, c, r: _count_on(w, r, r.choice(["plate", "bowl", "cup"]), ["kitchen_counter"])),
    _Template("watch TV", _watch_tv),
    _Template("turn on the light", lambda w, c, r: _state(w, r, ["light", "lamp", "floor_lamp"], "ON")),
    _Template("put away the dishes", lambda w, c, r: _put_away(w, r, r.choice(["plate", "cup", "bowl", "mug"]), ["dishwasher", "kitchen_cabinet", "cupboard"])),
    _Template("put groceries in the fridge", lambda w, c, r: _put_away(w, r, r.choice(["milk", "juice", "food_cheese", "food_egg", "food_apple"]), ["fridge"])),
    _Template("put away the clothes", lambda w, c, r: _put_away(w, r, r.choice(["clothes_shirt", "clothes_pants", "clothes_socks"]), ["closet", "dresser"])),
    _Template("wash the dishes", lambda w, c, r: _state(w, r, ["plate", "cup", "bowl", "mug", "fork", "spoon"], "CLEAN")),
    _Template("read a book", _read),
    _Template("go to sleep", _sleep),
    _Template("make coffee", lambda w, c, r: _state(w, r, ["coffe_maker"], "ON")),
    _Template("take a towel to the bathroom", lambda w, c, r: _carry(w, r, ["towel"], ["towel_rack", "bathroom_counter"])),
    _Template("bring a book to the bedroom", lambda w, c, r: _carry(w, r, ["novel", "magazine"], ["nightstand"])),
)  # fmt: skip


def sample_goal(world: World, rng: random.Random, character: int | None = None, tries: int = 50) -> Goal | None:
    """A household activity achievable in this scene, its facts not already true (None if none fits).

    Facts only name objects the scene has, and counts never exceed how many of the class exist.
    """
    char = world.character() if character is None else character
    for _ in range(tries):
        template = rng.choice(TEMPLATES)
        facts = template.build(world, char, rng)
        if facts:
            goal = Goal(template.activity, tuple(facts), char)
            if not goal.satisfied(world):
                return goal
    return None
