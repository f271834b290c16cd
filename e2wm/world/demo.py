"""A short tour of the world model: generate a home, carry a prop to another room, watch TV.

``e2wm world demo --seed 0 --out demo`` writes ``scene.json``, ``script.txt`` and ``final.json`` and
prints each step with what it changed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from e2wm.utils import atomic_write_text
from e2wm.world.scenes.generator import generate_scene
from e2wm.world.script import ScriptLine, format_script
from e2wm.world.state import Diff, World

__all__ = ["demo_script", "describe_diff", "run_demo"]


def _first(world: World, class_names: tuple[str, ...], room: int | None = None) -> int | None:
    for class_name in class_names:
        for node_id in world.nodes_of_class(class_name):
            if room is None or world.room_of(node_id) == room:
                return node_id
    return None


def demo_script(world: World, seed: int = 0) -> list[ScriptLine]:
    """A plan for the demo: carry a dish or a book to the living room, then watch TV from the sofa."""
    rng = random.Random(seed)
    make = lambda verb, *ids: ScriptLine.make(verb, *((world.nodes[i].class_name, i) for i in ids))  # noqa: E731
    living = _first(world, ("living_room",))
    portable = [
        n
        for n in world.nodes
        if "GRABBABLE" in world.nodes[n].properties
        and world.location_of(n) is not None
        and world.location_of(n)[0] == "ON"  # type: ignore[index]
        and world.room_of(n) != living
        and world.nodes[n].category != "Furniture"
    ]
    lines: list[ScriptLine] = []
    table = _first(world, ("coffee_table", "tvstand"), living)
    if portable and table is not None:
        prop = rng.choice(sorted(portable))
        lines += [make("Walk", prop), make("Grab", prop), make("Walk", table), make("PutBack", prop, table)]
    tv, sofa = _first(world, ("television",), living), _first(world, ("sofa",), living)
    if tv is not None and sofa is not None:
        lines.append(make("Walk", tv))
        if "PLUGGED_OUT" in world.nodes[tv].states:
            lines.append(make("PlugIn", tv))
        if "OFF" in world.nodes[tv].states:
            lines.append(make("SwitchOn", tv))
        lines += [make("Walk", sofa), make("Sit", sofa), make("Watch", tv)]
    return lines


def describe_diff(world: World, diff: Diff) -> list[str]:
    """The diff in words, skipping CLOSE and FACING bookkeeping."""
    words = []
    for sign, edges in (("-", diff.edges_removed), ("+", diff.edges_added)):
        words += [
            f"{sign} {world.describe(frm)} {rel} {world.describe(to)}"
            for frm, rel, to in edges
            if rel not in ("CLOSE", "FACING")
        ]
    words += [f"- {world.describe(n)} {s}" for n, s in diff.states_removed]
    words += [f"+ {world.describe(n)} {s}" for n, s in diff.states_added]
    return words


def run_demo(seed: int, out: str | Path, echo: Callable[[str], None] = print) -> bool:
    """Run the demo and write its files to ``out``; returns True when every line executed."""
    out = Path(out)
    graph = generate_scene(seed, 0, characters=1)
    world = World.from_dict(graph)
    rooms = ", ".join(world.nodes[r].name for r in sorted(world.rooms))
    grabbable = sum("GRABBABLE" in n.properties for n in world.nodes.values())
    echo(f"Generated home (seed {seed}): {len(world.nodes)} nodes, rooms: {rooms}; {grabbable} grabbable things.")
    lines = demo_script(world, seed)
    atomic_write_text(out / "scene.json", json.dumps(graph))
    atomic_write_text(out / "script.txt", format_script(lines))
    ok = True
    for number, line in enumerate(lines, start=1):
        result = world.step(line)
        if not result.success:
            echo(f"{number:3d} FAIL {line}: {result.reason}")
            ok = False
            break
        echo(f"{number:3d} OK   {line}")
        for words in describe_diff(world, result.diff):
            echo(f"       {words}")
    world.write_json(out / "final.json")
    echo(f"Wrote {out / 'scene.json'}, {out / 'script.txt'} and {out / 'final.json'}.")
    echo(
        f"Replay it: e2wm world exec --graph {out / 'scene.json'} --script {out / 'script.txt'} --out {out / 'replayed.json'}"
    )
    return ok
