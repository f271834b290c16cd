"""``python -m e2wm.evaluation``: ``e2wm eval`` as a module, so that it runs data-parallel.

    accelerate launch --config_file accelerate_configs/multi_gpu.yaml -m e2wm.evaluation \\
        --model EleutherAI/gpt-neo-1.3B --adapter runs/q/adapters/ewc_lora --corpus runs/q/corpus \\
        --tasks counting_qa,plan_generation_vanilla_seen --out runs/q/eval

The flags are those of ``e2wm eval`` (``EvalConfig``). Every process loads the model on its own device
and scores every n-th example of each task; the shares are gathered, so results, resume and report
are those of one process, and only the main process writes (``OUT/<label>/<task>.json``, ``results.json``).
Without a launcher it is one process, exactly ``e2wm eval``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from e2wm.arguments import add_dataclass_arguments
    from e2wm.evaluation.run import EvalConfig

    parser = argparse.ArgumentParser(
        prog="python -m e2wm.evaluation",
        description="Evaluate a model (and adapter) on embodied tasks and perplexity; data-parallel under "
        "`accelerate launch` (the flags of `e2wm eval`).",
    )
    add_dataclass_arguments(parser, EvalConfig, exclude=("progress",))
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from e2wm.arguments import from_namespace
    from e2wm.evaluation.distributed import Processes
    from e2wm.evaluation.run import EvalConfig, run_evaluation
    from e2wm.evaluation.tasks import EvalFileError
    from e2wm.models import ModelLoadError, ModelUnavailableError

    args = build_parser().parse_args(argv)
    try:
        config = from_namespace(EvalConfig, args, progress=not args.quiet)
        summary = run_evaluation(config)
    except (EvalFileError, ModelLoadError, ModelUnavailableError, ValueError, OSError) as err:
        print(f"python -m e2wm.evaluation: error: {err}", file=sys.stderr)
        return 2
    if Processes.current().is_main:
        from e2wm.evaluation.report import summary_lines

        print("\n".join(summary_lines(summary)))
        print(f"Results in {config.out}/{summary['label']}/results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
