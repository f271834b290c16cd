"""Conformance of e2wm's world model with VirtualHome, on all 518 RobotHow programs.

Each program runs through e2wm and through the reference simulator (``virtualhome`` 2.3.0's
evolving graph, installed with ``pip install --no-deps virtualhome==2.3.0``), and both final graphs
are compared: node states and ON/INSIDE/HOLDS_RH/HOLDS_LH edges, plus the outcome (how many lines
executed). Differences explained by a known defect of the reference (``REFERENCE_DEFECTS``: crashes,
stale rooms, stale character states, …) are *intended*; any other is a *disagreement*. Both
simulators are also compared with the dataset's recorded final graphs. CLOSE and FACING edges are
reported separately.

    python bench/world_conformance.py [--limit N] [--json OUT.json]

Last line: ``conformance=<agree>/<total> intended=<k> disagreements=<d>
final_graph_match_e2wm=<m1>/<total> final_graph_match_reference=<m2>/<total>``
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere: bench/ is a package

from bench.conformance import REFERENCE_DEFECTS, ReferenceSimulator, compare_program
from e2wm.world.scenes import fetch_robothow, load_robothow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N programs")
    parser.add_argument("--json", default=None, help="write per-program verdicts here")
    args = parser.parse_args()

    fetch_robothow(progress=False)
    programs = load_robothow()[: args.limit]
    reference = ReferenceSimulator()
    verdicts: collections.Counter[str] = collections.Counter()
    defects: collections.Counter[str] = collections.Counter()
    close = facing = final_e2wm = final_ref = 0
    rows, disagreements = [], []
    start = time.perf_counter()
    for program in tqdm(programs, desc="conformance", unit="program"):
        graphs = program.graphs()
        result = compare_program(reference, program.id, graphs["init_graph"], program.lines, graphs["final_graph"])
        verdicts[result.verdict] += 1
        defects.update(result.defects)
        close += result.close_differs
        facing += result.facing_differs
        final_e2wm += bool(result.final_match_e2wm)
        final_ref += bool(result.final_match_reference)
        if result.verdict == "disagree":
            disagreements.append(result)
        rows.append({"program": program.id, "verdict": result.verdict, "defects": result.defects})
    total = len(programs)
    print(f"\n{total} RobotHow programs in {time.perf_counter() - start:.0f} s")
    print(
        f"agree: {verdicts['agree']}, intended differences: {verdicts['intended']}, disagreements: {verdicts['disagree']}"
    )
    for name, count in defects.most_common():
        print(f"  intended, {name}: {count} programs — {REFERENCE_DEFECTS[name]}")
    for result in disagreements[:10]:
        mine, ref = result.e2wm, result.reference
        print(
            f"  DISAGREE {result.program_id}: e2wm {mine.executed} lines ({mine.message}); reference {ref.executed} lines ({ref.message or ref.crash})"
        )
    print(f"CLOSE edges differ in {close} programs, FACING edges in {facing} (not part of conformance)")
    print(f"recorded final graph reached: e2wm {final_e2wm}/{total}, reference {final_ref}/{total}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)
    print(
        f"conformance={verdicts['agree']}/{total} intended={verdicts['intended']} disagreements={verdicts['disagree']} "
        f"final_graph_match_e2wm={final_e2wm}/{total} final_graph_match_reference={final_ref}/{total}"
    )
    return 0 if verdicts["disagree"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
