"""The world state: a VirtualHome graph held as adjacency sets, changed in place, undone by a journal.

Search (MCTS, random exploration) needs many ``step -> look -> undo`` cycles, so nothing here copies the
graph per step. Every change goes through four journaled primitives (add/remove an edge, add/remove a
node state) plus the "grabbed from" memory that ``[PutObjBack]`` needs; :meth:`World.snapshot` is the
journal length and :meth:`World.restore` replays the journal backwards: O(changes), not O(graph).

Invariant kept by every verb (and checked by the tests): each non-room node that is in a room has exactly
one ``INSIDE`` edge to a room node, and it is the room its containment says: a carried object is in its
carrier's room, an object on or in furniture is in the furniture's room.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2wm.world.graph import RELATIONS, Node, parse_graph, read_graph_json
from e2wm.world.script import ScriptLine, parse_script_line
from e2wm.world.verbs import VERBS, StepFailure

__all__ = ["HANDS", "Diff", "Snapshot", "StepResult", "World"]

HANDS = ("HOLDS_RH", "HOLDS_LH")
_EDGE_ADD, _EDGE_DEL, _STATE_ADD, _STATE_DEL, _ORIGIN = range(5)

Edge = tuple[int, str, int]


@dataclass(frozen=True)
class Diff:
    """What one step (or any stretch of steps) changed; sorted, so equal diffs compare equal."""

    edges_added: tuple[Edge, ...] = ()
    edges_removed: tuple[Edge, ...] = ()
    states_added: tuple[tuple[int, str], ...] = ()
    states_removed: tuple[tuple[int, str], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.edges_added or self.edges_removed or self.states_added or self.states_removed)

    def to_dict(self) -> dict[str, list[list[Any]]]:
        return {
            "edges_added": [list(e) for e in self.edges_added],
            "edges_removed": [list(e) for e in self.edges_removed],
            "states_added": [list(s) for s in self.states_added],
            "states_removed": [list(s) for s in self.states_removed],
        }


@dataclass(frozen=True)
class StepResult:
    """The outcome of one script line: success, a readable reason on failure, and the diff it made."""

    line: ScriptLine
    success: bool
    reason: str | None = None
    diff: Diff = field(default_factory=Diff)
    character: int | None = None  # node id of the acting character

    def __bool__(self) -> bool:
        return self.success


@dataclass(frozen=True)
class Snapshot:
    """A point to :meth:`World.restore` to (valid until :meth:`World.commit`)."""

    generation: int
    position: int


class World:
    """A household in VirtualHome semantics: load a graph, :meth:`step` script lines, undo, write JSON.

    >>> world = World.from_json("scene.json")
    >>> world.step("[Walk] <kitchen> (11)").success
    True
    >>> snap = world.snapshot(); world.step("[Grab] <cup> (12)"); world.restore(snap)
    """

    def __init__(self, nodes: Iterable[Node], edges: Iterable[Edge] = ()):
        self.nodes: dict[int, Node] = {}
        for node in nodes:
            self.nodes[node.id] = node
        self._out: dict[str, dict[int, set[int]]] = {rel: {} for rel in RELATIONS}
        self._in: dict[str, dict[int, set[int]]] = {rel: {} for rel in RELATIONS}
        for frm, rel, to in edges:
            self._out[rel].setdefault(frm, set()).add(to)
            self._in[rel].setdefault(to, set()).add(frm)
        self.rooms: frozenset[int] = frozenset(n.id for n in self.nodes.values() if n.is_room)
        self.characters: tuple[int, ...] = tuple(
            sorted(n.id for n in self.nodes.values() if n.class_name == "character")
        )
        self.body_parts: tuple[int, ...] = tuple(
            sorted(n.id for n in self.nodes.values() if "BODY_PART" in n.properties)
        )
        self._journal: list[tuple[int, Any, Any, Any]] = []
        self._generation = 0
        # object -> (node, relation, room) it was grabbed from, for [PutObjBack]
        self.grab_origin: dict[int, tuple[int, str, int | None]] = {}

    # ------------------------------------------------------------------ construction and output
    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> World:
        """Build a world from a VirtualHome graph dict (validated: see :func:`parse_graph`)."""
        nodes, edges = parse_graph(data, source)
        return cls(nodes, edges)

    @classmethod
    def from_json(cls, path: str | Path) -> World:
        """Read a VirtualHome graph JSON file (or a RobotHow ``{"init_graph", ...}`` file)."""
        return cls.from_dict(read_graph_json(path), source=str(path))

    def copy(self) -> World:
        """An independent world in the same state (the undo journal is not copied)."""
        world = World.__new__(World)
        world.nodes = {i: n.copy() for i, n in self.nodes.items()}
        world._out = {rel: {k: set(v) for k, v in adj.items() if v} for rel, adj in self._out.items()}
        world._in = {rel: {k: set(v) for k, v in adj.items() if v} for rel, adj in self._in.items()}
        world.rooms, world.characters, world.body_parts = self.rooms, self.characters, self.body_parts
        world._journal, world._generation = [], 0
        world.grab_origin = dict(self.grab_origin)
        return world

    def edges(self, relations: Iterable[str] = RELATIONS) -> Iterator[Edge]:
        """All edges of the given relations, in a deterministic order."""
        for rel in relations:
            adj = self._out[rel]
            for frm in sorted(adj):
                for to in sorted(adj[frm]):
                    yield frm, rel, to

    def to_dict(self) -> dict[str, Any]:
        """The graph in VirtualHome JSON form (nodes in load order, edges grouped by relation)."""
        return {
            "nodes": [n.to_dict() for n in self.nodes.values()],
            "edges": [{"from_id": f, "relation_type": r, "to_id": t} for f, r, t in self.edges()],
        }

    def write_json(self, path: str | Path) -> None:
        """Write the graph as JSON, atomically (a complete file or none)."""
        from e2wm.utils import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict()))

    # ------------------------------------------------------------------ queries
    def node(self, node_id: int) -> Node:
        return self.nodes[node_id]

    def describe(self, node_id: int) -> str:
        """``plate (54)``: how reasons and messages name a node."""
        node = self.nodes.get(node_id)
        return f"{node.class_name} ({node_id})" if node is not None else f"node {node_id}"

    def targets(self, node_id: int, relation: str) -> set[int]:
        """Nodes ``t`` with an edge ``node_id -relation-> t`` (do not mutate the returned set)."""
        return self._out[relation].get(node_id) or set()

    def sources(self, node_id: int, relation: str) -> set[int]:
        """Nodes ``s`` with an edge ``s -relation-> node_id`` (do not mutate the returned set)."""
        return self._in[relation].get(node_id) or set()

    def has_edge(self, frm: int, relation: str, to: int) -> bool:
        targets = self._out[relation].get(frm)
        return targets is not None and to in targets

    def has_state(self, node_id: int, state: str) -> bool:
        return state in self.nodes[node_id].states

    def room_of(self, node_id: int) -> int | None:
        """The room a node is in (a room is its own room); ``None`` when it is in no room.

        Its INSIDE edge to a room if it has one; otherwise the room of what holds, supports or
        contains it (graphs written by e2wm always have the edge).
        """
        rooms, inside_of, on_of = self.rooms, self._out["INSIDE"], self._out["ON"]
        current, seen = node_id, set()
        while current not in seen:
            if current in rooms:
                return current
            seen.add(current)
            inside = inside_of.get(current) or set()
            for target in inside:
                if target in rooms:
                    return target
            holder = self.holder_of(current)
            if holder is not None:
                current = holder[0]
                continue
            support = on_of.get(current) or inside
            if not support:
                return None
            current = min(support)
        return None

    def holder_of(self, node_id: int) -> tuple[int, str] | None:
        """``(character, hand)`` holding the node, or None."""
        for hand in HANDS:
            holders = self._in[hand].get(node_id)
            if holders:
                return min(holders), hand
        return None

    def holding(self, character: int) -> list[int]:
        """What the character holds, right hand first."""
        return [obj for hand in HANDS for obj in sorted(self.targets(character, hand))]

    def hand_holding(self, character: int, node_id: int) -> str | None:
        for hand in HANDS:
            if self.has_edge(character, hand, node_id):
                return hand
        return None

    def free_hand(self, character: int) -> str | None:
        """``HOLDS_RH`` if the right hand is free, else ``HOLDS_LH`` if the left is, else None."""
        for hand in HANDS:
            if not self._out[hand].get(character):
                return hand
        return None

    def is_close(self, character: int, node_id: int) -> bool:
        """VirtualHome's closeness: CLOSE to the node, to something CLOSE to it, or to what it is ON."""
        close = self._out["CLOSE"].get(character)
        if not close:
            return False
        if node_id in close:
            return True
        near = self._in["CLOSE"].get(node_id)
        if near and not close.isdisjoint(near):
            return True
        supports = self._out["ON"].get(node_id)
        return supports is not None and not close.isdisjoint(supports)

    def is_facing(self, character: int, node_id: int) -> bool:
        """Facing the node, or facing something that faces it (VirtualHome's rule)."""
        facing = self._out["FACING"].get(character)
        if not facing:
            return False
        if node_id in facing:
            return True
        faced_by = self._in["FACING"].get(node_id)
        return faced_by is not None and not facing.isdisjoint(faced_by)

    def closed_container_of(self, node_id: int) -> int | None:
        """A non-room node that the node is INSIDE and that is CLOSED, if any."""
        for container in sorted(self.targets(node_id, "INSIDE")):
            if container not in self.rooms and "CLOSED" in self.nodes[container].states:
                return container
        return None

    def location_of(self, node_id: int) -> tuple[str, int] | None:
        """Where an object is: ``("ON", table)``, ``("INSIDE", fridge)``, ``("HOLDS_RH", character)``…

        The first of: held by a character, on something, inside a non-room node; None if only in a room.
        """
        holder = self.holder_of(node_id)
        if holder is not None:
            return holder[1], holder[0]
        supports = self._out["ON"].get(node_id)
        if supports:
            return "ON", min(supports)
        for container in sorted(self.targets(node_id, "INSIDE")):
            if container not in self.rooms:
                return "INSIDE", container
        return None

    def room_violations(self) -> list[str]:
        """Where the room invariant does not hold, in words (empty when it holds everywhere).

        Every non-room node has at most one INSIDE edge to a room; a held object is in its holder's
        room; an object on or in something (not a room) is in that thing's room.
        """
        problems = []
        for node_id in self.nodes:
            if node_id in self.rooms:
                continue
            rooms = sorted(r for r in self.targets(node_id, "INSIDE") if r in self.rooms)
            if len(rooms) > 1:
                problems.append(f"{self.describe(node_id)} is INSIDE {len(rooms)} rooms")
                continue
            room = rooms[0] if rooms else None
            location = self.location_of(node_id)
            if location is not None:
                expected = self.room_of(location[1])
                if expected != room:
                    where = "held by" if location[0].startswith("HOLDS") else location[0].lower()
                    problems.append(
                        f"{self.describe(node_id)} is {where} {self.describe(location[1])} in "
                        f"{self.describe(expected) if expected else 'no room'} but INSIDE "
                        f"{self.describe(room) if room else 'no room'}"
                    )
        return problems

    def nodes_of_class(self, class_name: str) -> list[int]:
        return [n.id for n in self.nodes.values() if n.class_name == class_name]

    def character(self, index: int | None = None) -> int:
        """The node id of character ``index`` (characters are ordered by node id), default the first."""
        if not self.characters:
            raise ValueError("the graph has no character (a node with class_name 'character')")
        index = 0 if index is None else index
        if not 0 <= index < len(self.characters):
            raise ValueError(f"there is no character {index}: the graph has {len(self.characters)}")
        return self.characters[index]

    # ------------------------------------------------------------------ journaled primitives
    def add_edge(self, frm: int, relation: str, to: int) -> None:
        targets = self._out[relation].setdefault(frm, set())
        if to in targets:
            return
        targets.add(to)
        self._in[relation].setdefault(to, set()).add(frm)
        self._journal.append((_EDGE_ADD, frm, relation, to))

    def remove_edge(self, frm: int, relation: str, to: int) -> None:
        targets = self._out[relation].get(frm)
        if targets is None or to not in targets:
            return
        targets.discard(to)
        self._in[relation][to].discard(frm)
        self._journal.append((_EDGE_DEL, frm, relation, to))

    def add_close(self, a: int, b: int) -> None:
        """CLOSE both ways, as VirtualHome adds it."""
        self.add_edge(a, "CLOSE", b)
        self.add_edge(b, "CLOSE", a)

    def remove_edges_of(self, node_id: int, relations: Iterable[str], both_directions: bool = True) -> None:
        """Remove the node's outgoing edges of these relations (and incoming ones, by default)."""
        for rel in relations:
            for to in list(self.targets(node_id, rel)):
                self.remove_edge(node_id, rel, to)
            if both_directions:
                for frm in list(self.sources(node_id, rel)):
                    self.remove_edge(frm, rel, node_id)

    def add_state(self, node_id: int, state: str) -> None:
        states = self.nodes[node_id].states
        if state not in states:
            states[state] = None
            self._journal.append((_STATE_ADD, node_id, state, None))

    def remove_state(self, node_id: int, state: str) -> None:
        states = self.nodes[node_id].states
        if state in states:
            position = list(states).index(state)
            del states[state]
            self._journal.append((_STATE_DEL, node_id, state, position))

    def replace_state(self, node_id: int, old: str, new: str) -> None:
        self.remove_state(node_id, old)
        self.add_state(node_id, new)

    def set_grab_origin(self, obj: int, origin: tuple[int, str, int | None] | None) -> None:
        previous = self.grab_origin.get(obj)
        if previous == origin:
            return
        if origin is None:
            del self.grab_origin[obj]
        else:
            self.grab_origin[obj] = origin
        self._journal.append((_ORIGIN, obj, previous, None))

    def move_to_room(self, node_id: int, room: int | None) -> None:
        """Put a node (and what is on, in or held by it, recursively) in ``room``: one INSIDE edge."""
        if room is None:
            return
        stack, seen = [node_id], set()
        while stack:
            current = stack.pop()
            if current in seen or current in self.rooms:
                continue
            seen.add(current)
            for old in [r for r in self.targets(current, "INSIDE") if r in self.rooms and r != room]:
                self.remove_edge(current, "INSIDE", old)
            self.add_edge(current, "INSIDE", room)
            stack.extend(self.sources(current, "ON"))
            stack.extend(s for s in self.sources(current, "INSIDE"))
            for hand in HANDS:
                stack.extend(self.targets(current, hand))

    # ------------------------------------------------------------------ undo
    def snapshot(self) -> Snapshot:
        """Remember this state; :meth:`restore` comes back to it in O(changes since)."""
        return Snapshot(self._generation, len(self._journal))

    def restore(self, snapshot: Snapshot) -> None:
        """Undo every change made since ``snapshot``."""
        if snapshot.generation != self._generation or snapshot.position > len(self._journal):
            raise ValueError("this snapshot is no longer valid: the world was committed after it was taken")
        journal = self._journal
        out, inc, nodes = self._out, self._in, self.nodes
        while len(journal) > snapshot.position:
            op, a, b, c = journal.pop()
            if op == _EDGE_ADD:
                out[b][a].discard(c)
                inc[b][c].discard(a)
            elif op == _EDGE_DEL:
                out[b].setdefault(a, set()).add(c)
                inc[b].setdefault(c, set()).add(a)
            elif op == _STATE_ADD:
                del nodes[a].states[b]
            elif op == _STATE_DEL:  # back in its old position: restore is exact, order included
                order = list(nodes[a].states)
                order.insert(c, b)
                nodes[a].states.clear()
                nodes[a].states.update(dict.fromkeys(order))
            elif b is None:
                del self.grab_origin[a]
            else:
                self.grab_origin[a] = b

    def commit(self) -> None:
        """Forget the undo history (older snapshots become invalid); keeps long runs lean."""
        self._journal.clear()
        self._generation += 1

    def diff_since(self, snapshot: Snapshot) -> Diff:
        """The net change since ``snapshot`` (an edge added then removed is no change)."""
        if snapshot.generation != self._generation:
            raise ValueError("this snapshot is no longer valid: the world was committed after it was taken")
        edges: dict[Edge, int] = {}
        states: dict[tuple[int, str], int] = {}
        for op, a, b, c in self._journal[snapshot.position :]:
            if op in (_EDGE_ADD, _EDGE_DEL):
                key = (a, b, c)
                edges[key] = edges.get(key, 0) + (1 if op == _EDGE_ADD else -1)
            elif op in (_STATE_ADD, _STATE_DEL):
                skey = (a, b)
                states[skey] = states.get(skey, 0) + (1 if op == _STATE_ADD else -1)
        return Diff(
            tuple(sorted(e for e, v in edges.items() if v > 0)),
            tuple(sorted(e for e, v in edges.items() if v < 0)),
            tuple(sorted(s for s, v in states.items() if v > 0)),
            tuple(sorted(s for s, v in states.items() if v < 0)),
        )

    # ------------------------------------------------------------------ execution
    def _resolve(self, line: ScriptLine, character: int | None) -> tuple[int, list[int]]:
        if character is None:
            character = self.character(line.character)
        elif character not in self.nodes or self.nodes[character].class_name != "character":
            raise StepFailure(f"node {character} is not a character")
        ids = []
        for arg in line.args:
            node = self.nodes.get(arg.node_id)
            if node is None:
                raise StepFailure(f"there is no node {arg.node_id} in the graph")
            if node.class_name != arg.class_name:
                raise StepFailure(
                    f"the script names <{arg.class_name}> ({arg.node_id}) but node {arg.node_id} is {node.class_name}"
                )
            ids.append(arg.node_id)
        return character, ids

    def check(self, line: ScriptLine | str, character: int | None = None) -> str | None:
        """Why the line cannot execute now (a readable reason), or None if it can. Changes nothing."""
        if isinstance(line, str):
            line = parse_script_line(line)
        try:
            char, ids = self._resolve(line, character)
        except (StepFailure, ValueError) as err:
            return str(err)
        return VERBS[line.verb].check(self, char, *ids)

    def step(self, line: ScriptLine | str, character: int | None = None, *, diff: bool = True) -> StepResult:
        """Execute one script line for ``character`` (a node id; default: the line's ``<charN>``, or
        the first character). On failure nothing changes and ``reason`` says why.

        ``diff=False`` skips building the step's :class:`Diff` (search loops that only undo)."""
        if isinstance(line, str):
            line = parse_script_line(line)
        try:
            char, ids = self._resolve(line, character)
        except (StepFailure, ValueError) as err:
            return StepResult(line, False, str(err), character=character)
        verb = VERBS[line.verb]
        reason = verb.check(self, char, *ids)
        if reason is not None:
            return StepResult(line, False, reason, character=char)
        start = self.snapshot()
        verb.apply(self, char, *ids)
        return StepResult(line, True, None, self.diff_since(start) if diff else Diff(), character=char)

    def execute(self, lines: Iterable[ScriptLine | str], character: int | None = None) -> list[StepResult]:
        """Execute lines in order, stopping after the first failure; returns one result per line tried."""
        results = []
        for line in lines:
            result = self.step(line, character)
            results.append(result)
            if not result.success:
                break
        return results
