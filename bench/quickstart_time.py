"""Benchmark: where the quickstart's training time goes on a CPU, and what a setting saves.

    python bench/quickstart_time.py                  # Gemma-3-270M (e2wm:gemma-3-270m), 3 rounds of 4 steps each
    python bench/quickstart_time.py --compare lm_head   # trl's fused LM head on every position vs labelled ones
    python bench/quickstart_time.py --model e2wm:tiny --steps 3 --rounds 1   # a quick check of the script

``--compare lm_head``: trl 1.16's fused LM head projects every position of the batch off Triton devices (for
XLA's fixed shapes); ``EWCLoRATrainer`` narrows it to the labelled positions on a CPU. Same steps, with
checkpointing off, through trl's own ``compute_loss`` (every position) and e2wm's (labelled only). Last line:

    lm_head_step_time_ratio=<every / labelled> every_s=<median s/step> labelled_s=<median s/step>

``--compare checkpointing`` (the default):

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


def _time_steps(trainer, steps: int, every_position: bool = False) -> list[float]:
    """Seconds of each of ``steps`` optimizer steps (forward, backward, AdamW) on consecutive batches;
    ``every_position``: through trl's own ``compute_loss`` (its fused LM head on every position)."""
    from trl import SFTTrainer

    model, optimizer = trainer.model, trainer.create_optimizer()
    batches = iter(trainer.get_train_dataloader())
    compute_loss = (lambda m, b: SFTTrainer.compute_loss(trainer, m, b)) if every_position else trainer.compute_loss
    times = []
    model.train()
    for _ in range(steps):
        batch = next(batches)
        began = time.perf_counter()
        loss = compute_loss(model, batch)
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
    parser.add_argument("--compare", choices=["checkpointing", "lm_head"], default="checkpointing")
    args = parser.parse_args()
    import torch
    import transformers

    from e2wm.models import resolve_model

    transformers.logging.set_verbosity_error()
    path = resolve_model(args.model)
    print(f"model {args.model}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{platform.machine()}, Python {platform.python_version()}, CPU only")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        if args.compare == "lm_head":  # one trainer (checkpointing off), through trl's compute_loss or e2wm's
            trainer = _trainer(path, False, f"{folder}/run")
            variants = {"every": (trainer, True), "labelled": (trainer, False)}
        else:
            trainers = {flag: _trainer(path, flag, f"{folder}/{flag}") for flag in (True, False)}
            for flag, trainer in trainers.items():
                trainer.model.gradient_checkpointing_enable() if flag else trainer.model.gradient_checkpointing_disable()
            variants = {"on": (trainers[True], False), "off": (trainers[False], False)}
        medians: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name in list(variants) if round_ % 2 == 0 else list(variants)[::-1]:
                trainer, every = variants[name]
                times = _time_steps(trainer, args.steps + 1, every_position=every)[1:]  # the first step warms up
                medians[name].append(statistics.median(times))
                print(f"round {round_}: {args.compare} {name:<8} {statistics.median(times):.2f} s/step "
                      f"(steps: {', '.join(f'{t:.2f}' for t in times)})")  # fmt: skip
    (first, a), (second, b) = ((name, statistics.median(values)) for name, values in medians.items())
    print(f"{args.compare}_step_time_ratio={a / b:.2f} {first}_s={a:.2f} {second}_s={b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
