"""Wiring check of EAI action sequencing: the benchmark's own gold programs, written as a model would answer in
each prompt mode, through e2wm's path (conversion, EAI's evaluator, e2wm's world), on all 342 tasks.

    python bench/eai_gold.py [--num-proc 2]

EAI's evaluator is run as EAI runs it, except that answers identical to the gold program are executed
(``execute_gold_matches``: EAI 1.0.5 counts them executable without executing them, and never a success).
EAI leaves out the tasks whose gold program fails its own goal check. ``PYTHONHASHSEED`` is e2wm's
(``EAI_HASH_SEED``): EAI orders some goals through ``set()``. Needs ``pip install --no-deps eai-eval==1.0.5``.
Per mode, one line:

    mode=<m> n=<scored> left_out=<k> eai_success=<x> eai_executability=<x> e2wm_success=<x> disagreements=<k>
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-proc", type=int, default=2, help="processes for EAI's evaluator")
    args = parser.parse_args()

    from e2wm.evaluation.eai import MODES, gold_answer, load_eai_tasks, score_answers

    tasks = load_eai_tasks()
    for mode in MODES:
        start = time.perf_counter()
        run = score_answers(
            tasks, [gold_answer(t, mode) for t in tasks], mode, execute_gold_matches=True, num_proc=args.num_proc
        )
        eai, mine, differ = run["eai"], run["e2wm"], run["disagreements"]
        failed = sorted(r["id"] for r in run["records"] if r["eai"]["scored"] and not r["eai"]["success"])
        print(f"# {mode}: {time.perf_counter() - start:.0f} s; EAI failures ({len(failed)}): {' '.join(failed)}")
        if differ["count"]:
            print(f"# {mode}: disagreements by kind {differ['by_kind']}")
        print(
            f"mode={mode} n={eai['n']} left_out={eai['left_out']} eai_success={eai['success_rate']:.3f} "
            f"eai_executability={eai['executability']:.3f} e2wm_success={mine['success_rate']:.3f} "
            f"disagreements={differ['count']}",
            flush=True,
        )


if __name__ == "__main__":
    main()
