"""Benchmark: where the quickstart's training time goes on a CPU, and what a setting saves.

    python bench/quickstart_time.py                  # Gemma-3-270M (e2wm:gemma-3-270m), 3 rounds of 4 steps each
    python bench/quickstart_time.py --model e2wm:tiny --steps 3 --rounds 1   # a quick check of the script

trl turns gradient checkpointing on by default (``SFTConfig.gradient_checkpointing=True``): activations are
recomputed in the backward pass to save memory. On a CPU run of a 270M model with memory to spare, that is
pure cost. This bench trains the quickstart's LoRA (r = 8 on q_proj/v_proj, batch 4, its learning rate) on the
same prompt/completion rows (the quickstart's length: a plan-generation prompt and plan, ~150-300 tokens) with
checkpointing on and off, alternating in the same process for ``--rounds`` rounds (the machines are shared: the
ratio of the medians is what counts), and reports the median step time of each. Last line:

    checkpointing_step_time_ratio=<on / off> on_s=<median s/step> off_s=<median s/step>
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _rows(count: int) -> list[dict[str, str]]:
    import random

    rng = random.Random(0)
    rooms = ["kitchen", "living room", "bedroom", "bathroom", "home office"]
    things = ["cup", "plate", "book", "towel", "remote control", "laptop", "pillow", "apple", "bowl", "lamp"]
    rows = []
    for _ in range(count):
        items = rng.sample(things, 5)
        facts = " ".join(f"The {t} is in the {rng.choice(rooms)}." for t in items)
        plan = " ".join(f"Walk to {rng.choice(rooms)}. Walk to {t}. Grab {t}. Put {t} on table." for t in items[:4])
        prompt = f"Q: How to tidy up? Given items include {', '.join(items)}. {facts}\nA:"
        rows.append({"prompt": prompt, "completion": " " + plan})
    return rows


def _trainer(model_path: str, checkpointing: bool, folder: str):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback

    from e2wm import EWCLoRAConfig, EWCLoRATrainer
    from e2wm.models import load_causal_lm

    model, tokenizer = load_causal_lm(model_path, device="cpu", train=True)
    args = EWCLoRAConfig(
        output_dir=folder, use_cpu=True, report_to="none", disable_tqdm=True, save_strategy="no", logging_steps=1000,
        penalty="none", ewc_lambda=0.0, max_steps=10**6, per_device_train_batch_size=4, learning_rate=5e-4,
        max_length=384, gradient_checkpointing=checkpointing, train_sampling_strategy="sequential", seed=0,
    )  # fmt: skip
    lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = EWCLoRATrainer(model=model, args=args, train_dataset=Dataset.from_list(_rows(64)),
                             processing_class=tokenizer, peft_config=lora)  # fmt: skip
    trainer.remove_callback(PrinterCallback)
    return trainer


def _time_steps(trainer, steps: int) -> list[float]:
    """Seconds of each of ``steps`` optimizer steps (forward, backward, AdamW) on consecutive batches."""
    model, optimizer = trainer.model, trainer.create_optimizer()
    batches = iter(trainer.get_train_dataloader())
    times = []
    model.train()
    for _ in range(steps):
        batch = next(batches)
        began = time.perf_counter()
        loss = trainer.compute_loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="e2wm:gemma-3-270m")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant and round (after 1 warm-up)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch
    import transformers

    from e2wm.models import resolve_model

    transformers.logging.set_verbosity_error()
    path = resolve_model(args.model)
    print(f"model {args.model}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{platform.machine()}, Python {platform.python_version()}, CPU only")  # fmt: skip
    medians: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        trainers = {flag: _trainer(path, flag, f"{folder}/{flag}") for flag in (True, False)}
        for flag, trainer in trainers.items():
            trainer.model.gradient_checkpointing_enable() if flag else trainer.model.gradient_checkpointing_disable()
        for round_ in range(args.rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            for flag in order:
                times = _time_steps(trainers[flag], args.steps + 1)[1:]  # the first step warms up
                medians[flag].append(statistics.median(times))
                print(f"round {round_}: checkpointing {'on ' if flag else 'off'} "
                      f"{statistics.median(times):.2f} s/step (steps: {', '.join(f'{t:.2f}' for t in times)})")  # fmt: skip
    on, off = statistics.median(medians[True]), statistics.median(medians[False])
    print(f"checkpointing_step_time_ratio={on / off:.2f} on_s={on:.2f} off_s={off:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
