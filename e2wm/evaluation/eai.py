"""EAI action sequencing: the Embodied Agent Interface benchmark's VirtualHome task, scored by EAI.

The benchmark (Li et al., NeurIPS 2024 D&B; the ``eai-eval`` 1.0.5 wheel, MIT; install with
``pip install --no-deps eai-eval==1.0.5``) has 342 action-sequencing tasks in VirtualHome scene 1,
one per RobotHow program (``27_2``), 26 activities. Each task (:class:`EAITask`) has a scene graph, an
LTL goal (node states, edges, ordered actions), the relevant objects, EAI's prompt and a gold program.

Two prompt modes:

* ``eai``: EAI's own prompt; the model answers with EAI's JSON of action commands, which EAI's
  evaluator parses itself, so the numbers compare with the LLM results EAI published;
* ``e2wm``: the plan-generation prompt e2wm's adapters are trained on (``Q: How to {activity}? Given
  items include {items}. {facts}\\nA:``, with e2wm's facts about the task's objects and ``shots``
  demonstrations from tasks of other activities); the sentences the model writes are parsed back
  with :func:`e2wm.evaluation.plans.parse_sentence`, grounded to the task's objects (the only ones
  EAI accepts) and written in EAI's JSON.

Both are scored by EAI's own evaluator (:mod:`e2wm.evaluation.eai_evaluator`) and executed again in
e2wm's world, whose goal check is EAI's (``scene_evaluate_wID`` on e2wm's final graph): every task
gets both verdicts, and the tasks where they differ are named.
"""

from __future__ import annotations

import functools
import itertools
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2wm.evaluation.eai_evaluator import (
    EAI_DEFECTS,
    EAI_HASH_SEED,
    EAIVerdict,
    eai_module,
    eai_package_dir,
    run_eai_evaluator,
)
from e2wm.evaluation.plans import _sentences, parse_sentence
from e2wm.experience.episode import Episode
from e2wm.experience.sentences import plan_to_sentences
from e2wm.tasks.common import TaskConfig, stable_fraction
from e2wm.tasks.plans import plan_facts, plan_generation
from e2wm.world import World, parse_script_line
from e2wm.world.script import ScriptLine, ScriptParseError

__all__ = [
    "MODES",
    "E2WMVerdict",
    "EAITask",
    "e2wm_prompt",
    "e2wm_to_eai",
    "eai_answer",
    "gold_answer",
    "load_eai_tasks",
    "run_in_e2wm",
    "score_answers",
    "seen_activities",
    "training_programs",
]

MODES = ("eai", "e2wm")
_PROGRAMS = "dataset/programs_processed_precond_nograb_morepreconds"
_SCENE = "TrimmedTestScene1_graph/results_intentions_march-13-18"
_CHARACTER = 65  # the acting character of scene 1, as EAI's evaluator fixes it


@dataclass(frozen=True)
class EAITask:
    """One EAI action-sequencing task (all read from the installed eai-eval 1.0.5)."""

    id: str  # EAI's id, the RobotHow program's (file27_2 in e2wm's RobotHow cache)
    activity: str
    prompt: str  # EAI's prompt (helm_prompts.json), ending with "Output:"
    goal: dict[str, Any]  # EAI's vh_goal: {"goal": [node and edge goals], "actions": [...]}
    tl_goal: str
    objects: tuple[tuple[str, int], ...]  # the relevant objects EAI lists (and accepts), prompt order
    program: tuple[str, ...]  # the gold program's script lines

    def graphs(self) -> dict[str, Any]:
        """``{"init_graph", "final_graph"}`` of the task's program."""
        path = eai_package_dir() / _PROGRAMS / "init_and_final_graphs" / _SCENE / f"file{self.id}.json"
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def goal_ids(self) -> set[int]:
        """The nodes the goal names."""
        ids: set[int] = set()
        for g in self.goal["goal"]:
            ids.update(g[k] for k in ("id", "from_id", "to_id") if k in g)
        return ids


_OBJECT = re.compile(r"^(?P<name>\S+), id: (?P<id>\d+), properties: ", re.MULTILINE)


def _objects(prompt: str, task_id: str) -> tuple[tuple[str, int], ...]:
    start = prompt.find("Objects in the scene:\n")
    end = prompt.find("-----------------", start)
    found = tuple((m["name"], int(m["id"])) for m in _OBJECT.finditer(prompt, start, end))
    if start < 0 or not found:
        raise ValueError(f"EAI's prompt for task {task_id} lists no objects: is eai-eval 1.0.5 installed intact?")
    return found


@functools.lru_cache(maxsize=1)
def _all_tasks() -> tuple[EAITask, ...]:
    root = eai_package_dir()
    resources = root / "resources" / "virtualhome"
    id2task = json.loads((resources / "id2task.json").read_text(encoding="utf-8"))
    goals = json.loads((resources / "task_state_LTL_formula_accurate.json").read_text(encoding="utf-8"))["scene_1"]
    prompts_file = root / "evaluation" / "action_sequencing" / "prompts" / "helm_prompts.json"
    prompts = {e["identifier"]: e["llm_prompt"] for e in json.loads(prompts_file.read_text(encoding="utf-8"))}
    by_activity: dict[str, list[EAITask]] = {}
    for activity, entries in goals.items():
        for task_id, entry in entries.items():
            if id2task.get(task_id) != activity or task_id not in prompts:
                raise ValueError(f"EAI task {task_id}: its activity or prompt is missing from eai-eval's resources")
            text = (root / _PROGRAMS / "executable_programs" / _SCENE / f"file{task_id}.txt").read_text(
                encoding="utf-8"
            )
            program = tuple(line.strip() for line in text.splitlines() if line.startswith("["))
            task = EAITask(
                task_id,
                activity,
                prompts[task_id],
                entry["vh_goal"],
                entry["tl_goal"],
                _objects(prompts[task_id], task_id),
                program,
            )
            by_activity.setdefault(activity, []).append(task)
    # Round robin over the activities: the first N tasks cover min(N, 26) activities.
    ordered = [t for group in itertools.zip_longest(*by_activity.values()) for t in group if t is not None]
    return tuple(ordered)


def load_eai_tasks(limit: int | None = None, ids: Sequence[str] | None = None) -> list[EAITask]:
    """EAI's 342 tasks (or those of ``ids``, in that order), activities taken in turn: the first
    ``limit`` tasks cover as many activities as they can."""
    tasks = _all_tasks()
    if ids is not None:
        by_id = {t.id: t for t in tasks}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise ValueError(f"no EAI action-sequencing task {unknown[0]!r} (ids look like '27_2')")
        return [by_id[i] for i in ids][:limit]
    return list(tasks[:limit])


# ---------------------------------------------------------------------- answers in both formats
def eai_answer(lines: Sequence[ScriptLine]) -> str:
    """Script lines as EAI's JSON answer: ``{"WALK": ["dining_room", 201], "GRAB": ["soap", 1002]}``."""
    parts = []
    for line in lines:
        args = [x for a in line.args for x in (a.class_name, a.node_id)]
        parts.append(f"{json.dumps(line.verb.upper())}: {json.dumps(args)}")
    return "{" + ", ".join(parts) + "}"


def _gold_lines(task: EAITask) -> list[ScriptLine]:
    return [parse_script_line(line) for line in task.program]


def gold_answer(task: EAITask, mode: str) -> str:
    """The gold program as the model would answer in ``mode``: EAI's JSON, or e2wm's sentences."""
    if mode == "eai":
        return eai_answer(_gold_lines(task))
    if mode == "e2wm":
        return " ".join(plan_to_sentences(_gold_lines(task)))
    raise ValueError(f"unknown EAI prompt mode {mode!r}; use one of {', '.join(MODES)}")


# ---------------------------------------------------------------------- e2wm's prompt
@functools.lru_cache(maxsize=512)
def _e2wm_question(task_id: str) -> Any:
    """The task as an e2wm plan-generation example (its completion: the gold plan's sentences)."""
    (task,) = load_eai_tasks(ids=[task_id])
    objects = [(name, node) for name, node in task.objects if name != "character"]
    episode = Episode(
        episode_id=f"eai-{task.id}",
        kind="plan",
        scene_id=f"eai-{task.id}",
        scene_source="eai",
        scene_name=task.id,
        activity=task.activity,
        # plan_facts names the items a plan touches: here, the objects the task involves
        actions=[f"[Find] <{name}> ({node})" for name, node in objects],
        sentences=plan_to_sentences(_gold_lines(task)),
    )
    rng = random.Random(f"eai:{task.id}")
    info = plan_facts(episode, task.graphs()["init_graph"], rng)
    return plan_generation("eai_action_sequencing", episode, info, TaskConfig(style="paper"), rng)


def e2wm_prompt(task: EAITask, shots: int = 2) -> str:
    """e2wm's plan-generation prompt for the task, after ``shots`` solved tasks of other activities."""
    others = [t for t in _all_tasks() if t.activity != task.activity]
    demos = sorted(others, key=lambda t: stable_fraction("eai-demo", task.id, t.id))[:shots]
    example = _e2wm_question(task.id)
    shown = [_e2wm_question(t.id) for t in demos]
    shots_text = "".join(f"{d.question}{d.completion}\n\n" for d in shown)
    return f"{shots_text}{example.question}"


# ---------------------------------------------------------------------- e2wm's plans -> EAI's JSON
@dataclass(frozen=True)
class Conversion:
    """An e2wm plan written for EAI: ``answer`` is what EAI reads (the raw text when the plan does not
    parse, which EAI then reports as a parsing error); ``error`` says what did not parse."""

    answer: str
    lines: tuple[str, ...] = ()
    error: str | None = None


Binding = tuple[str, int | None]  # (class name, node id; None: no such object in the scene)


def e2wm_to_eai(task: EAITask, text: str, budget: int = 2000) -> Conversion:
    """Parse the sentences back to script lines and write them as EAI's JSON.

    Names are bound to the task's objects (the only ones EAI accepts) by backtracking in e2wm's world,
    as :func:`e2wm.evaluation.plans.execute_plan` binds them: the goal's objects first, then by id; the
    first binding that executes every line and reaches the goal's states and edges wins, else the first
    that executes, else the longest executable prefix (``budget`` bounds the steps tried). A name that
    is not a task object is bound to a scene node of that class (EAI reports a hallucination), or left
    without an id when the scene has none.
    """
    sentences = _sentences(text)
    if not sentences:
        return Conversion(text, error="the plan is empty")
    parsed = []
    for sentence in sentences:
        found = parse_sentence(sentence)
        if found is None:
            return Conversion(text, error=f"cannot parse {sentence!r}")
        parsed.append(found)
    world = World.from_dict(task.graphs()["init_graph"])
    goal = task.goal_ids()

    def key(name: str) -> str:
        return name.replace("_", " ").lower()

    mine: dict[str, list[Binding]] = {}
    for name, node in task.objects:
        mine.setdefault(key(name), []).append((name, node))
    scene: dict[str, list[Binding]] = {}
    for node in sorted(world.nodes):
        scene.setdefault(key(world.nodes[node].class_name), []).append((world.nodes[node].class_name, node))
    steps: list[tuple[str, list[tuple[Binding, ...]]]] = []
    for verb, names in parsed:
        options: list[list[Binding]] = []
        for name in names:
            ours = sorted(mine.get(key(name), []), key=lambda o: (o[1] not in goal, o[1]))
            options.append(ours or scene.get(key(name), [])[:1] or [(name.strip().replace(" ", "_"), None)])
        steps.append((verb, list(itertools.islice(itertools.product(*options), 64))))
    reached = _grounding(world, steps, task, budget)
    chosen = [(verb, list(reached[i] if i < len(reached) else combos[0])) for i, (verb, combos) in enumerate(steps)]
    parts = [f"{json.dumps(verb.upper())}: {json.dumps([x for arg in args for x in arg])}" for verb, args in chosen]
    script = tuple(f"[{verb.upper()}]" + "".join(f" <{c}> ({n})" for c, n in args) for verb, args in chosen)
    return Conversion("{" + ", ".join(parts) + "}", script)


def _grounding(
    world: World, steps: list[tuple[str, list[tuple[Binding, ...]]]], task: EAITask, budget: int
) -> list[tuple[Binding, ...]]:
    """The bindings of the best grounding found (see :func:`e2wm_to_eai`): all steps, or a prefix."""
    nodes = [(g["id"], g["state"]) for g in task.goal["goal"] if "state" in g]
    edges = [(g["from_id"], g["relation_type"], g["to_id"]) for g in task.goal["goal"] if "relation_type" in g]

    def goal_met() -> bool:
        return all(n in world.nodes and world.has_state(n, s) for n, s in nodes) and all(
            rel in ("ON", "INSIDE", "CLOSE", "FACING", "HOLDS_RH", "HOLDS_LH") and world.has_edge(f, rel, t)
            for f, rel, t in edges
        )

    path: list[tuple[Binding, ...]] = []
    best: list[tuple[Binding, ...]] = []  # the first complete grounding, else the longest prefix
    tries = 0

    def search(index: int) -> bool:
        nonlocal best, tries
        if index == len(steps):
            return goal_met()
        verb, combos = steps[index]
        for combo in combos:
            if tries >= budget or any(node is None for _, node in combo):
                return False
            tries += 1
            snapshot = world.snapshot()
            if world.step(ScriptLine.make(verb, *combo), _CHARACTER, diff=False).success:  # type: ignore[arg-type]
                path.append(combo)
                if len(path) > len(best):
                    best = list(path)
                if search(index + 1):
                    return True
                path.pop()
                world.restore(snapshot)
        return False

    return list(path) if search(0) else best


# ---------------------------------------------------------------------- e2wm's verdict
@dataclass
class E2WMVerdict:
    """The same action lines executed in e2wm's world; ``success`` is EAI's goal check on its graph."""

    executed: bool  # False: nothing to execute (EAI refused the answer's grammar)
    executable: bool = False
    success: bool = False
    lines_executed: int = 0
    reason: str | None = None


def _goals(task: EAITask) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Node, edge and action goals as EAI's evaluator prepares them (duplicates removed; action goals in
    their listed order, where EAI's set() makes the order depend on the hash seed)."""
    module = eai_module()
    nodes = [g for g in task.goal["goal"] if "state" in g]
    edges = [g for g in task.goal["goal"] if "relation_type" in g]
    actions = list(dict.fromkeys(task.goal["actions"]))
    return module.remove_duplicate_dicts(nodes), module.remove_duplicate_dicts(edges), actions


def run_in_e2wm(task: EAITask, actions: Sequence[str] | None) -> E2WMVerdict:
    """Execute EAI's action lines (``[WALK] <kitchen> (205)``) in e2wm's world from the task's initial
    graph, stopping at the first line that fails, and check EAI's goal on the graph reached."""
    if actions is None:
        return E2WMVerdict(False, reason="nothing to execute: EAI's grammar check refused the answer")
    world = World.from_dict(task.graphs()["init_graph"])
    done: list[str] = []
    reason = None
    for text in actions:
        try:
            result = world.step(parse_script_line(text), _CHARACTER)
        except ScriptParseError as err:
            reason = f"{text}: {err}"
            break
        if not result.success:
            reason = f"{text}: {result.reason}"
            break
        done.append(text)
    nodes, edges, wanted = _goals(task)
    evaluation = eai_module().scene_evaluate_wID(
        world.to_dict(), nodes, edges, _CHARACTER, action_seq=done, action_goals=wanted
    )
    return E2WMVerdict(True, reason is None, bool(evaluation[3]), len(done), reason)


# ---------------------------------------------------------------------- scoring
def _disagreement(eai: EAIVerdict, mine: E2WMVerdict) -> str | None:
    if not eai.scored or (eai.executable, eai.success) == (mine.executable, mine.success):
        return None
    if eai.gold_shortcut:
        return "gold_shortcut"
    if eai.crash:
        return "eai_crash"
    return "executability" if eai.executable != mine.executable else "success"


def score_answers(
    tasks: Sequence[EAITask],
    answers: Sequence[str],
    mode: str,
    execute_gold_matches: bool = False,
    activity_seen: dict[str, bool] | None = None,
    program_seen: set[str] | None = None,
    num_proc: int = 1,
    hash_seed: int | None = EAI_HASH_SEED,
) -> dict[str, Any]:
    """Score model answers (one per task, written in ``mode``) with EAI's evaluator and in e2wm's world.

    Returns ``{"eai": totals, "e2wm": totals, "eai_summary": EAI's own summary or None,
    "disagreements": {...}, "records": [...]}``; totals are fractions over the tasks EAI scores.
    ``activity_seen`` (activity -> seen in training) and ``program_seen`` (RobotHow ids ``file27_2``
    in training) mark each record, so seen and unseen tasks can be told apart. ``num_proc`` and
    ``hash_seed``: see :func:`~e2wm.evaluation.eai_evaluator.run_eai_evaluator`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown EAI prompt mode {mode!r}; use one of {', '.join(MODES)}")
    if len(tasks) != len(answers):
        raise ValueError(f"{len(tasks)} tasks but {len(answers)} answers")
    conversions = [e2wm_to_eai(t, a) if mode == "e2wm" else Conversion(a) for t, a in zip(tasks, answers, strict=True)]
    evaluation = run_eai_evaluator(
        [(t.id, c.answer) for t, c in zip(tasks, conversions, strict=True)], execute_gold_matches, num_proc, hash_seed
    )
    records: list[dict[str, Any]] = []
    for task, answer, conversion, eai in zip(tasks, answers, conversions, evaluation.verdicts, strict=True):
        if eai.scored:
            mine = run_in_e2wm(task, eai.actions)
        else:
            mine = E2WMVerdict(False, reason="EAI leaves the task out (its gold program fails EAI's own goal check)")
        records.append(
            {
                "id": task.id,
                "activity": task.activity,
                "activity_seen": None if activity_seen is None else activity_seen.get(task.activity, False),
                "program_in_training": None if program_seen is None else f"file{task.id}" in program_seen,
                "prediction": answer,
                "eai_answer": conversion.answer,
                "conversion_error": conversion.error,
                "eai": eai.to_dict(),
                "e2wm": vars(mine),
                "disagreement": _disagreement(eai, mine),
            }
        )
    scored = [r for r in records if r["eai"]["scored"]]
    n = len(scored)
    mine_totals = {
        "n": n,
        "success_rate": sum(r["e2wm"]["success"] for r in scored) / n if n else None,
        "executability": sum(r["e2wm"]["executable"] for r in scored) / n if n else None,
    }
    cases = [r for r in scored if r["disagreement"]]
    kinds: dict[str, list[str]] = {}
    for r in cases:
        kinds.setdefault(r["disagreement"], []).append(r["id"])
    return {
        "mode": mode,
        "eai": evaluation.totals,
        "e2wm": mine_totals,
        "eai_summary": evaluation.summary,
        "execute_gold_matches": execute_gold_matches,
        "hash_seed": hash_seed,
        "disagreements": {
            "count": len(cases),
            "by_kind": {k: len(v) for k, v in sorted(kinds.items())},
            "cases": [
                {
                    "id": r["id"],
                    "kind": r["disagreement"],
                    "eai": {k: r["eai"][k] for k in ("executable", "success", "error_type", "error_action")},
                    "e2wm": {k: r["e2wm"][k] for k in ("executable", "success", "reason")},
                }
                for r in cases
            ],
        },
        "eai_defects": EAI_DEFECTS,
        "records": records,
    }


def _training_record(corpus: str | Path) -> dict[str, Any]:
    path = Path(corpus) / "e2wm_corpus.json"
    if not path.is_file():
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(str(corpus), "e2wm_corpus.json", repo_type="dataset"))
        except Exception as err:  # any failure means the same to the caller
            raise FileNotFoundError(
                f"{corpus}: no e2wm_corpus.json (a local corpus folder or a Hub dataset built by e2wm): {err}"
            ) from None
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if "training_activities" not in record:
        raise ValueError(
            f"{path} does not record what its training plans cover (built before e2wm recorded it): "
            "rebuild the corpus with `e2wm build`"
        )
    return record


def seen_activities(corpus: str | Path) -> set[str]:
    """The activities of the plans a corpus trains on (its ``e2wm_corpus.json``; a local folder or a
    Hub dataset id). An EAI task's activity is *seen* when it is one of them."""
    return set(_training_record(corpus)["training_activities"])


def training_programs(corpus: str | Path) -> set[str]:
    """The RobotHow programs (``file27_2``) of the plans a corpus trains on: an EAI task whose program
    is one of them was trained on (the corpus did not hold it out)."""
    return set(_training_record(corpus).get("training_programs", []))
