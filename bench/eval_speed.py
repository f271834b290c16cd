"""Benchmark: one multiple-choice file scored by e2wm and by lm-evaluation-harness, same model, same run.

    python bench/eval_speed.py                          # Gemma-3-270M, 40 questions × 6 rooms, 300–600-token prompts
    python bench/eval_speed.py --tiny                   # smoke run: e2wm:tiny (random weights), 8 questions
    python bench/eval_speed.py --model PATH_OR_ID --questions 100 --profile

Run it where lm-eval is installed, in its own venv (lm-eval pins its own packages; keep them out of the
project's)::

    python3 -m venv /work/lmeval-venv && . /work/lmeval-venv/bin/activate
    pip install torch==2.13.0 && pip install -e . && pip install lm-eval
    HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python bench/eval_speed.py

The file: the paper's multiple-choice format (JSON Lines ``{"input", "answer", "answer_list"}``, the
input holding the few-shot demos and ending with ``Answer:``), written deterministically by this script
in the shape of object-location QA (a story of people carrying objects between rooms; "Where was the
mug before the bedroom?"; six rooms to choose from, several of them two tokens long). The paper's own
files are not available offline.

Both sides get the same loaded model (fp32) and tokenizer, after a warm-up forward pass:

* e2wm: ``tasks_from_files`` + ``run_task`` (what ``e2wm eval --task-files`` runs): length-normalised
  accuracy, ``Σ log p(answer tokens | prompt) / #answer tokens``, answers scored as ``" " + answer``.
* lm-eval: ``simple_evaluate`` on a local task YAML (``dataset_path: json`` on the same file,
  ``output_type: multiple_choice``, target delimiter ``" "``), ``HFLM`` wrapping the loaded model, its
  default batch size 1 (``--lmeval-batch-size``; it keeps full-vocabulary log-softmax over every
  position, 262k × prompt length floats per sequence on Gemma). lm-eval's ``acc_norm`` divides by the
  answer's *characters*, not tokens; to compare like with like, its per-option log-likelihoods (logged
  samples) are divided by the answer's token count, which is e2wm's normalisation. Its own ``acc`` and
  ``acc_norm`` are printed too.

Printed: prompt lengths; each side's wall and CPU seconds (lm-eval's whole ``simple_evaluate`` and its
``loglikelihood`` calls alone) and accuracy; per-question disagreements between e2wm's choice and lm-eval's token-normalised choice, each
checked for being a tie (both options' scores within 1e-4, the float noise between two implementations);
the largest per-option log-likelihood difference. ``--profile`` adds where e2wm's time goes (torch
profiler over ``--profile-questions`` questions). Last line:

    eval_speedup=<lm-eval's loglikelihood CPU seconds / e2wm's CPU seconds>

CPU seconds of this process, because the machines here are shared: other jobs stretch wall time by
whatever they take, not by the work done (both sides run in this one process on the same torch threads;
``--threads 1`` keeps OpenMP threads from spinning while descheduled). The wall ratios are printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOMS = [
    "kitchen",
    "bedroom",
    "bathroom",
    "living room",
    "dining room",
    "home office",
    "entrance hall",
    "laundry room",
]
OBJECTS = ["mug", "book", "towel", "plate", "remote control", "pillow", "laptop", "apple", "shoe", "lamp", "cup"]
PEOPLE = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry"]
HEADER = "Read the story and answer the question with the name of a room.\n\n"
TIE = 1e-4  # two options whose scores differ by less are a tie (float noise between implementations)


def story(rng: random.Random) -> tuple[str, str, str]:
    """A story, its question and the answer: one person carries an object through 3–5 rooms, others move
    about; the question asks where the object was right before or after one of its rooms."""
    carrier, *others = rng.sample(PEOPLE, 3)
    obj = rng.choice(OBJECTS)
    path = rng.sample(ROOMS, rng.randint(3, 5))
    lines = [f"{carrier} walked to the {path[0]}.", f"{carrier} grabbed the {obj}."]
    for room in path[1:]:
        for _ in range(rng.randint(0, 2)):
            other, thing = rng.choice(others), rng.choice([o for o in OBJECTS if o != obj])
            lines.append(f"{other} walked to the {rng.choice(ROOMS)}. {other} looked at the {thing}.")
        lines.append(f"{carrier} walked to the {room} with the {obj}.")
    lines.append(f"{carrier} put the {obj} down.")
    index = rng.randrange(1, len(path)) if rng.random() < 0.5 else rng.randrange(0, len(path) - 1)
    if index > 0 and (index == len(path) - 1 or rng.random() < 0.5):
        question, answer = f"Where was the {obj} before the {path[index]}?", path[index - 1]
    else:
        question, answer = f"Where was the {obj} after the {path[index]}?", path[index + 1]
    return " ".join(lines), question, answer


def write_questions(path: Path, count: int, demos: int, seed: int) -> list[dict[str, Any]]:
    """``count`` questions with ``demos`` solved demos each, written as the paper's JSON Lines."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        shots = []
        for _ in range(demos):
            text, question, answer = story(rng)
            shots.append(f"{text}\nQuestion: {question}\nAnswer: {answer}\n\n")
        text, question, answer = story(rng)
        options = [answer, *rng.sample([r for r in ROOMS if r != answer], 5)]
        rng.shuffle(options)
        prompt = HEADER + "".join(shots) + f"{text}\nQuestion: {question}\nAnswer:"
        rows.append({"input": prompt, "answer": answer, "answer_list": options})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return rows


def lmeval_yaml(folder: Path, data: Path, name: str) -> None:
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: input\n"
        "doc_to_choice: answer_list\n"
        '"doc_to_target": "{{answer_list.index(answer)}}"\n'
        'target_delimiter: " "\n'
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n",
        encoding="utf-8",
    )


def load(name: str):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from e2wm.models import resolve_model

    folder = resolve_model(name)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, tokenizer


class Seconds:
    """Wall and CPU (this process) seconds spent inside ``with`` blocks, added up."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Seconds:
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu

    def __str__(self) -> str:
        return f"{self.wall:7.1f} s wall, {self.cpu:7.1f} s CPU"


def run_lmeval(
    model, tokenizer, folder: Path, data: Path, batch_size: int
) -> tuple[dict[str, Any], Seconds, Seconds, Any]:
    """lm-eval's results with logged samples, its whole run's time, its loglikelihood calls' time, its HFLM."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    name = "e2wm_speed_mc"
    lmeval_yaml(folder, data, name)
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device))
    inner, calls = lm.loglikelihood, Seconds()

    def timed(requests, *args, **kwargs):
        with calls:
            return inner(requests, *args, **kwargs)

    lm.loglikelihood = timed
    with Seconds() as whole:
        results = simple_evaluate(
            model=lm, tasks=[name], task_manager=TaskManager(include_path=str(folder)), log_samples=True, num_fewshot=0
        )
    return results, whole, calls, lm


def compare(model, tokenizer, lm, rows, samples, e2wm_picks, batch_size: int) -> dict[str, Any]:
    """lm-eval's token-normalised choices from its logged log-likelihoods, and how they differ from e2wm's."""
    from e2wm.evaluation.scoring import score_continuations

    picks, disagreements, ties, tokenized_apart, worst = [], 0, 0, 0, 0.0
    for row, sample, ours_pick in zip(rows, samples, e2wm_picks, strict=True):
        options = [" " + o for o in row["answer_list"]]
        logliks = [float(response[0]) for response in sample["filtered_resps"]]
        counts = []
        for option in options:
            _, continuation_ids = lm._encode_pair(row["input"], option)  # lm-eval's own split of the answer
            counts.append(len(continuation_ids))
            tokenized_apart += continuation_ids != tokenizer(option, add_special_tokens=False)["input_ids"]
        theirs = [ll / n for ll, n in zip(logliks, counts, strict=True)]
        pick = max(range(len(options)), key=theirs.__getitem__)
        picks.append(pick)
        ours = score_continuations(model, tokenizer, [(row["input"], o) for o in options], batch_size)  # untimed
        worst = max(worst, *(abs(s.logprob - ll) for s, ll in zip(ours, logliks, strict=True)))
        if pick != ours_pick:
            disagreements += 1
            ties += (
                abs(ours[pick].normalised - ours[ours_pick].normalised) < TIE
                and abs(theirs[pick] - theirs[ours_pick]) < TIE
            )
    correct = sum(r["answer_list"][p] == r["answer"] for r, p in zip(rows, picks, strict=True))
    return {
        "accuracy": correct / len(rows),
        "disagreements": disagreements,
        "ties": ties,
        "tokenized_apart": tokenized_apart,
        "worst": worst,
    }


def profile_e2wm(model, tokenizer, task, batch_size: int) -> None:
    """Where e2wm's time goes: the scorer's regions, the top operators, the LM head apart."""
    from torch.profiler import ProfilerActivity, profile

    from e2wm.evaluation.suite import run_task

    began = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run_task(model, tokenizer, task, batch_size=batch_size)
    wall = time.perf_counter() - began
    events = prof.key_averages()
    regions = {e.key: e for e in events if e.key.startswith("e2wm.")}
    vocab = model.get_output_embeddings().weight.shape[0]
    print(f"profile: {len(task.examples)} questions, {wall:.2f} s wall under the profiler")
    covered = 0.0
    for key in ("e2wm.tokenize", "e2wm.prefix_pass", "e2wm.cache_expand", "e2wm.option_pass", "e2wm.logprobs"):
        if key in regions:
            total, own = regions[key].cpu_time_total / 1e6, regions[key].self_cpu_time_total / 1e6
            covered += total
            print(f"  {key:<20} {total:8.2f} s ({100 * total / wall:5.1f}%), of which outside torch ops {own:6.2f} s")
    print(f"  {'rest (run_task, Python)':<20} {wall - covered:8.2f} s ({100 * (wall - covered) / wall:5.1f}%)")
    by_shape = prof.key_averages(group_by_input_shape=True)
    head = sum(
        e.self_cpu_time_total
        for e in by_shape
        if e.key in ("aten::mm", "aten::addmm", "aten::matmul", "aten::linear")
        and any(vocab in shape for shape in e.input_shapes if shape)
    )
    print(f"  LM head matmuls ({vocab}-token vocabulary): {head / 1e6:.2f} s")
    top = sorted((e for e in events if e.key.startswith("aten::")), key=lambda e: -e.self_cpu_time_total)[:8]
    for e in top:
        print(f"  {e.key:<32} self {e.self_cpu_time_total / 1e6:7.2f} s  calls {e.count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Hub id, folder or e2wm: name (default e2wm:gemma-3-270m)")
    parser.add_argument("--tiny", action="store_true", help="smoke run: e2wm:tiny, 8 questions")
    parser.add_argument("--questions", type=int, default=None, help="default 40 (8 with --tiny)")
    parser.add_argument("--demos", type=int, default=3, help="solved demos in each prompt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8, help="e2wm's batch size (its default)")
    parser.add_argument("--lmeval-batch-size", type=int, default=1, help="lm-eval's batch size (its default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--profile", action="store_true", help="also profile e2wm's scoring")
    parser.add_argument("--profile-questions", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    work = Path(tempfile.mkdtemp(prefix="e2wm-eval-speed-"))
    os.environ["HF_DATASETS_CACHE"] = str(work / "datasets-cache")  # a fresh file is never read from a stale cache

    import torch

    from e2wm.evaluation.suite import run_task
    from e2wm.evaluation.tasks import EvalTask, tasks_from_files

    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.model or ("e2wm:tiny" if args.tiny else "e2wm:gemma-3-270m")
    questions = args.questions or (8 if args.tiny else 40)
    model, tokenizer = load(name)
    data = work / "object_location_qa.json"  # the stem makes e2wm pick length-normalised accuracy
    rows = write_questions(data, questions, args.demos, args.seed)
    lengths = [len(tokenizer(r["input"])["input_ids"]) for r in rows]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, {torch.get_num_threads()} torch threads, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"torch {torch.__version__}; model {name}: {type(model).__name__}, {sum(p.numel() for p in model.parameters()):,} parameters, fp32"
    )
    print(
        f"file: {questions} questions × {len(rows[0]['answer_list'])} options, {args.demos} demos each; prompt tokens "
        f"min {min(lengths)}, median {statistics.median(lengths):.0f}, max {max(lengths)}"
    )

    with torch.no_grad():  # warm-up: first-call costs belong to neither side
        model(input_ids=torch.tensor([tokenizer(rows[0]["input"])["input_ids"]]))

    (task,) = tasks_from_files([data])
    with Seconds() as e2wm_time:
        result = run_task(model, tokenizer, task, batch_size=args.batch_size)
    e2wm_picks = [r["answer_list"].index(p["prediction"]) for r, p in zip(rows, result["predictions"], strict=True)]
    print(f"e2wm:    {e2wm_time}  accuracy {result['value']:.3f} (length-normalised, batch {args.batch_size})")

    results, lmeval_time, lmeval_calls, lm = run_lmeval(model, tokenizer, work, data, args.lmeval_batch_size)
    task_name = next(iter(results["results"]))
    metrics = results["results"][task_name]
    samples = sorted(results["samples"][task_name], key=lambda s: s["doc_id"])
    found = compare(model, tokenizer, lm, rows, samples, e2wm_picks, args.batch_size)
    print(
        f"lm-eval: {lmeval_time}  accuracy {found['accuracy']:.3f} (token-normalised from its log-likelihoods); "
        f"its acc {metrics['acc,none']:.3f}, acc_norm (per character) {metrics['acc_norm,none']:.3f}"
    )
    print(f"         of which its loglikelihood calls: {lmeval_calls} (batch {args.lmeval_batch_size})")
    options = sum(len(r["answer_list"]) for r in rows)
    print(f"answers lm-eval tokenized otherwise (whole string, then split): {found['tokenized_apart']} of {options}")
    print(f"largest |log p e2wm - log p lm-eval| over the {options} options: {found['worst']:.2e}")
    print(f"disagreements: {found['disagreements']} of {len(rows)} questions, of which ties: {found['ties']}")
    if args.profile:
        subset = EvalTask(task.name, task.kind, task.metric, task.examples[: args.profile_questions], task.source)
        profile_e2wm(model, tokenizer, subset, args.batch_size)
    print(
        f"lm-eval / e2wm: loglikelihood calls {lmeval_calls.wall / e2wm_time.wall:.2f} (wall), "
        f"{lmeval_calls.cpu / e2wm_time.cpu:.2f} (CPU); whole lm-eval run {lmeval_time.wall / e2wm_time.wall:.2f} (wall)"
    )
    print(f"eval_speedup={lmeval_calls.cpu / e2wm_time.cpu:.2f}")


if __name__ == "__main__":
    main()
