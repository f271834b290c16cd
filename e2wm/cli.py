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

Exit status: 0 on success, 1 when a script line fails to execute, 2 for malformed input or usage.
"""

from __future__ import annotations

import argparse
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


# ---------------------------------------------------------------------- world
def _world_exec(args: argparse.Namespace) -> int:
    from e2wm.world import GraphFormatError, ScriptParseError, World, read_script

    try:
        world = World.from_json(args.graph)
        program = read_script(args.script)
    except (GraphFormatError, ScriptParseError) as err:
        raise _InputError(str(err)) from None
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
        raise _InputError(f"cannot write {args.out}: {err.strerror}") from None
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
    from e2wm.tasks.common import TaskConfig
    from e2wm.tasks.corpus import CorpusError, LeakError, build_corpus

    try:
        config = TaskConfig(style=args.style, seed=args.seed)
        summary = build_corpus(
            args.episodes, args.out, config, progress=not args.quiet, repo_id=args.push_to_hub or "e2wm/experiences"
        )
    except (CorpusError, ValueError) as err:
        raise _InputError(str(err)) from None
    except LeakError as err:
        _err(str(err))
        return EXIT_FAILED
    rows = sum(sum(splits.values()) for name, splits in summary.sizes.items() if name != "episodes")
    print(f"Wrote {rows} examples in {len(summary.sizes) - 1} configs (+ episodes) to {args.out}; leak check passed.")
    for name, splits in summary.sizes.items():
        print(f"  {name:34s} " + "  ".join(f"{split} {count}" for split, count in splits.items()))
    if args.push_to_hub:
        from e2wm.hub import push_folder

        url = push_folder(
            args.out, args.push_to_hub, repo_type="dataset", private=args.private,
            commit_message="Build the e2wm experiences corpus", delete_patterns=["*.parquet", "README.md", "*.json"],
        )  # fmt: skip
        print(f"Pushed to {args.push_to_hub}: {url}")
    return EXIT_OK


# ---------------------------------------------------------------------- eval
def _eval(args: argparse.Namespace) -> int:
    from e2wm.evaluation.run import EvalConfig, parse_metrics, read_documents, run_evaluation
    from e2wm.evaluation.tasks import EvalFileError

    try:
        config = EvalConfig(
            model=args.model,
            out=args.out,
            adapter=args.adapter,
            label=args.label,
            tasks=[t for t in (args.tasks or "").split(",") if t],
            task_files=[f for f in (args.task_files or "").split(",") if f],
            corpus=args.corpus,
            split=args.split,
            limit=args.limit,
            batch_size=args.batch_size,
            num_beams=args.num_beams,
            max_new_tokens=args.max_new_tokens,
            metrics=parse_metrics(args.metric or []),
            perplexity_documents=read_documents(args.perplexity_text) if args.perplexity_text else [],
            dtype=args.dtype,
            trust_remote_code=args.trust_remote_code,
            progress=not args.quiet,
        )
        summary = run_evaluation(config)
    except (EvalFileError, ValueError, OSError) as err:
        raise _InputError(str(err)) from None
    for task, result in summary["tasks"].items():
        print(f"  {task:34s} {result['metric']:22s} {result['value']:.4f}  (n={result['n']})")
    print(f"Results in {Path(args.out) / summary['label'] / 'results.json'}")
    return EXIT_OK


# ---------------------------------------------------------------------- pipeline
def _pipeline(args: argparse.Namespace) -> int:
    from e2wm.pipeline import PipelineError, load_recipe, run_pipeline

    try:
        recipe = load_recipe(args.recipe)
        report = run_pipeline(recipe, args.out, progress=not args.quiet)
    except PipelineError as err:
        raise _InputError(str(err)) from None
    print(f"Done: {report}")
    return EXIT_OK


# ---------------------------------------------------------------------- push
def _push(args: argparse.Namespace) -> int:
    from e2wm.hub import push_folder

    folder = Path(args.folder)
    expected = {"corpus": "README.md", "fisher": "fisher.safetensors", "adapter": "adapter_config.json"}[args.artifact]
    if not (folder / expected).is_file():
        raise _InputError(f"{folder} is not a {args.artifact} folder (no {expected})")
    repo_type = "dataset" if args.artifact == "corpus" else "model"
    cleanup = ["*.parquet", "README.md", "*.json"] if args.artifact == "corpus" else None
    try:
        url = push_folder(
            folder, args.repo_id, repo_type=repo_type, private=args.private,
            commit_message=f"Upload e2wm {args.artifact}", delete_patterns=cleanup,
        )  # fmt: skip
    except OSError as err:
        raise _InputError(f"cannot push {folder} to {args.repo_id}: {err}") from None
    print(f"Pushed {folder} to {args.repo_id} ({repo_type}): {url}")
    return EXIT_OK


# ---------------------------------------------------------------------- collect
def _collect(args: argparse.Namespace) -> int:
    from e2wm.experience.collect import CollectConfig, CollectionError, collect, parse_shard
    from e2wm.experience.exploration import ExplorationConfig
    from e2wm.experience.mcts import MCTSConfig
    from e2wm.world import GraphFormatError
    from e2wm.world.scenes import RobotHowUnavailableError

    try:
        shard = parse_shard(args.shard)
        config = CollectConfig(
            scenes=args.scenes,
            plans=args.plans,
            explorations=args.explorations,
            seed=args.seed,
            chunk_size=args.chunk_size,
            max_characters=args.max_characters,
            mcts=MCTSConfig(simulations=args.simulations, max_steps=args.max_plan_steps),
            exploration=ExplorationConfig(steps=args.exploration_steps),
        )
        summary = collect(config, args.out, num_proc=args.num_proc, shard=shard, progress=not args.quiet)
    except (CollectionError, RobotHowUnavailableError, GraphFormatError, ValueError) as err:
        raise _InputError(str(err)) from None
    rate = summary.episodes / summary.seconds * 60 if summary.seconds else 0.0
    print(
        f"{summary.episodes} episodes in {summary.seconds:.1f} s ({rate:.0f}/min): "
        f"{summary.plans_reached}/{summary.plans} plans reach their goal, {summary.explorations} explorations; "
        f"{summary.chunks_written} chunks written, {summary.chunks_skipped} already done; in {args.out}"
    )
    return EXIT_OK


# ---------------------------------------------------------------------- fisher
def _fisher(args: argparse.Namespace) -> int:
    from e2wm.ewc import DocumentSourceError, FisherError, TextSource, build_fisher

    targets = [name.strip() for name in args.target_modules.split(",") if name.strip()]
    if not targets:
        raise _InputError("--target-modules: name at least one module, e.g. q_proj,v_proj")
    text = TextSource(args.text, config=args.text_config, split=args.text_split, field=args.text_field)
    try:
        result = build_fisher(
            args.model,
            target_modules=targets,
            text=text,
            out=args.out,
            num_docs=args.num_docs,
            max_length=args.max_length,
            estimator=args.estimator,
            batch_size=args.batch_size,
            seed=args.seed,
            normalisation=args.normalisation,
            dtype=args.dtype,
            model_dtype=args.model_dtype,
            quantization=args.quantization,
            revision=args.revision,
            trust_remote_code=args.trust_remote_code,
            device=args.device,
            checkpoint_every=args.checkpoint_every,
            overwrite=args.overwrite,
            push_to_hub=args.push_to_hub,
            private=args.private,
            progress=not args.quiet,
        )
    except (FisherError, DocumentSourceError) as err:
        raise _InputError(str(err)) from None
    meta = result.metadata
    print(
        f"Fisher ({meta['estimator']}, {meta['num_docs']} documents, {meta['num_tokens']} tokens, "
        f"{len(meta['layouts'])} tensors, normalisation {meta['normalisation']}, {meta['dtype']}) in {result.folder}"
        + (f"; {meta['num_skipped_docs']} documents under 2 tokens skipped" if meta["num_skipped_docs"] else "")
    )
    if result.hub_url:
        print(f"Pushed to {args.push_to_hub}: {result.hub_url}")
    return EXIT_OK


# ---------------------------------------------------------------------- train
def _train(args: argparse.Namespace) -> int:
    from e2wm.train import main as train_main

    return train_main(args.train_args)


# ---------------------------------------------------------------------- parser
MCTS_DEFAULTS = {"simulations": 48, "max_steps": 60}  # = MCTSConfig's defaults (checked by a test)


def build_parser() -> argparse.ArgumentParser:
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
    col.add_argument(
        "--scenes", required=True, help="generated, robothow (run `e2wm scenes fetch robothow`), or a folder of graphs"
    )
    col.add_argument("--out", required=True, help="output folder")
    col.add_argument("--plans", type=int, default=0, help="MCTS plans toward goals (RobotHow: program i mod 518)")
    col.add_argument("--explorations", type=int, default=0, help="random explorations with object tracking")
    col.add_argument("--num-proc", type=int, default=1, help="worker processes")
    col.add_argument("--seed", type=int, default=0)
    col.add_argument("--shard", default="0/1", help="run shard I of K (default 0/1: everything)")
    col.add_argument("--chunk-size", type=int, default=16, help="episodes per parquet shard file")
    col.add_argument("--max-characters", type=int, default=3, help="generated scenes get 1..N characters")
    col.add_argument(
        "--simulations", type=int, default=MCTS_DEFAULTS["simulations"], help="MCTS simulations per decision"
    )
    col.add_argument(
        "--max-plan-steps", type=int, default=MCTS_DEFAULTS["max_steps"], help="longest plan, in script lines"
    )
    col.add_argument("--exploration-steps", type=int, default=30, help="steps per exploration")
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
    build.add_argument("--out", required=True, help="corpus folder (replaced if it exists)")
    build.add_argument("--style", choices=["e2wm", "paper"], default="e2wm", help="prompt phrasing (paper: its shapes)")
    build.add_argument("--seed", type=int, default=0, help="seed for splits, phrasing and demonstrations")
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
    ev.add_argument("--model", required=True, help="base model: a Hub id or a local folder")
    ev.add_argument("--adapter", default=None, help="a peft adapter (folder or Hub id) on top of the model")
    ev.add_argument("--label", default=None, help="name of this run in the results (default: the adapter's, or base)")
    ev.add_argument("--tasks", default=None, help="comma-separated evaluation configs of the corpus")
    ev.add_argument("--task-files", default=None, help="comma-separated files: the paper's JSON Lines, or bAbI .txt")
    ev.add_argument("--corpus", default="e2wm/experiences", help="corpus folder or Hub id (default e2wm/experiences)")
    ev.add_argument("--split", default="test", help="corpus split (default test)")
    ev.add_argument("--limit", type=int, default=None, help="at most N examples per task")
    ev.add_argument("--metric", action="append", metavar="STEM=METRIC", help="metric for a task file (repeatable)")
    ev.add_argument("--perplexity-text", default=None, help="general text (.jsonl with 'text', or .txt) for perplexity")
    ev.add_argument("--out", required=True, help="output folder")
    ev.add_argument("--batch-size", type=int, default=8)
    ev.add_argument("--num-beams", type=int, default=1, help="1: greedy (default); the paper used 4 for plans")
    ev.add_argument("--max-new-tokens", type=int, default=64)
    ev.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    ev.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code (off by default)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_eval)

    push = commands.add_parser(
        "push",
        help="upload a corpus, Fisher or adapter folder to the Hub (with its card)",
        description="Upload an artifact folder in one commit (the repo is created if needed). A corpus goes to a "
        "dataset repo and replaces the shards of an older build; a Fisher or adapter to a model repo.",
    )
    push.add_argument("artifact", choices=["corpus", "fisher", "adapter"])
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

    fisher = commands.add_parser(
        "fisher",
        help="estimate the diagonal Fisher of a base model on its LoRA target modules",
        description="Estimate F = (1/N) Σ_n (∂L_n/∂W)² for the target modules' weights (L_n: mean token NLL of "
        "document n) and write fisher.safetensors, fisher.json and a README card to --out. Resumes after a kill "
        "from the checkpoint in <out>.partial/.",
    )
    fisher.add_argument("--model", required=True, help="base model: a Hub id or a local folder")
    fisher.add_argument(
        "--target-modules", required=True, help="comma-separated LoRA target modules, e.g. q_proj,v_proj"
    )
    fisher.add_argument(
        "--text", required=True, help="documents: a .jsonl or .txt file, or a datasets id or folder (streamed)"
    )
    fisher.add_argument("--text-config", default=None, help="datasets config name (for a datasets source)")
    fisher.add_argument("--text-split", default="train", help="datasets split (default train)")
    fisher.add_argument("--text-field", default="text", help="field holding the document (default text)")
    fisher.add_argument("--num-docs", type=int, required=True, help="documents to draw (all of them: their count)")
    fisher.add_argument("--max-length", type=int, required=True, help="truncate each document to this many tokens")
    fisher.add_argument("--estimator", choices=["empirical", "sampled"], default="empirical")
    fisher.add_argument("--batch-size", type=int, default=8, help="documents per forward/backward (default 8)")
    fisher.add_argument("--seed", type=int, default=0, help="seed for drawing documents and sampled labels")
    fisher.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    fisher.add_argument(
        "--normalisation", choices=["none", "mean", "max", "paper_int8"], default="none", help="default none"
    )
    fisher.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="stored dtype")
    fisher.add_argument("--model-dtype", choices=["float32", "bfloat16"], default="float32", help="compute dtype")
    fisher.add_argument(
        "--quantization", choices=["8bit", "4bit"], default=None, help="load the base with bitsandbytes"
    )
    fisher.add_argument("--revision", default=None, help="model revision (branch, tag or commit)")
    fisher.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code (off by default)")
    fisher.add_argument("--device", default=None, help="cpu, cuda, cuda:1… (default: cuda when available)")
    fisher.add_argument(
        "--checkpoint-every", type=int, default=1000, help="documents between checkpoints (0: none; default 1000)"
    )
    fisher.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    fisher.add_argument("--push-to-hub", default=None, metavar="REPO_ID", help="upload the folder to this model repo")
    fisher.add_argument("--private", action="store_true", default=None, help="create the Hub repo private")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except _InputError as err:
        _err(str(err))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
