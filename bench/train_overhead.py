"""Benchmark: what EWC-LoRA adds to a training step, against plain trl ``SFTTrainer`` + LoRA.

    python bench/train_overhead.py                                    # hidden 768, 4 layers, 5 rounds (~9 min)
    python bench/train_overhead.py --hidden 256 --steps 6 --rounds 1  # quicker

Workload: the same Llama-shaped model with random weights (``tests/tiny.py``'s builder: ``--layers`` layers of
width ``--hidden``, vocabulary 400), the same prompt/completion data (household stories, ~100-180 tokens), the same
number of optimizer steps (batch 4, AdamW, LoRA r=8 alpha=32 on q_proj/v_proj, gradient checkpointing on: trl's
defaults otherwise). ``plain`` is ``trl.SFTTrainer``; ``ewc`` is ``EWCLoRATrainer`` with λ = 0.5 and a real Fisher,
estimated by ``e2wm.ewc.build_fisher`` on the model over 32 documents, paper_int8-normalized when loaded.

Method: every run is a fresh subprocess with torch on one thread (steadier on a shared CPU). Each round runs both
variants, each for time then for memory, plain first in even rounds and ewc first in odd ones, so that the runs
compared see the same machine load and neither always goes first.
Time: a callback times every optimizer step (``on_step_begin`` → ``on_step_end``), the first ``--warmup`` steps
are dropped, the run's median is kept. Memory: the peak anonymous resident memory (``RssAnon``: heap and anonymous
maps; not the code pages of torch kernels that only one variant happens to call), sampled every 2 ms by a thread
from the trainer's construction (where the Fisher is loaded) to the end of training, with glibc's mmap threshold
fixed (``MALLOC_MMAP_THRESHOLD_=131072``, its default) so that freed large buffers leave the process instead of
being counted; whole-process ``ru_maxrss`` is printed too. Each round gives an ewc/plain ratio; the medians over
rounds are reported. For reference the penalty alone (λ·P and its gradient, what EWC-LoRA adds to a step) is timed
on the same adapters and Fisher. The last line is

    ewc_step_time_ratio=<ewc / plain step time> ewc_peak_mem_ratio=<ewc / plain peak anonymous memory>

Goals: step time ratio ≤ 1.03; peak memory at most the Fisher's own size above plain. The penalty's cost does not
depend on the tokens of a step, the step's does: with the paper's batches (20 × up to 800 tokens) the time ratio is
far closer to 1 than here. CPU only: GPU figures were not measured (no GPU lent).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAMBDA = 0.5
MAX_LENGTH = 256
# glibc raises its mmap threshold after the first large free and then keeps freed buffers in its heap, so RSS would
# count whatever the allocator retains. For the memory runs, a fixed threshold (glibc's default value) returns freed
# large buffers to the system: the resident memory follows the live tensors, for both variants alike. (It costs
# system time, so the timing runs do not use it.)
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _data(count: int):
    from datasets import Dataset

    from tests.tiny import sample_documents

    rows = []
    for doc in sample_documents(count, seed=5, min_sentences=10, max_sentences=18):  # ~100-180 tokens
        first, _, rest = doc.partition(". ")
        rows.append({"prompt": first + ".", "completion": " " + rest})
    return Dataset.from_list(rows)


class AnonPeak:
    """Samples the process's anonymous resident memory (``RssAnon``: heap and anonymous maps, not code pages) every
    ``interval`` seconds in a thread and keeps the largest value, in bytes."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> int:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no RssAnon in /proc/self/status (Linux only)")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(self.interval)

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def child(variant: str, measure: str, model_dir: str, fisher_dir: str, steps: int, warmup: int, out: str) -> None:
    """One training run; writes the median step time (``measure=time``) or the peak memory (``memory``)."""
    import torch

    torch.set_num_threads(1)
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from e2wm import EWCLoRAConfig, EWCLoRATrainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.started = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.times.append(time.perf_counter() - self.started)

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(model_dir)
    fields = dict(
        output_dir=str(Path(out).with_suffix("")), use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        logging_steps=10**6, disable_tqdm=True, max_steps=steps, per_device_train_batch_size=4, learning_rate=1e-4,
        max_length=MAX_LENGTH, seed=0,
    )  # fmt: skip
    lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
    timer = StepTimer()
    data = _data(4 * steps)
    memory = AnonPeak() if measure == "memory" else None
    with memory or contextlib.nullcontext():  # from the trainer's construction (the Fisher is loaded there) on
        if variant == "plain":
            trainer = SFTTrainer(model=model, args=SFTConfig(**fields), train_dataset=data, processing_class=tok,
                                 peft_config=lora, callbacks=[timer])  # fmt: skip
        else:
            args = EWCLoRAConfig(**fields, ewc_lambda=LAMBDA, fisher=fisher_dir, fisher_normalization="paper_int8")
            trainer = EWCLoRATrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                                     peft_config=lora, callbacks=[timer])  # fmt: skip
        trainer.train()
    result = {
        "median_s": statistics.median(timer.times[warmup:]) if measure == "time" else None,
        "anon_peak": memory.peak if memory else None,
        "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    Path(out).write_text(json.dumps(result))


def prepare(folder: Path, hidden: int, layers: int) -> tuple[Path, Path, int]:
    """The model folder and its Fisher folder; returns the Fisher's size in bytes (fp32)."""
    import torch

    from e2wm.ewc import FisherArguments, build_fisher
    from tests.tiny import sample_documents, save_pretrained, tiny_llama, tiny_tokenizer

    torch.set_num_threads(1)
    tok = tiny_tokenizer()
    model_dir = save_pretrained(tiny_llama(tok, hidden=hidden, layers=layers), tok, folder / "model")
    text = folder / "documents.txt"
    text.write_text("\n".join(sample_documents(32, seed=9)) + "\n", encoding="utf-8")
    args = FisherArguments(
        model=str(model_dir), target_modules=["q_proj", "v_proj"], text=str(text), out=str(folder / "fisher"),
        num_docs=32, max_length=64, device="cpu",
    )  # fmt: skip
    build = build_fisher(args, progress=False)
    return model_dir, build.folder, (build.folder / "fisher.safetensors").stat().st_size


def time_penalty(model_dir: Path, fisher_dir: Path, repeats: int = 20) -> float:
    """Seconds for λ·P and its gradient on the same adapters and Fisher (median of ``repeats``)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from e2wm.ewc import ewc_penalty, load_fisher, normalize_fisher

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=32, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(model, config)
    fisher = load_fisher(fisher_dir, model)
    fisher = normalize_fisher(dict(fisher), "paper_int8", fisher.metadata["layouts"])
    times = []
    for _ in range(repeats + 2):
        started = time.perf_counter()
        (LAMBDA * ewc_penalty(model, fisher)).backward()
        times.append(time.perf_counter() - started)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per timing run")
    parser.add_argument("--memory-steps", type=int, default=3, help="optimizer steps per memory run")
    parser.add_argument("--warmup", type=int, default=3, help="first steps of each timing run not timed")
    parser.add_argument("--rounds", type=int, default=5, help="plain/ewc pairs of each kind, alternating")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "MEASURE"), help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--fisher-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, measure = args.child
        steps = args.steps if measure == "time" else args.memory_steps
        child(variant, measure, args.model_dir, args.fisher_dir, steps, args.warmup, args.out)
        return

    print(f"machine: {platform.platform()}, Python {platform.python_version()}, CPU only, torch on 1 thread per run")
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="e2wm-train-overhead-") as tmp:
        folder = Path(tmp)
        model_dir, fisher_dir, fisher_bytes = prepare(folder, args.hidden, args.layers)
        print(f"model: Llama-shaped, hidden {args.hidden}, {args.layers} layers; Fisher {fisher_bytes / 2**20:.1f} MiB")
        print(f"{'round':>5} {'variant':>7} {'median step s':>14} {'peak anon MiB':>14} {'peak RSS MiB':>13}")
        for round_ in range(args.rounds):
            order = ("plain", "ewc") if round_ % 2 == 0 else ("ewc", "plain")  # neither always runs first
            for variant in order:
                for measure in ("time", "memory"):
                    out = folder / f"{variant}-{measure}-{round_}.json"
                    env = {**os.environ, "OMP_NUM_THREADS": "1", **(MEMORY_ENV if measure == "memory" else {})}
                    command = [sys.executable, __file__, "--child", variant, measure, "--model-dir", str(model_dir),
                               "--fisher-dir", str(fisher_dir), "--steps", str(args.steps), "--memory-steps",
                               str(args.memory_steps), "--warmup", str(args.warmup), "--out", str(out)]  # fmt: skip
                    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, env=env)
                    results.setdefault((variant, measure), []).append(json.loads(out.read_text()))
                step = results[(variant, "time")][-1]["median_s"]
                mem = results[(variant, "memory")][-1]
                print(f"{round_:>5} {variant:>7} {step:>14.4f} {mem['anon_peak'] / 2**20:>14.1f} "
                      f"{mem['rss_peak'] / 2**20:>13.1f}")  # fmt: skip
        penalty_s = time_penalty(model_dir, fisher_dir)

    def paired(measure: str, key: str, combine) -> float:  # type: ignore[no-untyped-def]
        pairs = zip(results[("plain", measure)], results[("ewc", measure)], strict=True)
        return statistics.median(combine(e[key], p[key]) for p, e in pairs)

    time_ratio = paired("time", "median_s", lambda e, p: e / p)
    mem_ratio = paired("memory", "anon_peak", lambda e, p: e / p)
    extra = paired("memory", "anon_peak", lambda e, p: e - p)
    plain_step = statistics.median(r["median_s"] for r in results[("plain", "time")])
    plain_peak = statistics.median(r["anon_peak"] for r in results[("plain", "memory")])
    bound = 1 + fisher_bytes / plain_peak
    print(f"penalty alone (λ·P and its gradient, once per optimizer step): {penalty_s * 1e3:.1f} ms = "
          f"{penalty_s / plain_step:.1%} of a plain step ({plain_step:.3f} s)")  # fmt: skip
    print(f"ewc − plain peak anonymous memory (median over rounds): {extra / 2**20:.1f} MiB; "
          f"the Fisher: {fisher_bytes / 2**20:.1f} MiB")  # fmt: skip
    print(f"goals: step time ratio ≤ 1.03: {'met' if time_ratio <= 1.03 else 'NOT met'}; "
          f"peak memory ratio ≤ 1 + Fisher/plain peak = {bound:.4f}: {'met' if mem_ratio <= bound else 'NOT met'}")  # fmt: skip
    print(f"ewc_step_time_ratio={time_ratio:.3f} ewc_peak_mem_ratio={mem_ratio:.3f}")


if __name__ == "__main__":
    main()
