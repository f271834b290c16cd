"""Time building the corpus from an E2WM-sized collection (1,659 RobotHow plans + 2,000 explorations).

    python bench/build_corpus.py [--episodes DIR [DIR ...]] [--num-proc 2]

Without ``--episodes`` the collection is made first (as in bench/collect.py; not timed here).
Last line: ``build_seconds=<x> examples=<n> removed_overlaps=<k>``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from e2wm.experience.collect import CollectConfig, collect
from e2wm.tasks.corpus import build_corpus
from e2wm.world.scenes import fetch_robothow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", nargs="+", default=None)
    parser.add_argument("--num-proc", type=int, default=2, help="for the collection, when it is made here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(p) for p in args.episodes] if args.episodes else []
        if not folders:
            fetch_robothow(progress=False)
            folders = [Path(tmp) / "robothow", Path(tmp) / "generated"]
            collect(CollectConfig("robothow", plans=1659), folders[0], args.num_proc)
            collect(CollectConfig("generated", explorations=2000), folders[1], args.num_proc)
        start = time.perf_counter()
        summary = build_corpus(folders, Path(tmp) / "corpus")
        seconds = time.perf_counter() - start
    examples = sum(sum(s.values()) for name, s in summary.sizes.items() if name != "episodes")
    for name, splits in summary.sizes.items():
        print(f"{name:34s} " + "  ".join(f"{split} {count}" for split, count in splits.items()))
    print(f"unseen activities: {', '.join(summary.unseen_activities)}")
    print(
        f"removed before the leak check: {summary.removed_overlaps} overlaps, {summary.removed_duplicates} duplicates"
    )
    print(f"build_seconds={seconds:.1f} examples={examples} removed_overlaps={summary.removed_overlaps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
