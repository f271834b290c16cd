"""The ``e2wm`` command. Each subcommand is a thin call into the library.

    e2wm world exec --graph G.json --script S.txt --out FINAL.json
    e2wm world demo --seed 0 --out demo
    e2wm scenes generate --seed 0 --count 10 --out scenes/
    e2wm scenes fetch robothow
    e2wm scenes check scenes/
    e2wm collect --scenes generated --out episodes/ --plans 100 --explorations 100 --num-proc 2
    e2wm build --episodes episodes/ --out corpus/ [--push-to-hub e2wm/experiences]
    e2wm eval --model M --adapter A --tasks counting_qa,plan_generation_vanilla_seen --corpus corpus/ --out eval/
    e2wm pipeline --recipe recipes/quickstart.yaml --out runs/quickstart
    e2wm push fisher fisher/ you/model-fisher

Exit status, for every command: 0 on success; 1 when a script line fails to execute (``world exec``,
``world demo``) or the leak check fails (``build``, ``pipeline``); 2 for bad input or usage: a missing, empty,
damaged or mistyped file or flag, an output folder that is in use, holds other files, or is on a full or
read-only disk. Bad input is one line on stderr (``e2wm: error: <input>: <what is wrong and the fix>``), never a
traceback, and loses nothing: inputs are never changed, outputs are complete or absent, and no command
deletes a file or folder that e2wm did not write. 130 after Ctrl-C (a rerun resumes where the command
resumes: collect, fisher, eval, pipeline).
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from e2wm import __version__

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _InputError(Exception):
    """Malformed input or arguments: printed as one line, exit status 2."""


def _err(message: str) -> None:
    print(f"e2wm: error: {message}", file=sys.stderr)


def _message(err: BaseException) -> str:
    """One line for an error a command reports as bad input (an ``OSError`` names its path and the fix)."""
    if isinstance(err, OSError):
        from e2wm.utils import describe_os_error

        return describe_os_error(err)
    return str(err)


def _one_line(message: str) -> str:
    return " ".join(message.split())


# ---------------------------------------------------------------------- world
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def _world_exec(args: argparse.Namespace) -> int:
    from e2wm.world import GraphFormatError, ScriptParseError, World, read_script

    try:
        world = World.from_json(args.graph)
        program = read_script(args.script)
    except (GraphFormatError, ScriptParseError) as err:
        raise _InputError(str(err)) from None
    if not program.lines:
        raise _InputError(
            f"{args.script}: the script has no lines to execute (one line per step, e.g. [Walk] <sofa> (5))"
        )
    if not world.characters:
        raise _InputError(f"{args.graph}: the graph has no character (a node with class_name 'character')")
    try:
        character = world.character(args.character) if args.character is not None else None
    except ValueError as err:
        raise _InputError(f"--character: {err}") from None
    failed = None
    for number, line in enumerate(program.lines, start=1):
        result = world.step(line, character)
        if result.success:
            print(f"{number:4d} OK    {line}")
        else:
            print(f"{number:4d} FAIL  {line}: {result.reason}")
            failed = (number, result.reason)
            break
    try:
        world.write_json(args.out)
    except OSError as err:
        from e2wm.utils import describe_os_error, explain_write_error

        raise _InputError(
            explain_write_error(err, args.out) if err.errno in _WRITE_ERRNOS else describe_os_error(err)
        ) from None
    if failed is not None:
        executed = failed[0] - 1
        _err(
            f"{args.script}: line {failed[0]} failed: {failed[1]} "
            f"({args.out} holds the graph after the {executed} line{'s' if executed != 1 else ''} that executed)"
        )
        return EXIT_FAILED
    print(f"All {len(program.lines)} lines executed; the final graph is in {args.out}.")
    return EXIT_OK


def _world_demo(args: argparse.Namespace) -> int:
    from e2wm.world.demo import run_demo

    return EXIT_OK if run_demo(args.seed, args.out) else EXIT_FAILED


# ---------------------------------------------------------------------- scenes
def _scenes_generate(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from e2wm.utils import atomic_write_text
    from e2wm.world.scenes import GENERATOR_VERSION, generate_scene, scene_id

    if args.count < 1:
        raise _InputError(f"--count must be at least 1, got {args.count}")
    if args.characters < 1:
        raise _InputError(f"--characters must be at least 1, got {args.characters}")
    out = Path(args.out)
    entries = []
    for index in tqdm(range(args.count), desc="generate scenes", unit="scene", disable=args.quiet):
        graph = generate_scene(args.seed, index, args.characters)
        name = f"scene-{args.seed}-{index:05d}.json"
        atomic_write_text(out / name, json.dumps(graph))
        entries.append({"file": name, "scene_id": scene_id(graph), "index": index, "nodes": len(graph["nodes"])})
    manifest = {
        "generator": "e2wm.world.scenes.generator",
        "generator_version": GENERATOR_VERSION,
        "seed": args.seed,
        "characters": args.characters,
        "scenes": entries,
    }
    atomic_write_text(out / "scenes.json", json.dumps(manifest, indent=1))
    print(f"Wrote {args.count} scene{'s' if args.count != 1 else ''} to {out} (manifest: {out / 'scenes.json'}).")
    return EXIT_OK


def _scenes_fetch(args: argparse.Namespace) -> int:
    from e2wm.world.scenes import RobotHowUnavailableError, fetch_robothow, load_robothow

    try:
        folder = fetch_robothow(args.cache_dir, wheel=args.wheel, force=args.force, progress=not args.quiet)
        programs = load_robothow(folder)
    except RobotHowUnavailableError as err:
        raise _InputError(str(err)) from None
    titles = len({p.title for p in programs})
    print(f"{len(programs)} RobotHow programs ({titles} activities) with initial and final graphs in {folder}")
    return EXIT_OK


def _scenes_check(args: argparse.Namespace) -> int:
    from e2wm.world import GraphFormatError, World
    from e2wm.world.graph import read_graph_json
    from e2wm.world.scenes import graph_files, scene_id

    bad = 0
    try:
        files = [f for path in args.paths for f in graph_files(path)]
    except GraphFormatError as err:
        raise _InputError(str(err)) from None
    for file in files:
        try:
            data = read_graph_json(file)
            world = World.from_dict(data, source=str(file))
        except GraphFormatError as err:
            bad += 1
            print(f"BAD  {err}")
            continue
        notes = world.room_violations()
        rooms = len(world.rooms)
        print(
            f"OK   {file}: {len(world.nodes)} nodes, {rooms} rooms, {len(world.characters)} characters, "
            f"id {scene_id(data)}" + (f"; {len(notes)} room inconsistencies (first: {notes[0]})" if notes else "")
        )
    if bad:
        _err(f"{bad} of {len(files)} graph files are malformed")
        return EXIT_BAD_INPUT
    return EXIT_OK


# ---------------------------------------------------------------------- build
def _build(args: argparse.Namespace) -> int:
    from e2wm.arguments import from_namespace
    from e2wm.tasks.common import TaskConfig
    from e2wm.tasks.corpus import CorpusError, LeakError, build_corpus

    try:
        _check_repo_id(args.push_to_hub)  # before the build, not after it
        config = from_namespace(TaskConfig, args)
        summary = build_corpus(
            args.episodes, args.out, config, progress=not args.quiet, repo_id=args.push_to_hub or "e2wm/experiences"
        )
    except (CorpusError, ValueError, OSError) as err:
        raise _InputError(_message(err)) from None
    except LeakError as err:
        _err(str(err))
        return EXIT_FAILED
    rows = sum(sum(splits.values()) for name, splits in summary.sizes.items() if name != "episodes")
    print(f"Wrote {rows} examples in {len(summary.sizes) - 1} configs (+ episodes) to {args.out}; leak check passed.")
    for name, splits in summary.sizes.items():
        print(f"  {name:34s} " + "  ".join(f"{split} {count}" for split, count in splits.items()))
    if args.push_to_hub:
        _push_kind("corpus", args.out, args.push_to_hub, args.private)
    return EXIT_OK


# ---------------------------------------------------------------------- eval
def _eval(args: argparse.Namespace) -> int:
    from e2wm.arguments import from_namespace
    from e2wm.evaluation.run import EvalConfig, run_evaluation
    from e2wm.evaluation.tasks import EvalFileError
    from e2wm.models import ModelLoadError, ModelUnavailableError

    try:
        config = from_namespace(EvalConfig, args, progress=not args.quiet)
        summary = run_evaluation(config)
    except (EvalFileError, ModelLoadError, ModelUnavailableError, ValueError, OSError) as err:
        raise _InputError(_message(err)) from None
    from e2wm.evaluation.report import summary_lines

    print("\n".join(summary_lines(summary)))  # each score with its 95% interval and n
    print(f"Results in {Path(args.out) / summary['label'] / 'results.json'}")
    return EXIT_OK


# ---------------------------------------------------------------------- pipeline
def _pipeline(args: argparse.Namespace) -> int:
    from e2wm.models import ModelLoadError, ModelUnavailableError
    from e2wm.pipeline import load_recipe, run_pipeline
    from e2wm.tasks.corpus import LeakError

    try:
        recipe = load_recipe(args.recipe)
        report = run_pipeline(recipe, args.out, progress=not args.quiet)
    except (ValueError, OSError, ModelLoadError, ModelUnavailableError) as err:
        # PipelineError, OutputFolderError and every stage's input errors (CollectionError, CorpusError,
        # FisherError, RecipeError, EvalFileError) are ValueErrors; a full disk is an OSError
        raise _InputError(_message(err)) from None
    except LeakError as err:
        _err(str(err))
        return EXIT_FAILED
    print(f"Done: {report}")
    return EXIT_OK


def _frontier(args: argparse.Namespace) -> int:
    from e2wm.frontier import run_frontier
    from e2wm.models import ModelLoadError, ModelUnavailableError
    from e2wm.pipeline import load_recipe

    try:
        recipe = load_recipe(args.recipe)
        if not recipe.frontier:
            raise _InputError(
                f"{args.recipe} has no 'frontier' section: add one (see recipes/frontier_quickstart.yaml)"
            )
        report = run_frontier(recipe, args.out, progress=not args.quiet)
    except (ValueError, OSError, ModelLoadError, ModelUnavailableError) as err:  # as in _pipeline
        raise _InputError(_message(err)) from None
    print(f"Done: {report}")
    return EXIT_OK


# ---------------------------------------------------------------------- push
def _check_repo_id(repo_id: str | None) -> None:
    from e2wm.hub import ArtifactError, check_repo_id

    if repo_id is not None:
        try:
            check_repo_id(repo_id)
        except ArtifactError as err:
            raise _InputError(f"--push-to-hub: {err}") from None


def _push_kind(kind: str, folder: str, repo_id: str, private: bool | None) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    from e2wm.hub import ArtifactError, push_artifact

    try:
        url = push_artifact(kind, folder, repo_id, private=private)
    except ArtifactError as err:
        raise _InputError(str(err)) from None
    except (HfHubHTTPError, OSError) as err:
        raise _InputError(f"cannot push {folder} to {repo_id}: {str(err).splitlines()[0]}") from None
    print(f"Pushed the {kind} {folder} to {repo_id}: {url}")


def _push(args: argparse.Namespace) -> int:
    _push_kind(args.artifact, args.folder, args.repo_id, args.private)
    return EXIT_OK


# ---------------------------------------------------------------------- collect
def _collect(args: argparse.Namespace) -> int:
    from e2wm.arguments import from_namespace
    from e2wm.experience.collect import CollectConfig, CollectionError, collect, parse_shard
    from e2wm.world import GraphFormatError
    from e2wm.world.scenes import RobotHowUnavailableError

    try:
        shard = parse_shard(args.shard)
        config = from_namespace(CollectConfig, args)
        summary = collect(
            config, args.out, num_proc=args.num_proc, shard=shard, progress=not args.quiet, ray_address=args.ray
        )
    except (CollectionError, RobotHowUnavailableError, GraphFormatError, ValueError, OSError) as err:
        raise _InputError(_message(err)) from None
    rate = summary.episodes / summary.seconds * 60 if summary.seconds else 0.0
    print(
        f"{summary.episodes} episodes in {summary.seconds:.1f} s ({rate:.0f}/min): "
        f"{summary.plans_reached}/{summary.plans} plans reach their goal, {summary.explorations} explorations; "
        f"{summary.chunks_written} chunks written ({summary.chunks_redone} of them redone: damaged or unrecorded), "
        f"{summary.chunks_skipped} already done; in {args.out}"
    )
    return EXIT_OK


# ---------------------------------------------------------------------- fisher
def _fisher(args: argparse.Namespace) -> int:
    from e2wm.ewc import DocumentSourceError, FisherError
    from e2wm.fisher import run  # the same run as `accelerate launch -m e2wm.fisher`
    from e2wm.locking import output_lock

    # One run per --out: the lock is on <out>.partial/, where a run keeps its checkpoints until the Fisher is
    # complete (<out> itself appears only complete, by a rename), so runs into other folders of one parent
    # never wait for each other. Removed again when the run failed before writing a checkpoint.
    partial = Path(args.out).with_name(Path(args.out).name + ".partial")
    try:
        _check_repo_id(args.push_to_hub)  # before hours of estimation, not after them
        with output_lock(partial, f"e2wm fisher --out {args.out}", remove_if_unused=True):
            result = run(args)
    except (FisherError, DocumentSourceError, ValueError, OSError) as err:
        raise _InputError(_message(err)) from None
    if result.is_main_process:
        print(result.summary())
        if result.hub_url:
            print(f"Pushed to {args.push_to_hub}: {result.hub_url}")
    return EXIT_OK


# ---------------------------------------------------------------------- train
def _train(args: argparse.Namespace) -> int:
    from e2wm.train import main as train_main

    return train_main(args.train_args)


# ---------------------------------------------------------------------- parser
def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``e2wm`` parser. The flags of collect, build, eval and fisher are made from their dataclasses
    (``e2wm.arguments``); with ``command`` only that command's are made, so ``e2wm world`` imports no torch."""
    derived: dict[str, tuple[argparse.ArgumentParser, str, tuple[str, ...]]] = {}
    parser = argparse.ArgumentParser(
        prog="e2wm",
        description="e2wm: embodied experiences from a world model for language models (E2WM, EWC-LoRA).",
    )
    parser.add_argument("--version", action="version", version=f"e2wm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    world = commands.add_parser("world", help="run VirtualHome scripts in the world model")
    world_cmds = world.add_subparsers(dest="world_command", metavar="SUBCOMMAND", required=True)
    run = world_cmds.add_parser(
        "exec",
        help="execute a script on a graph and write the final graph",
        description="Execute a VirtualHome script line by line; stop at the first failing line. "
        "Exit 0 when every line executed, 1 when a line failed, 2 for malformed input.",
    )
    run.add_argument("--graph", required=True, help="VirtualHome graph JSON (or a RobotHow init/final graph file)")
    run.add_argument("--script", required=True, help="script file: one line per step, e.g. [Grab] <cup> (12)")
    run.add_argument("--out", required=True, help="where to write the graph after the last successful line")
    run.add_argument(
        "--character", type=int, default=None, help="character index (default: the line's <charN>, else 0)"
    )
    run.set_defaults(func=_world_exec)
    demo = world_cmds.add_parser("demo", help="generate a home and run a short plan in it")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="e2wm-demo", help="folder for scene.json, script.txt and final.json")
    demo.set_defaults(func=_world_demo)

    scenes = commands.add_parser("scenes", help="generate, fetch and check scenes")
    scene_cmds = scenes.add_subparsers(dest="scenes_command", metavar="SUBCOMMAND", required=True)
    gen = scene_cmds.add_parser("generate", help="procedurally generated homes in VirtualHome format")
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument("--count", type=int, required=True)
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--characters", type=int, default=1, help="characters per home (default 1)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    gen.set_defaults(func=_scenes_generate)
    fetch = scene_cmds.add_parser(
        "fetch",
        help="fetch real VirtualHome data into the cache",
        description="Fetch the 518 RobotHow programs with their graphs (from the eai-eval 1.0.5 wheel on PyPI) "
        "into $E2WM_CACHE/robothow (default ~/.cache/e2wm/robothow). Idempotent.",
    )
    fetch.add_argument("source", choices=["robothow"])
    fetch.add_argument("--cache-dir", default=None, help="folder for the programs (default $E2WM_CACHE/robothow)")
    fetch.add_argument("--wheel", default=None, help="use this local eai_eval-1.0.5 wheel instead of downloading it")
    fetch.add_argument("--force", action="store_true", help="rebuild the cache even if it is complete")
    fetch.add_argument("--quiet", action="store_true", help="no progress bars")
    fetch.set_defaults(func=_scenes_fetch)
    check = scene_cmds.add_parser("check", help="validate VirtualHome graph files")
    check.add_argument("paths", nargs="+", help="graph files or folders of them")
    check.set_defaults(func=_scenes_check)

    col = commands.add_parser(
        "collect",
        help="collect experiences: MCTS plans toward goals and random explorations, as parquet shards",
        description="Collect episodes into OUT/episodes/*.parquet (scenes once each in OUT/scenes). Deterministic "
        "for a seed whatever --num-proc is; a killed run resumes when started again with the same arguments; "
        "--shard I/K runs one shard of K (the union of the K folders equals one run).",
    )
    derived["collect"] = (col, "e2wm.experience.collect:CollectConfig", ())
    col.add_argument("--out", required=True, help="output folder")
    col.add_argument("--num-proc", "--num_proc", type=int, default=1, help="worker processes")
    col.add_argument("--shard", default="0/1", help="run shard I of K (default 0/1: everything)")
    col.add_argument(
        "--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="run the chunks as Ray tasks: on a local Ray (no ADDRESS), or auto, ray://HOST:10001, HOST:6379; "
        'needs pip install "e2wm[ray]"',
    )  # fmt: skip
    col.add_argument("--quiet", action="store_true", help="no progress bar")
    col.set_defaults(func=_collect)

    build = commands.add_parser(
        "build",
        help="build the e2wm/experiences corpus (tasks, splits, leak check, card) from episodes",
        description="Turn collected episodes into a corpus folder in the Hub layout: a parquet folder per config "
        "(training tasks, evaluation formats, raw episodes) and a README card; load it with "
        "datasets.load_dataset(OUT, config). Exit 1 when the leak check fails (nothing is written).",
    )
    build.add_argument("--episodes", required=True, nargs="+", help="collection folders (from e2wm collect)")
    build.add_argument("--out", required=True, help="corpus folder (an earlier corpus there is replaced)")
    derived["build"] = (build, "e2wm.tasks.common:TaskConfig", ())
    build.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="also upload to this dataset repo")
    build.add_argument("--private", action="store_true", default=None, help="create the Hub repo private")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    build.set_defaults(func=_build)

    ev = commands.add_parser(
        "eval",
        help="evaluate a model (and adapter) on embodied tasks and perplexity",
        description="Multiple choice by log-likelihood (length-normalised or calibrated), generation (Rouge-L for "
        "plans, with plans executed in the world; room-path score), perplexity on general text. Writes "
        "OUT/<label>/<task>.json as each task finishes (an interrupted run resumes) and OUT/<label>/results.json.",
    )
    derived["eval"] = (ev, "e2wm.evaluation.run:EvalConfig", ("progress",))
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_eval)

    push = commands.add_parser(
        "push",
        help="upload a corpus, Fisher or adapter folder to the Hub (with its card)",
        description="Upload an artifact folder in one commit (the repo is created if needed). FOLDER must be that kind "
        "of artifact, and only its own files go up (no checkpoints, optimizer states or training_args.bin). A corpus "
        "goes to a dataset repo and replaces the shards of an older build; a Fisher or adapter to a model repo. The "
        "token comes from HF_TOKEN or `hf auth login`.",
    )
    push.add_argument("artifact", choices=["corpus", "fisher", "adapter"], help="what FOLDER is (it is checked)")
    push.add_argument("folder", help="the artifact folder (from e2wm build, e2wm fisher or e2wm train)")
    push.add_argument("repo_id", help="Hub repo id, e.g. you/gpt-neo-1.3B-fisher")
    push.add_argument("--private", action="store_true", default=None, help="create the repo private")
    push.set_defaults(func=_push)

    pipe = commands.add_parser(
        "pipeline",
        help="the whole method end to end: collect, build, Fisher, train LoRA and EWC-LoRA, evaluate, report",
        description="Run every stage of a pipeline recipe into OUT, skipping the stages already complete (a killed "
        "run resumes). recipes/quickstart.yaml runs offline on Gemma-3-270M; recipes/smoke.yaml on a tiny model.",
    )
    pipe.add_argument("--recipe", required=True, help="pipeline recipe YAML (e.g. recipes/quickstart.yaml)")
    pipe.add_argument("--out", required=True, help="run folder (resumed if it exists)")
    pipe.add_argument("--quiet", action="store_true", help="no progress bar")
    pipe.set_defaults(func=_pipeline)

    front = commands.add_parser(
        "frontier",
        help="the learning-forgetting frontier: LoRA, EWC-LoRA and L2 over a λ grid, OSF and replay, evaluated alike",
        description="Train and evaluate every point of a recipe's `frontier` section on the same corpus, seed, steps "
        "and data order, then plot the embodied gain (few-shot) against the perplexity change with intervals and the "
        "Pareto front (OUT/frontier/). Resumes; points a pipeline already trained in OUT are reused.",
    )
    front.add_argument(
        "--recipe", required=True, help="recipe with a frontier section (recipes/frontier_quickstart.yaml)"
    )
    front.add_argument("--out", required=True, help="run folder (resumed if it exists; may be a pipeline's)")
    front.add_argument("--quiet", action="store_true", help="no progress bar")
    front.set_defaults(func=_frontier)

    fisher = commands.add_parser(
        "fisher",
        help="estimate the diagonal Fisher of a base model on its LoRA target modules",
        description="Estimate F = (1/N) Σ_n (∂L_n/∂W)² for the target modules' weights (L_n: mean token NLL of "
        "document n) and write fisher.safetensors, fisher.json and a README card to --out. Resumes after a kill "
        "from the checkpoint in <out>.partial/.",
    )
    derived["fisher"] = (fisher, "e2wm.ewc.build:FisherArguments", ())
    fisher.add_argument("--quiet", action="store_true", help="no progress bar")
    fisher.set_defaults(func=_fisher)

    # `e2wm train` hands everything after it to e2wm.train (trl's parser: --config recipe.yaml, --field value).
    # prefix_chars="+" keeps argparse from reading those --flags itself.
    train = commands.add_parser(
        "train",
        help="train an EWC-LoRA adapter from a recipe (--config recipes/<recipe>.yaml [--field value ...])",
        description="Train a LoRA adapter with the EWC-LoRA penalty (trl SFTTrainer + Fisher penalty + task weights). "
        "Same as `python -m e2wm.train` and `accelerate launch -m e2wm.train`; `e2wm train --help` lists every field.",
        prefix_chars="+",
        add_help=False,
    )
    train.add_argument("train_args", nargs=argparse.REMAINDER, help="--config RECIPE.yaml [--field value ...]")
    train.set_defaults(func=_train)

    import importlib

    from e2wm.arguments import add_dataclass_arguments

    for name, (subparser, where, exclude) in derived.items():
        if command is None or command == name:
            module, _, cls = where.partition(":")
            add_dataclass_arguments(subparser, getattr(importlib.import_module(module), cls), exclude=exclude)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except _InputError as err:
        _err(_one_line(str(err)))
        return EXIT_BAD_INPUT
    except OSError as err:  # a full or read-only disk, a missing file: the path and the fix, not a traceback
        _err(_one_line(_message(err)))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
