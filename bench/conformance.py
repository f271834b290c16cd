"""Conformance with VirtualHome: replay programs through e2wm and the reference simulator, compare.

The reference is the evolving-graph simulator of the ``virtualhome`` 2.3.0 package. It does not
install with its dependencies on Python 3.11; install it with
``pip install --no-deps virtualhome==2.3.0`` (it needs numpy, which e2wm's stack brings).

Two graphs *agree* when they have the same node states and the same ``ON``, ``INSIDE`` and
``HOLDS_RH``/``HOLDS_LH`` edges, and the program executed the same number of lines with the same
outcome. ``CLOSE`` and ``FACING`` edges are compared too, but reported separately.

Where e2wm and the reference differ, the difference is *intended* when it is explained by a known
defect of the reference, each fixed by a small patch (:data:`REFERENCE_DEFECTS`): the reference with
those patches then agrees with e2wm. Stale rooms need no patch: the reference's room edges are
compared through the containment chain (what holds, supports or contains a node), which is what
e2wm's room edges are by construction. Anything else is a *disagreement*.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2wm.world.script import ScriptLine
from e2wm.world.state import World

__all__ = [
    "REFERENCE_DEFECTS",
    "GraphKey",
    "Outcome",
    "ProgramComparison",
    "ReferenceSimulator",
    "compare_program",
    "graph_key",
    "run_e2wm",
]

#: Known defects of the reference simulator: name -> what goes wrong (docs/world.md explains each).
REFERENCE_DEFECTS: dict[str, str] = {
    "find_crash": "[Find] on an object the character is not close to raises a TypeError "
    "(its joined walk+find executor is called with the wrong signature)",
    "putoff_crash": "[PutOff] raises a TypeError (its precondition check has the wrong signature)",
    "stale_character_state": "preconditions read the character's states from the initial graph, so "
    "[Sleep] after [Lie] fails, and a character seated at the start cannot walk after [StandUp]",
    "stale_seat": "a character who stands up stays ON the seat (and keeps occupying it)",
    "logged_but_executed": "some failed preconditions are logged but the step still executes "
    "([PlugOut] of a device that is on, [Watch] of something in a closed container, [PutObjBack] "
    "that cannot reach its origin)",
    "stale_room": "a carried object keeps the INSIDE edge of the room it was grabbed in, and a put "
    "object keeps its old room",
}
_PATCHED = tuple(d for d in REFERENCE_DEFECTS if d != "stale_room")


@dataclass(frozen=True)
class GraphKey:
    """The parts of a graph that conformance compares."""

    states: frozenset[tuple[int, str]]
    edges: frozenset[tuple[int, str, int]]  # ON, HOLDS_*, INSIDE to non-rooms
    rooms: frozenset[tuple[int, int | None]]  # the raw INSIDE-room edge of every non-room node
    effective_rooms: frozenset[tuple[int, int | None]]  # rooms through the containment chain
    close: frozenset[tuple[int, int]]
    facing: frozenset[tuple[int, int]]


def _placement(world: World, node: int) -> tuple[Any, Any]:
    return world.holder_of(node), world.location_of(node)


def _effective_room(world: World, node: int, moved: set[int], memo: dict[int, int | None]) -> int | None:
    """The room of a node through what holds, supports or contains it, for nodes that moved during
    the run; the INSIDE-room edge for the others (initial graphs are not always consistent)."""
    if node in memo:
        return memo[node]
    memo[node] = None  # cycle guard
    room = (
        node
        if node in world.rooms
        else next((r for r in sorted(world.targets(node, "INSIDE")) if r in world.rooms), None)
    )
    if node in moved:
        location = world.location_of(node)
        if location is not None:
            room = _effective_room(world, location[1], moved, memo)
    memo[node] = room
    return room


_MOVING_VERBS = frozenset({"Grab", "PutBack", "PutIn", "PutObjBack", "Drop", "Release", "Pour", "PutOn", "PutOff"})


def _handled(lines: Sequence[ScriptLine]) -> set[int]:
    """Objects that executed lines picked up, put or poured (their rooms may have been updated)."""
    return {line.args[0].node_id for line in lines if line.verb in _MOVING_VERBS and line.args}


def graph_key(world: World, initial: World | None = None, handled: Iterable[int] = ()) -> GraphKey:
    """Extract the compared parts of a graph. ``initial`` (the graph before the run) tells which
    nodes moved; their rooms, and those of ``handled`` nodes, are also computed through their
    containment chain."""
    states = frozenset((n.id, s) for n in world.nodes.values() for s in n.states)
    edges = set(world.edges(("ON", "HOLDS_RH", "HOLDS_LH")))
    edges.update(e for e in world.edges(("INSIDE",)) if e[2] not in world.rooms)
    moved = set(handled)
    if initial is not None:
        moved = {
            n
            for n in world.nodes
            if n not in world.rooms
            and world.nodes[n].class_name != "character"
            and (n not in initial.nodes or _placement(world, n) != _placement(initial, n))
        }
    rooms, effective = set(), set()
    memo: dict[int, int | None] = {}
    for node in world.nodes:
        if node in world.rooms:
            continue
        raw = sorted(r for r in world.targets(node, "INSIDE") if r in world.rooms)
        rooms.add((node, raw[0] if raw else None))
        effective.add((node, _effective_room(world, node, moved, memo)))
    return GraphKey(
        states,
        frozenset(edges),
        frozenset(rooms),
        frozenset(effective),
        frozenset((f, t) for f, _, t in world.edges(("CLOSE",))),
        frozenset((f, t) for f, _, t in world.edges(("FACING",))),
    )


@dataclass(frozen=True)
class Outcome:
    """How a simulator ran a program: lines executed, success, the failure or crash, final graph."""

    success: bool
    executed: int  # lines that executed successfully
    message: str | None
    graph: GraphKey | None  # None after a crash
    crash: str | None = None  # exception type and message, if the simulator raised


def run_e2wm(graph: dict[str, Any], lines: Sequence[ScriptLine]) -> Outcome:
    world = World.from_dict(graph)
    initial = world.copy()
    results = world.execute(lines)
    ok = (bool(results) and results[-1].success) or not lines
    executed = sum(r.success for r in results)
    key = graph_key(world, initial, _handled(lines[:executed]))
    return Outcome(ok, executed, None if ok else results[-1].reason, key)


def _reference_site() -> Path:
    """The folder holding the reference's ``evolving_graph`` package."""
    spec = importlib.util.find_spec("virtualhome")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the reference simulator is not installed: pip install --no-deps virtualhome==2.3.0")
    return Path(next(iter(spec.submodule_search_locations))) / "simulation"


class ReferenceSimulator:
    """VirtualHome 2.3.0's evolving-graph simulator, optionally with known defects patched.

    ``import virtualhome`` fails (a ``sys.path`` hack in its ``__init__``), so its ``simulation``
    folder is put on ``sys.path`` and ``evolving_graph`` imported from there.
    """

    def __init__(self) -> None:
        site = str(_reference_site())
        if site not in sys.path:
            sys.path.insert(0, site)
        self.execution = importlib.import_module("evolving_graph.execution")
        self.environment = importlib.import_module("evolving_graph.environment")
        self.scripts = importlib.import_module("evolving_graph.scripts")
        self._patches = self._make_patches()

    def run(self, graph: dict[str, Any], lines: Sequence[ScriptLine], patches: Sequence[str] = ()) -> Outcome:
        """Execute the lines (by node id, as ``ScriptExecutor.execute`` does) with the given patches."""
        ex, env, scripts = self.execution, self.environment, self.scripts
        # The reference parses ids with int(): RobotHow's (1.417) becomes (417).
        text = [
            f"[{line.verb.upper()}]" + "".join(f" <{a.class_name}> ({a.node_id})" for a in line.args) for line in lines
        ]
        initial = World.from_dict(graph)
        with self._patched(patches):
            try:
                script = scripts.read_script_from_list_string(text)
                state = env.EnvironmentState(env.EnvironmentGraph(graph), {}, instance_selection=True)
                info = ex.ExecutionInfo()
                executed = 0
                for index in range(len(script)):
                    new_state = next(
                        ex.ScriptExecutor.call_action_method(script.from_index(index), state, info, 0), None
                    )
                    if new_state is None:
                        break
                    state, executed = new_state, executed + 1
            except Exception as err:  # the reference crashes on some verbs: that is what we measure
                return Outcome(False, 0, None, None, crash=f"{type(err).__name__}: {err}")
            ok = executed == len(script)
            return Outcome(
                ok,
                executed,
                info.get_error_string() or None,
                graph_key(World.from_dict(state.to_dict()), initial, _handled(lines[:executed])),
            )

    @contextlib.contextmanager
    def _patched(self, names: Sequence[str]) -> Iterator[None]:
        saved = []
        try:
            for name in names:
                for owner, attr, value in self._patches[name]:
                    saved.append((owner, attr, owner.__dict__[attr]))
                    setattr(owner, attr, value)
            yield
        finally:
            for owner, attr, value in reversed(saved):
                setattr(owner, attr, value)

    def _make_patches(self) -> dict[str, list[tuple[Any, str, Any]]]:
        ex, env = self.execution, self.environment
        Relation, State = env.Relation, env.State

        def joined_execute(
            self: Any, script: Any, state: Any, info: Any, char_index: Any, modify: bool = True, in_place: bool = False
        ) -> Any:
            for executor in self.executors:
                yield from executor.execute(script, state, info, char_index, modify, in_place)

        def putoff_execute(
            self: Any, script: Any, state: Any, info: Any, char_index: Any, modify: bool = True, in_place: bool = False
        ) -> Any:
            line = script[0]
            info.set_current_line(line)
            node = state.get_state_node(line.object())
            char = next(state.get_char_node(char_index))
            if node is None:
                info.object_found_error()
            elif not state.evaluate(
                env.ExistsRelation(env.NodeInstance(node), Relation.ON, env.NodeInstanceFilter(char))
            ):
                info.error("{} is not on {}", node, char)
            elif env.Property.CLOTHES not in node.properties:
                info.error("{} is not clothes", node)
            else:
                yield state.change_state(
                    [env.DeleteEdges(env.NodeInstance(node), [Relation.ON], env.CharacterNode(char_index))],
                    in_place=in_place,
                )

        original_get_char = env.EnvironmentState.get_char_node

        def current_char_node(self: Any, char_index: int) -> Any:
            for node in original_get_char(self, char_index):
                yield self.get_node(node.id)

        original_standup = ex.StandUpExecutor.execute

        def standup_leaves_seat(
            self: Any, script: Any, state: Any, info: Any, char_index: Any, modify: bool = True, in_place: bool = False
        ) -> Any:
            for new_state in original_standup(self, script, state, info, char_index, modify, in_place):
                new_state.apply_changes([env.DeleteEdges(env.CharacterNode(char_index), [Relation.ON], env.AnyNode())])
                yield new_state

        original_watch_check = ex.WatchExecutor.check_watchable

        def watch_check(self: Any, state: Any, node: Any, info: Any, char_index: Any) -> bool:
            return bool(original_watch_check(self, state, node, info, char_index)) and not ex._is_inside(state, node)

        original_plug_check = ex.PlugExecutor.check_plugable

        def plug_check(self: Any, state: Any, node: Any, info: Any, char_index: Any) -> bool:
            ok = bool(original_plug_check(self, state, node, info, char_index))
            return ok and (self.plug_in or State.ON not in node.states)

        original_putobjback = ex.PutBackExecutor.execute

        def putobjback(
            self: Any, script: Any, state: Any, info: Any, char_index: Any, modify: bool = True, in_place: bool = False
        ) -> Any:
            before = len(info.messages)
            for new_state in original_putobjback(self, script, state, info, char_index, modify, in_place):
                if len(info.messages) == before:
                    yield new_state

        return {
            "find_crash": [(ex.JoinedExecutor, "execute", joined_execute)],
            "putoff_crash": [(ex.PutOffExecutor, "execute", putoff_execute)],
            "stale_character_state": [(env.EnvironmentState, "get_char_node", current_char_node)],
            "stale_seat": [(ex.StandUpExecutor, "execute", standup_leaves_seat)],
            "logged_but_executed": [
                (ex.WatchExecutor, "check_watchable", watch_check),
                (ex.PlugExecutor, "check_plugable", plug_check),
                (ex.PutBackExecutor, "execute", putobjback),
            ],
        }


def _same(a: Outcome, b: Outcome, rooms: str) -> bool:
    if a.crash or b.crash or a.graph is None or b.graph is None:
        return False
    if (a.success, a.executed) != (b.success, b.executed):
        return False
    if a.graph.states != b.graph.states or a.graph.edges != b.graph.edges:
        return False
    ref_rooms = a.graph.rooms if rooms == "raw" else a.graph.effective_rooms
    return ref_rooms == b.graph.rooms


@dataclass
class ProgramComparison:
    """The verdict for one program: ``agree``, ``intended`` (with the defects that explain it) or
    ``disagree``, plus how each side compares with a recorded final graph."""

    program_id: str
    verdict: str
    defects: list[str] = field(default_factory=list)
    e2wm: Outcome | None = None
    reference: Outcome | None = None
    close_differs: bool = False
    facing_differs: bool = False
    final_match_e2wm: bool | None = None
    final_match_reference: bool | None = None


def matches_final(outcome: Outcome, final: GraphKey) -> bool:
    """A successful run whose graph equals the recorded final graph (rooms through containment)."""
    g = outcome.graph
    return (
        outcome.success
        and g is not None
        and g.states == final.states
        and g.edges == final.edges
        and g.effective_rooms == final.effective_rooms
    )


def compare_program(
    reference: ReferenceSimulator,
    program_id: str,
    graph: dict[str, Any],
    lines: Sequence[ScriptLine],
    final_graph: dict[str, Any] | None = None,
) -> ProgramComparison:
    """Run one program through e2wm and the reference (plain, then patched) and give the verdict."""
    mine = run_e2wm(graph, lines)
    plain = reference.run(graph, lines)
    result = ProgramComparison(program_id, "agree", e2wm=mine, reference=plain)
    if not _same(plain, mine, "raw"):
        patched = reference.run(graph, lines, _PATCHED)
        result.reference = patched
        if _same(patched, mine, "effective"):
            result.verdict = "intended"
            for defect in _PATCHED:
                without = reference.run(graph, lines, [d for d in _PATCHED if d != defect])
                if not _same(without, mine, "effective"):
                    result.defects.append(defect)
            if not _same(patched, mine, "raw"):
                result.defects.append("stale_room")
        else:
            result.verdict = "disagree"
    ref_graph, my_graph = result.reference.graph if result.reference else None, mine.graph
    if ref_graph is not None and my_graph is not None:
        result.close_differs = ref_graph.close != my_graph.close
        result.facing_differs = ref_graph.facing != my_graph.facing
    if final_graph is not None:
        final = graph_key(World.from_dict(final_graph), World.from_dict(graph), _handled(lines))
        result.final_match_e2wm = matches_final(mine, final)
        result.final_match_reference = matches_final(plain, final)
    return result
