"""The GPU promises of issue 13, measured in one run on one GPU (about 5 minutes expected on an H100/H200; < 8 wanted).

    python bench/gpu.py                    # CUDA: the real sizes below
    python bench/gpu.py --cpu              # tiny sizes on the CPU (automatic without CUDA): every part, end to end
    python bench/gpu.py --parts fisher,penalty    # what the bare GPU image can run (no trl/datasets/bitsandbytes)
    bash bench/gpu.sh                      # installs carried wheels (./wheels) first, then runs this

Parts (``--parts``, all by default):

* ``qlora4``: a LLaMA-13B-shaped model (LlamaConfig with 13B's shapes: 40 layers, hidden 5120, MLP 13824, 40
  heads, vocabulary 32000) with random weights, built without a download and without 13B weights on the host: the
  skeleton on the meta device, bitsandbytes layers put in by transformers' own quantizer, then each weight drawn
  in bf16 on the GPU and quantized there, one at a time. 4-bit NF4 with double quantisation, LoRA r=8 alpha=32 on
  q_proj/v_proj, a bf16 Fisher artifact of the q/v shapes (random, positive; paper_int8 at load, as the 13B
  recipe), sequence 800, micro-batch 1, gradient checkpointing, bf16, AdamW: ``EWCLoRATrainer`` itself, once with
  the penalty (λ = 2) and once without (``penalty: none``), in this process. Measured: peak GPU memory
  (``torch.cuda.max_memory_allocated``, and ``max_memory_reserved``, what the card must hold) from the
  trainer's construction to the end, and tokens per second over the steps after ``--warmup`` (median step).
  Goal: peak reserved < 20 GiB with EWC (it trains on a 24 GB card).
* ``lora8``: the same with an 8-bit base (``LLM.int8()``; each weight goes through the host once, as
  transformers loads 8-bit weights).
* ``fisher``: a GPT-Neo-1.3B-shaped model (24 layers, hidden 2048, global/local attention, vocabulary 50257) in
  fp32 with random weights; e2wm's batched estimator (``estimate_fisher``, batch 8) against the paper's loop
  (``bench/fisher.py``'s ``reference_fisher``: one document at a time, gradients of every parameter), the same
  documents (household stories up to ``--fisher-max-length`` tokens), TF32 off. Best of ``--rounds``
  alternating rounds. Goals: speedup ≥ 4, max relative error ≤ 1e-4; and e2wm's tokens per second.
* ``penalty``: LLaMA-13B q_proj/v_proj shapes (80 modules of 5120×5120, r=8, fp32 A and B, bf16 F as in
  training): forward + backward of e2wm's chunked ``lora_penalty`` against the naive ``(F * (s*B@A)**2).sum()``
  (``bench/penalty.py``'s two variants); best time of 3 after a warm-up, extra peak GPU memory above A, B and F.

Needs torch, transformers, peft, accelerate (every part) and trl, datasets, bitsandbytes (``qlora4``, ``lora8``).
What is missing is named before anything runs, with how to install it or carry its wheels (docs/training.md).
``--cpu`` runs every part at tiny sizes in well under a minute (``tests/test_gpu_script.py`` runs it in CI);
its numbers say that the code paths work, nothing about a GPU (memory figures are ``n/a`` there). Last line:

    gpu_peak_gib_4bit=… gpu_peak_gib_4bit_plain=… tokens_per_s_4bit=… tokens_per_s_4bit_plain=…
    gpu_peak_gib_8bit=… gpu_peak_gib_8bit_plain=… tokens_per_s_8bit=… tokens_per_s_8bit_plain=…
    fisher_speedup=… fisher_max_rel_err=… fisher_tokens_per_s=… penalty_speedup=… penalty_extra_mem_ratio=…

(one line; ``gpu_peak_gib_*`` is peak reserved memory, ``skipped`` for parts not run).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PARTS = ("qlora4", "lora8", "fisher", "penalty")
TRAINING_PACKAGES = ("trl", "datasets", "bitsandbytes")
NEEDS = {part: ("torch", "transformers", "peft", "accelerate") for part in PARTS}
NEEDS["qlora4"] = NEEDS["lora8"] = (*NEEDS["qlora4"], *TRAINING_PACKAGES)
TARGETS = ["q_proj", "v_proj"]
GIB = 2**30


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the GPU run and the CPU smoke run."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    vocab: int
    seq: int
    neo_hidden: int
    neo_layers: int
    neo_heads: int
    neo_vocab: int
    fisher_docs: int
    fisher_sentences: tuple[int, int]
    penalty_layers: int
    penalty_dim: int


GPU = Sizes(hidden=5120, intermediate=13824, layers=40, heads=40, vocab=32000, seq=800, neo_hidden=2048,
            neo_layers=24, neo_heads=16, neo_vocab=50257, fisher_docs=64, fisher_sentences=(10, 90),
            penalty_layers=40, penalty_dim=5120)  # fmt: skip
CPU = Sizes(hidden=128, intermediate=256, layers=2, heads=4, vocab=512, seq=32, neo_hidden=64, neo_layers=2,
            neo_heads=4, neo_vocab=512, fisher_docs=8, fisher_sentences=(1, 6), penalty_layers=2,
            penalty_dim=128)  # fmt: skip


# ------------------------------------------------------------------------------------------------ packages
def missing_packages(parts: list[str]) -> dict[str, str]:
    """``{package: why}`` for each package the chosen parts need that does not import (transitive failures too)."""
    missing = {}
    for package in dict.fromkeys(p for part in parts for p in NEEDS[part]):
        try:
            importlib.import_module(package)
        except Exception as err:  # ImportError, or a broken install raising anything
            missing[package] = f"{type(err).__name__}: {err}"
    return missing


def explain_missing(missing: dict[str, str], parts: list[str]) -> str:
    blocked = [part for part in parts if set(NEEDS[part]) & set(missing)]
    lines = [f"bench/gpu.py: cannot run {', '.join(blocked)}: missing {', '.join(missing)}"]
    lines += [f"  {package}: {why}" for package, why in missing.items()]
    lines += [
        "With a network: pip install 'trl==1.16.0' 'datasets==5.2.0' 'bitsandbytes==0.50.2' (the versions e2wm is",
        "tested with). Offline, carry the wheels: on a machine with a network,",
        "  pip download --only-binary=:all: --python-version 3.11 --platform manylinux_2_24_x86_64 \\",
        "      -d wheels 'trl==1.16.0' 'datasets==5.2.0' 'bitsandbytes==0.50.2'   # the GPU machine's Python/platform",
        "then copy wheels/ next to this repository and run `bash bench/gpu.sh` (it installs them with",
        "pip install --no-index --find-links wheels ...). See docs/training.md, 'Measuring on a GPU'.",
        f"Without them: python bench/gpu.py --parts {','.join(p for p in parts if p not in blocked) or 'fisher,penalty'}",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- measuring
class Device:
    """The device under test, with the memory and time measurements that make sense on it."""

    def __init__(self, cpu: bool) -> None:
        import torch

        self.torch = torch
        self.cuda = not cpu
        self.name = torch.cuda.get_device_name() if self.cuda else f"CPU ({platform.machine()})"
        self.type = "cuda" if self.cuda else "cpu"

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def clear(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()

    def allocated(self) -> int | None:
        return self.torch.cuda.memory_allocated() if self.cuda else None

    def peaks(self) -> tuple[int | None, int | None]:
        if not self.cuda:
            return None, None
        return self.torch.cuda.max_memory_allocated(), self.torch.cuda.max_memory_reserved()


def gib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / GIB:.2f}"


# ------------------------------------------------------------------------------ a quantized 13B-shaped Llama
def llama_config(sizes: Sizes) -> Any:
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=sizes.vocab, hidden_size=sizes.hidden, intermediate_size=sizes.intermediate,
        num_hidden_layers=sizes.layers, num_attention_heads=sizes.heads, num_key_value_heads=sizes.heads,
        max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=False, pad_token_id=0,
        bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    config._name_or_path = "bench/llama-13b-shaped-random" if sizes is GPU else "bench/llama-tiny-random"
    return config


def quantized_llama(config: Any, bits: int, device: Device, dtype: Any) -> Any:
    """A random-weight ``LlamaForCausalLM`` quantized by bitsandbytes as ``from_pretrained`` would make it, built
    one weight at a time: never more than one layer's weights in high precision, on the host or the GPU."""
    import bitsandbytes as bnb
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.quantizers import AutoHfQuantizer

    from e2wm.models import quantization_config

    quantizer = AutoHfQuantizer.from_config(quantization_config(f"{bits}bit", dtype), pre_quantized=False)
    with torch.device("meta"):  # the skeleton: no memory, bitsandbytes layers in place of the linear ones
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        quantizer.preprocess_model(model=model, dtype=dtype, device_map={"": device.type}, checkpoint_files=None)
    generator = torch.Generator(device=device.type).manual_seed(0)
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            value = torch.empty(param.shape, dtype=dtype, device=device.type)
            if param.ndim == 1:
                value.fill_(1.0)  # RMSNorm weights
            else:
                value.normal_(0.0, 0.02, generator=generator)
            if isinstance(module, bnb.nn.Linear4bit) and name == "weight":
                new: Any = bnb.nn.Params4bit(value, requires_grad=False, **param.__dict__).to(device.type)
            elif isinstance(module, bnb.nn.Linear8bitLt) and name == "weight":
                kwargs = {k: v for k, v in param.__dict__.items() if k != "SCB"}
                # bitsandbytes quantizes 8-bit weights on their way from the host (transformers does the same)
                new = bnb.nn.Int8Params(value.cpu(), requires_grad=False, **kwargs).to(device.type)
            else:
                new = torch.nn.Parameter(value, requires_grad=param.requires_grad)
            setattr(module, name, new)
            del value
    rotary = model.model.rotary_emb  # its inv_freq buffer was computed on the meta device
    model.model.rotary_emb = type(rotary)(config=model.config).to(device.type)
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:
        raise RuntimeError(f"still on the meta device after building: {leftover[:5]}")
    model.hf_quantizer = quantizer
    quantizer.postprocess_model(model)  # config.quantization_config, is_loaded_in_{4,8}bit: as from_pretrained
    return model.eval()


def random_fisher(config: Any, folder: Path, device: Device) -> Path:
    """A Fisher artifact of the q_proj/v_proj shapes (positive random values, bf16), as ``e2wm fisher`` writes."""
    import torch

    from e2wm.ewc import save_fisher

    generator = torch.Generator().manual_seed(1)
    shape = (config.hidden_size, config.hidden_size)
    tensors = {
        f"model.layers.{i}.self_attn.{t}.weight": torch.rand(shape, generator=generator).to(torch.bfloat16) + 1e-3
        for i in range(config.num_hidden_layers)
        for t in TARGETS
    }
    metadata = {
        "base_model": config._name_or_path, "base_model_name_or_path": config._name_or_path, "base_revision": None,
        "base_architecture": "llama", "base_content_hash": None, "base_quantization": None, "base_dtype": "bfloat16",
        "target_modules": TARGETS, "estimator": "empirical", "num_docs": 1, "num_skipped_docs": 0,
        "num_tokens": 2, "num_predicted_tokens": 1, "max_length": 800, "source": {"path": "random"}, "seed": 1,
        "normalization": "none", "layouts": dict.fromkeys(tensors, "out_in"), "e2wm_version": "bench",
    }  # fmt: skip
    return save_fisher(folder / "fisher", tensors, metadata, dtype="bfloat16")


def train_once(model: Any, tokenizer: Any, fisher: Path, ewc: bool, sizes: Sizes, device: Device, args: Any) -> dict:
    """One EWCLoRATrainer run; the peak memory from its construction on, the median step after the warm-up."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    from e2wm import EWCLoRAConfig, EWCLoRATrainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.started = 0.0
            self.penalty: float | None = None

        def on_log(self, *_: Any, logs: dict[str, float] | None = None, **__: Any) -> None:
            if logs and "ewc_penalty" in logs:  # the trainer's log: P averaged over the steps
                self.penalty = float(logs["ewc_penalty"])

        def on_step_begin(self, *_: Any, **__: Any) -> None:
            device.sync()
            self.started = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            device.sync()
            self.times.append(time.perf_counter() - self.started)

    steps = args.warmup + args.steps
    generator = __import__("random").Random(0)
    rows = [[1] + [generator.randrange(4, sizes.vocab) for _ in range(sizes.seq - 1)] for _ in range(steps)]
    data = Dataset.from_dict({"input_ids": rows})  # already tokenized: exactly `seq` tokens per example
    penalty = {"penalty": "ewc", "ewc_lambda": 2.0, "fisher": str(fisher), "fisher_normalization": "paper_int8"}
    config = EWCLoRAConfig(
        output_dir=str(fisher.parent / ("ewc" if ewc else "plain")), max_steps=steps, per_device_train_batch_size=1,
        gradient_accumulation_steps=1, max_length=sizes.seq, gradient_checkpointing=True, learning_rate=8e-5,
        optim="adamw_torch", lr_scheduler_type="constant", logging_steps=10**6, save_strategy="no",
        report_to="none", disable_tqdm=True, dataloader_num_workers=0, seed=0, bf16=device.cuda,
        use_cpu=not device.cuda, task_weights={}, **(penalty if ewc else {"penalty": "none"}),
    )  # fmt: skip
    lora = LoraConfig(r=8, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    timer = StepTimer()
    device.clear()
    before = device.allocated()
    trainer = EWCLoRATrainer(model=model, args=config, train_dataset=data, processing_class=tokenizer,
                             peft_config=lora, callbacks=[timer])  # fmt: skip
    trainer.train()
    allocated, reserved = device.peaks()
    median = statistics.median(timer.times[args.warmup :])
    result = {
        "peak_allocated": allocated, "peak_reserved": reserved, "before": before, "median_step_s": median,
        "tokens_per_s": sizes.seq / median, "step_times": timer.times,
        "penalty": timer.penalty,
    }  # fmt: skip
    base = trainer.model.unload()  # the LoRA layers out again: the next run starts from the same base
    del trainer
    device.clear()
    return {**result, "base": base}


def training_part(bits: int, sizes: Sizes, device: Device, args: Any, folder: Path) -> dict[str, Any]:
    import torch

    from e2wm.models import train_bpe_tokenizer

    dtype = torch.bfloat16 if device.cuda else torch.float32
    config = llama_config(sizes)
    started = time.perf_counter()
    model = quantized_llama(config, bits, device, dtype)
    built = time.perf_counter() - started
    weights = device.allocated()
    print(f"[{bits}bit] built {config._name_or_path} ({config.num_hidden_layers} layers, hidden {config.hidden_size}) "
          f"{bits}-bit in {built:.1f} s" + (f"; model on the GPU: {gib(weights)} GiB" if device.cuda else ""))  # fmt: skip
    fisher = folder / "fisher"
    if not fisher.exists():
        started = time.perf_counter()
        random_fisher(config, folder, device)
        print(f"[{bits}bit] wrote a random bf16 Fisher of the q/v shapes in {time.perf_counter() - started:.1f} s")
    tokenizer = train_bpe_tokenizer(["a household story about a cup on a table"] * 20, vocab_size=300)
    results = {}
    for ewc in (False, True):
        run = train_once(model, tokenizer, fisher, ewc, sizes, device, args)
        model = run.pop("base")
        label = "ewc" if ewc else "plain"
        results[label] = run
        steps = ", ".join(f"{t:.3f}" for t in run["step_times"])
        print(f"[{bits}bit] {label:>5}: peak allocated {gib(run['peak_allocated'])} GiB, reserved "
              f"{gib(run['peak_reserved'])} GiB; median step {run['median_step_s']:.3f} s = "
              f"{run['tokens_per_s']:,.0f} tokens/s (steps: {steps})"
              + (f"; P = {run['penalty']:.4g}" if run["penalty"] is not None else ""))  # fmt: skip
    if device.cuda:
        peak = results["ewc"]["peak_reserved"]
        print(f"[{bits}bit] goal peak < 20 GiB with EWC (a 24 GB card): {'met' if peak < 20 * GIB else 'NOT met'}")
    del model
    device.clear()
    return results


# ------------------------------------------------------------------------------------------------- Fisher
def fisher_part(sizes: Sizes, device: Device, args: Any) -> dict[str, Any]:
    import torch
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from bench.fisher import reference_fisher
    from e2wm.ewc import estimate_fisher
    from tests.tiny import sample_documents, tiny_tokenizer

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: the error goal is about the method
    config = GPTNeoConfig(
        vocab_size=sizes.neo_vocab, hidden_size=sizes.neo_hidden, num_layers=sizes.neo_layers,
        num_heads=sizes.neo_heads, attention_types=[[["global", "local"], sizes.neo_layers // 2]], window_size=256,
        max_position_embeddings=2048, resid_dropout=0.0, embed_dropout=0.0, attention_dropout=0.0,
        bos_token_id=1, eos_token_id=2,  # the test tokenizer's, which makes the documents
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device.type):
        model = GPTNeoForCausalLM(config).eval()
    tokenizer = tiny_tokenizer()
    low, high = sizes.fisher_sentences
    documents = sample_documents(sizes.fisher_docs, seed=0, min_sentences=low, max_sentences=high)
    max_length = args.fisher_max_length if device.cuda else 64
    lengths = [min(len(tokenizer(d)["input_ids"]), max_length) for d in documents]
    params = sum(p.numel() for p in model.parameters())
    print(f"[fisher] GPT-Neo-shaped, {params / 1e9:.2f} B parameters, fp32; {len(documents)} documents, "
          f"{sum(lengths):,} tokens ({min(lengths)}-{max(lengths)}), batch {args.fisher_batch_size}")  # fmt: skip

    def ours() -> dict[str, Any]:
        return estimate_fisher(model, tokenizer, documents, target_modules=TARGETS, max_length=max_length,
                               batch_size=args.fisher_batch_size).tensors  # fmt: skip

    keys = list(estimate_fisher(model, tokenizer, documents[:2], target_modules=TARGETS, max_length=16).tensors)
    reference_fisher(model, tokenizer, documents[:2], 16, keys)  # warm-up
    times: dict[str, list[float]] = {"e2wm": [], "reference": []}
    for _ in range(args.rounds):  # alternate, keep the best: contention only adds time
        for name, run in (("e2wm", ours), ("reference", lambda: reference_fisher(model, tokenizer, documents,
                                                                                 max_length, keys))):  # fmt: skip
            device.sync()
            started = time.perf_counter()
            result = run()
            device.sync()
            times[name].append(time.perf_counter() - started)
            if name == "e2wm":
                fisher = result
            else:
                reference = result
    model.zero_grad(set_to_none=True)
    errors = {k: ((fisher[k].to(r) - r).abs().max() / r.abs().max()).item() for k, r in reference.items()}
    ours_s, reference_s = min(times["e2wm"]), min(times["reference"])
    result = {
        "speedup": reference_s / ours_s,
        "max_rel_err": max(errors.values()),
        "tokens_per_s": sum(lengths) / ours_s,
    }
    print(
        f"[fisher] reference loop (all parameters): best {reference_s:.2f} s of {[round(t, 2) for t in times['reference']]}"
    )
    print(f"[fisher] e2wm batched (q_proj, v_proj):   best {ours_s:.2f} s of {[round(t, 2) for t in times['e2wm']]}"
          f" = {result['tokens_per_s']:,.0f} tokens/s")  # fmt: skip
    print(f"[fisher] speedup {result['speedup']:.2f} (goal ≥ 4), max relative error {result['max_rel_err']:.2e} "
          "(goal ≤ 1e-4)")  # fmt: skip
    return result  # the model and both Fishers go with this frame (main clears the device after each part)


# ------------------------------------------------------------------------------------------------ penalty
def penalty_part(sizes: Sizes, device: Device, args: Any) -> dict[str, Any]:
    import torch

    from e2wm.ewc import lora_penalty

    scaling, rank, dim = 2.0, 8, sizes.penalty_dim  # alpha 16 / r 8, as bench/penalty.py
    generator = torch.Generator(device=device.type).manual_seed(0)
    modules = []
    for _ in range(2 * sizes.penalty_layers):  # q_proj and v_proj
        a = torch.empty(rank, dim, device=device.type).normal_(generator=generator).requires_grad_()
        b = torch.empty(dim, rank, device=device.type).normal_(generator=generator).requires_grad_()
        f = torch.empty(dim, dim, device=device.type).uniform_(generator=generator).to(torch.bfloat16)
        modules.append((a, b, f))
    fisher_bytes = sum(f.numel() * f.element_size() for *_, f in modules)
    print(f"[penalty] {len(modules)} modules of {dim}x{dim}, r={rank}, fp32 A/B, bf16 F ({fisher_bytes / GIB:.2f} GiB)")

    def penalty(variant: str) -> Any:
        if variant == "e2wm":
            return sum(lora_penalty(a, b, scaling, f) for a, b, f in modules)
        return sum((f * (scaling * b @ a) ** 2).sum() for a, b, f in modules)

    results: dict[str, dict[str, Any]] = {}
    for variant in ("naive", "e2wm"):
        times, extra = [], None
        for step in range(args.penalty_repeats + 1):  # the first pass warms up
            for a, b, _ in modules:
                a.grad = b.grad = None
            device.clear()
            before = device.allocated()
            device.sync()
            started = time.perf_counter()
            value = penalty(variant)
            value.backward()
            device.sync()
            if step:
                times.append(time.perf_counter() - started)
                peak = device.peaks()[0]
                extra = None if peak is None or before is None else max(extra or 0, peak - before)
        results[variant] = {"seconds": min(times), "extra": extra, "value": value.item()}
        print(f"[penalty] {variant:>5}: best {min(times) * 1e3:.1f} ms of {[round(t * 1e3, 1) for t in times]}, "
              f"extra peak {gib(extra)} GiB, P = {value.item():.6g}")  # fmt: skip
    agree = abs(results["e2wm"]["value"] / results["naive"]["value"] - 1)
    print(f"[penalty] e2wm and naive P agree to {agree:.1e} (relative)")
    naive, ours = results["naive"], results["e2wm"]
    ratio = ours["extra"] / naive["extra"] if ours["extra"] is not None and naive["extra"] else None
    return {"speedup": naive["seconds"] / ours["seconds"], "extra_mem_ratio": ratio}


# -------------------------------------------------------------------------------------------------- main
def summary(results: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    fields = {}
    for bits, part in ((4, "qlora4"), (8, "lora8")):
        run = results.get(part)
        for label, suffix in (("ewc", ""), ("plain", "_plain")):
            fields[f"gpu_peak_gib_{bits}bit{suffix}"] = "skipped" if run is None else gib(run[label]["peak_reserved"])
        for label, suffix in (("ewc", ""), ("plain", "_plain")):
            fields[f"tokens_per_s_{bits}bit{suffix}"] = (
                "skipped" if run is None else fmt(run[label]["tokens_per_s"], ".0f")
            )
    fisher, penalty = results.get("fisher"), results.get("penalty")
    fields["fisher_speedup"] = "skipped" if fisher is None else fmt(fisher["speedup"], ".2f")
    fields["fisher_max_rel_err"] = "skipped" if fisher is None else fmt(fisher["max_rel_err"], ".2e")
    fields["fisher_tokens_per_s"] = "skipped" if fisher is None else fmt(fisher["tokens_per_s"], ".0f")
    fields["penalty_speedup"] = "skipped" if penalty is None else fmt(penalty["speedup"], ".2f")
    fields["penalty_extra_mem_ratio"] = "skipped" if penalty is None else fmt(penalty["extra_mem_ratio"], ".4f")
    return " ".join(f"{key}={value}" for key, value in fields.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (the default without CUDA)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    parser.add_argument("--warmup", type=int, default=2, help="training steps not timed (the first moves the Fisher)")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating Fisher rounds; the best of each is kept")
    parser.add_argument("--fisher-batch-size", type=int, default=8)
    parser.add_argument("--fisher-max-length", type=int, default=800)
    parser.add_argument("--penalty-repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        parser.error(f"--parts: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(PARTS)}")
    missing = missing_packages(parts)
    if missing:
        print(explain_missing(missing, parts), file=sys.stderr)
        return 2
    import torch

    cpu = args.cpu or not torch.cuda.is_available()
    if cpu and not args.cpu:
        print("no CUDA device: running the CPU mode (tiny sizes; its numbers say nothing about a GPU)")
    if cpu:  # a smoke run: the fewest steps that still time something, one thread (tiny matmuls)
        args.warmup, args.steps, args.rounds, args.penalty_repeats = 1, 1, 1, 1
        torch.set_num_threads(1)
    device, sizes = Device(cpu), (CPU if cpu else GPU)
    import transformers

    print(f"device: {device.name}; torch {torch.__version__}, transformers {transformers.__version__}; "
          f"{platform.platform()}; parts: {', '.join(parts)}")  # fmt: skip
    started = time.perf_counter()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="e2wm-bench-gpu-") as tmp:
        for part in parts:
            part_started = time.perf_counter()
            if part in ("qlora4", "lora8"):
                results[part] = training_part(4 if part == "qlora4" else 8, sizes, device, args, Path(tmp))
            elif part == "fisher":
                results[part] = fisher_part(sizes, device, args)
            else:
                results[part] = penalty_part(sizes, device, args)
            device.clear()  # what a part allocated is gone before the next one measures
            print(f"[{part}] done in {time.perf_counter() - part_started:.1f} s")
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    print(summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
