"""Collect an E2WM-sized corpus on this machine and measure it.

MCTS plans for the RobotHow goals (the 518 programs, repeated with other seeds up to ``--plans``,
default 1,659 as in the paper) and ``--explorations`` (default 2,000) random explorations on generated
scenes, each with ``e2wm collect`` semantics and ``--num-proc`` processes (default 2).

Reported: wall time, plans and explorations per minute, the fraction of plan episodes that reach
their goal on re-execution among the RobotHow goals whose human program executes in e2wm (and how
many that is), and the median plan length over the human program's length.

    python bench/collect.py [--plans 1659] [--explorations 2000] [--num-proc 2] [--keep DIR] [--ray ADDRESS]

``--ray local`` runs the chunks as Ray tasks on a Ray instance started here (with ``--num-proc`` CPUs);
``--ray auto`` or ``--ray ray://HOST:10001`` on a cluster. The Ray start is timed apart.

Last line: ``plans_per_min=<x> explorations_per_min=<y> goal_success=<fraction> plan_len_ratio=<median>``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from e2wm.experience.collect import CollectConfig, collect, read_episodes
from e2wm.world import World
from e2wm.world.scenes import fetch_robothow, load_robothow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plans", type=int, default=1659)
    parser.add_argument("--explorations", type=int, default=2000)
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--keep", default=None, help="collect here (and keep it) instead of a temporary folder")
    parser.add_argument("--ray", default=None, metavar="ADDRESS", help="collect on Ray: local, auto or an address")
    args = parser.parse_args()
    if args.ray is not None:  # started once, outside the timings (collect uses a Ray already running)
        import ray

        start = time.perf_counter()
        if args.ray == "local":
            ray.init(num_cpus=args.num_proc, include_dashboard=False)
        else:
            ray.init(address=args.ray, include_dashboard=False)
        print(f"ray {ray.__version__} started in {time.perf_counter() - start:.1f} s: {ray.cluster_resources()}")

    fetch_robothow(progress=False)
    programs = {p.id: p for p in load_robothow()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        start = time.perf_counter()
        plans = collect(
            CollectConfig("robothow", plans=args.plans), root / "robothow", args.num_proc, ray_address=args.ray
        )
        plan_seconds = time.perf_counter() - start
        start = time.perf_counter()
        explorations = collect(
            CollectConfig("generated", explorations=args.explorations),
            root / "generated",
            args.num_proc,
            ray_address=args.ray,
        )
        explore_seconds = time.perf_counter() - start
        rows = read_episodes(root / "robothow").to_pylist()

    human_ok = {}
    for pid, program in programs.items():
        results = World.from_dict(program.init_graph()).execute(program.lines)
        human_ok[pid] = bool(results) and results[-1].success
    counted = [r for r in rows if human_ok[r["scene_name"]] and json.loads(r["goal"] or "{}").get("facts")]
    reached = sum(r["success"] for r in counted)
    ratios = [len(r["actions"]) / len(r["human_program"]) for r in counted if r["success"]]
    failures = sorted({r["failure"] for r in counted if not r["success"]})
    empty = sum(1 for r in rows if r["failure"] and r["failure"].startswith("empty goal"))

    total_seconds = plan_seconds + explore_seconds
    print(f"human programs that execute in e2wm: {sum(human_ok.values())}/{len(programs)}")
    print(f"plans: {plans.plans} in {plan_seconds:.0f} s; {empty} with an empty goal (the program changes nothing)")
    print(f"plans counted (human program executes, goal not empty): {len(counted)}; reach their goal: {reached}")
    for failure in failures[:10]:
        print(f"  failure: {failure}")
    print(f"explorations: {explorations.explorations} in {explore_seconds:.0f} s")
    where = f"Ray ({args.ray})" if args.ray else f"{args.num_proc} processes"
    print(f"whole corpus: {total_seconds:.0f} s on {where}")
    print(
        f"plans_per_min={plans.plans / plan_seconds * 60:.0f} "
        f"explorations_per_min={explorations.explorations / explore_seconds * 60:.0f} "
        f"goal_success={reached / max(len(counted), 1):.3f} plan_len_ratio={statistics.median(ratios):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
