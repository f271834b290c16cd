"""Steps per second of e2wm's world model against VirtualHome's reference simulator, same run.

Loops (each timed for both simulators on exactly the same script lines, best of ``--repeats``):

* ``robothow``: the RobotHow programs, each from its initial graph;
* ``explore:<scene>``: a random walk of valid actions (walk, grab, put on/in, open/close, switch on/off)
  chosen by e2wm on a scene (generated homes and a RobotHow graph), then replayed by both.

The reference runs in its fastest mode (``in_place=True``: no state copy per step) with its two crash
defects patched so it executes the same lines; its copying mode, which its own search uses, is
reported too. Choosing actions is not timed, only executing them.

    python bench/world_speed.py [--programs N] [--steps N] [--repeats R]

Last line: ``speedup=<x>`` (median over loops of e2wm steps/s over reference steps/s).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from e2wm.world import ScriptLine, World
from e2wm.world.actions import valid_lines

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: bench/ is a package

from bench.conformance import ReferenceSimulator
from e2wm.world.scenes import fetch_robothow, generate_scene, load_robothow


def time_e2wm(jobs: list[tuple[dict[str, Any], list[ScriptLine]]]) -> tuple[float, int]:
    worlds = [(World.from_dict(graph), lines) for graph, lines in jobs]
    steps, start = 0, time.perf_counter()
    for world, lines in worlds:
        for line in lines:
            world.step(line)
            steps += 1
    return time.perf_counter() - start, steps


def time_reference(
    ref: ReferenceSimulator, jobs: list[tuple[dict[str, Any], list[ScriptLine]]], in_place: bool
) -> tuple[float, int, int]:
    ex, env, scripts = ref.execution, ref.environment, ref.scripts
    prepared = []
    for graph, lines in jobs:
        text = [f"[{ln.verb.upper()}]" + "".join(f" <{a.class_name}> ({a.node_id})" for a in ln.args) for ln in lines]
        state = env.EnvironmentState(env.EnvironmentGraph(graph), {}, instance_selection=True)
        prepared.append((scripts.read_script_from_list_string(text), state))
    steps = failures = 0
    with ref._patched(["find_crash", "putoff_crash"]):
        start = time.perf_counter()
        for script, state in prepared:
            info = ex.ExecutionInfo()
            for index in range(len(script)):
                new_state = next(
                    ex.ScriptExecutor.call_action_method(script.from_index(index), state, info, 0, True, in_place), None
                )
                steps += 1
                if new_state is None:
                    failures += 1
                else:
                    state = new_state
        elapsed = time.perf_counter() - start
    return elapsed, steps, failures


def exploration(graph: dict[str, Any], steps: int, seed: int) -> list[ScriptLine]:
    world, rng = World.from_dict(graph), random.Random(seed)
    lines = []
    for _ in range(steps):
        line = rng.choice(valid_lines(world))
        assert world.step(line, diff=False).success
        lines.append(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=518)
    parser.add_argument("--steps", type=int, default=400, help="steps per exploration loop")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    fetch_robothow(progress=False)
    programs = load_robothow()[: args.programs]
    loops: dict[str, list[tuple[dict[str, Any], list[ScriptLine]]]] = {
        "robothow": [(p.init_graph(), list(p.lines)) for p in programs]
    }
    for seed in range(3):
        scene = generate_scene(seed)
        loops[f"explore:generated-{seed}"] = [(scene, exploration(scene, args.steps, seed))]
    scene = programs[0].init_graph()
    loops[f"explore:robothow-{programs[0].id}"] = [(scene, exploration(scene, args.steps, 0))]

    ref = ReferenceSimulator()
    ratios = []
    print(
        f"{'loop':32s} {'steps':>6s} {'e2wm steps/s':>13s} {'ref steps/s':>12s} {'ref copy steps/s':>17s} {'ratio':>7s}"
    )
    for name, jobs in loops.items():
        mine = min(time_e2wm(jobs)[0] for _ in range(args.repeats))
        _, steps = time_e2wm(jobs)
        theirs = min(time_reference(ref, jobs, in_place=True)[0] for _ in range(args.repeats))
        copy_time, _, failures = time_reference(ref, jobs, in_place=False)
        ratio = (steps / mine) / (steps / theirs)
        ratios.append(ratio)
        note = f"  ({failures} steps refused by the reference)" if failures else ""
        print(
            f"{name:32s} {steps:6d} {steps / mine:13.0f} {steps / theirs:12.0f} {steps / copy_time:17.0f} {ratio:7.1f}{note}"
        )
    print(f"speedup={statistics.median(ratios):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
