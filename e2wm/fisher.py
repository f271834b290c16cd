"""Estimate the Fisher on one process or several: ``e2wm fisher``, ``python -m e2wm.fisher`` and
``accelerate launch -m e2wm.fisher`` take the same flags (made from ``FisherArguments``) and run the same code.

    # one process (one GPU, or the CPU)
    e2wm fisher --model EleutherAI/gpt-neo-1.3B --target-modules q_proj,v_proj --text pile.jsonl \\
        --num-docs 20000 --max-length 800 --out fisher/gpt-neo-1.3B

    # every GPU of the machine: each process loads its own copy (8-bit/4-bit too) on its own GPU and takes
    # every 8th document of the draw; the shares are summed and process 0 writes the same artifact
    accelerate launch --config_file accelerate_configs/multi_gpu.yaml --num_processes 8 -m e2wm.fisher \\
        --model huggyllama/llama-13b --quantization 4bit --target-modules q_proj,v_proj --text pile_val.jsonl \\
        --num-docs 20000 --max-length 800 --out fisher/llama-13b

    # two CPU processes (gloo), as the tests run it
    ACCELERATE_USE_CPU=1 accelerate launch --config_file accelerate_configs/cpu_ddp.yaml -m e2wm.fisher ...

A killed run resumes with the same command: each process continues from its own checkpoint in
``<out>.partial/`` (a resume with another number of processes is refused, with the number to use).
The processes wait for each other at the end (the all-reduce, and process 0's save and push), with a
timeout of ``PROCESS_GROUP_TIMEOUT``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e2wm.ewc.build import FisherBuild

__all__ = ["PROCESS_GROUP_TIMEOUT", "build_parser", "main", "run"]

# Processes wait for each other only at the end; one may be a checkpoint interval behind after a resume, and
# process 0 may be pushing gigabytes to the Hub: far beyond the backends' default timeouts (10-30 minutes).
PROCESS_GROUP_TIMEOUT = timedelta(hours=24)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The flags of ``e2wm fisher``: ``FisherArguments``' fields, plus ``--quiet``."""
    from e2wm.arguments import add_dataclass_arguments
    from e2wm.ewc.build import FisherArguments

    if parser is None:
        parser = argparse.ArgumentParser(
            prog="python -m e2wm.fisher", description=__doc__.split("\n\n")[0] if __doc__ else None
        )
    add_dataclass_arguments(parser, FisherArguments)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _launched_as_several_processes() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def run(args: argparse.Namespace) -> FisherBuild:
    """Build the Fisher that the parsed flags describe; under ``accelerate launch``, on all its processes.

    With several processes, the process group is started here (accelerate's ``PartialState``: NCCL between
    GPUs, gloo on CPUs with ``ACCELERATE_USE_CPU=1``) and, unless ``--device`` says otherwise, each process
    loads its model on accelerate's device for it (``cuda:<local rank>``).
    """
    from e2wm.arguments import from_namespace
    from e2wm.ewc.build import FisherArguments, build_fisher

    fisher_args = from_namespace(FisherArguments, args)
    progress = not getattr(args, "quiet", False)
    if _launched_as_several_processes():
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"), timeout=PROCESS_GROUP_TIMEOUT)
        if fisher_args.device is None:
            fisher_args.device = str(state.device)
    return build_fisher(fisher_args, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m e2wm.fisher``: 0 on success, 2 for an argument, a path or a model to fix (one line)."""
    from e2wm.ewc import DocumentSourceError, FisherError

    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        result = run(args)
    except (FisherError, DocumentSourceError, ValueError, OSError) as err:
        print(f"e2wm fisher: error: {err}", file=sys.stderr)
        return 2
    if result.is_main_process:
        print(result.summary())
        if result.hub_url:
            print(f"Pushed to {args.push_to_hub}: {result.hub_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
