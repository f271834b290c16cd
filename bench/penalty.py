"""Benchmark: the EWC-LoRA penalty, e2wm's chunked autograd function against the naive autograd formula.

    python bench/penalty.py                      # LLaMA-7B q_proj/v_proj: 32 layers × 2, 4096×4096, r=8
    python bench/penalty.py --layers 4           # quicker

Workload: forward + backward of P = Σ_layers Σ F ⊙ (s·B·A)² with fp32 A (8×4096), B (4096×8) and
F (4096×4096) per module, s = 2. e2wm is ``e2wm.ewc.lora_penalty`` (what ``ewc_penalty`` calls per
LoRA layer and adapter); naive is ``(F * (s * B @ A) ** 2).sum()`` summed over the modules, then
``backward()``.

Method: each variant runs in its own fresh subprocess (``--variant e2wm|naive``), so neither sees the
other's allocator state. The child allocates A, B and F in place (no temporaries), reads its peak
resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the kernel's high-water mark) as the
baseline, runs one warm-up and ``--repeats`` timed forward+backward passes, and reads the peak again:
extra peak memory = peak after − baseline. The variants alternate for ``--rounds`` rounds; the best
time of each is kept (the machines are shared: contention only adds time), and the largest extra
peak memory. The parent checks that both
variants give the same P and gradients (on a small case) and prints

    penalty_speedup=<naive best time / e2wm best time> extra_memory_ratio=<e2wm extra peak / naive extra peak>

CPU only here; GPU figures were not measured.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2wm.ewc import lora_penalty

SCALING = 2.0  # alpha 16 / r 8


def make_layers(layers: int, dim: int, rank: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    modules = []
    for _ in range(2 * layers):  # q_proj and v_proj
        a = torch.empty(rank, dim).normal_(generator=gen).requires_grad_()
        b = torch.empty(dim, rank).normal_(generator=gen).requires_grad_()
        fisher = torch.empty(dim, dim).uniform_(generator=gen)
        modules.append((a, b, fisher))
    return modules


def penalty(variant: str, modules) -> torch.Tensor:
    if variant == "e2wm":
        return sum(lora_penalty(a, b, SCALING, f) for a, b, f in modules)  # type: ignore[return-value]
    return sum((f * (SCALING * b @ a) ** 2).sum() for a, b, f in modules)  # type: ignore[return-value]


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def child(args: argparse.Namespace) -> None:
    modules = make_layers(args.layers, args.dim, args.rank)
    baseline = peak_rss_bytes()
    times = []
    for step in range(args.repeats + 1):
        for a, b, _ in modules:
            a.grad = b.grad = None
        start = time.perf_counter()
        penalty(args.variant, modules).backward()
        if step:  # the first pass warms up
            times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": min(times), "times": times, "extra_bytes": peak_rss_bytes() - baseline}))


def check_agreement() -> None:
    small = make_layers(2, 256, 8)
    values, grads = [], []
    for variant in ("e2wm", "naive"):
        for a, b, _ in small:
            a.grad = b.grad = None
        value = penalty(variant, small)
        value.backward()
        values.append(value.item())
        grads.append([t.grad.clone() for a, b, _ in small for t in (a, b)])
    assert abs(values[0] / values[1] - 1) < 1e-5, values
    for ours, naive in zip(*grads, strict=True):
        assert ((ours - naive).abs().max() / naive.abs().max()).item() < 1e-5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=32, help="transformer layers (2 LoRA modules each)")
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per process, after one warm-up")
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per variant, alternating")
    parser.add_argument("--variant", choices=["e2wm", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        child(args)
        return
    check_agreement()
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"workload: {2 * args.layers} modules of {args.dim}x{args.dim}, r={args.rank}, fp32, forward+backward")
    results: dict[str, dict] = {}
    for _ in range(args.rounds):  # alternate fresh processes; keep the best time, the largest extra memory
        for variant in ("naive", "e2wm"):
            command = [sys.executable, __file__, "--variant", variant, "--layers", str(args.layers)]
            command += ["--dim", str(args.dim), "--rank", str(args.rank), "--repeats", str(args.repeats)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            best = results.setdefault(variant, {"seconds": run["seconds"], "extra_bytes": 0, "times": []})
            best["seconds"] = min(best["seconds"], run["seconds"])
            best["extra_bytes"] = max(best["extra_bytes"], run["extra_bytes"])
            best["times"] += run["times"]
    for variant, r in results.items():
        times = ", ".join(f"{t:.2f}" for t in r["times"])
        print(
            f"{variant:>5}: best {r['seconds']:.3f} s (all: {times}), extra peak RSS {r['extra_bytes'] / 2**20:,.0f} MiB"
        )
    speedup = results["naive"]["seconds"] / results["e2wm"]["seconds"]
    ratio = results["e2wm"]["extra_bytes"] / results["naive"]["extra_bytes"]
    print(f"penalty_speedup={speedup:.2f} extra_memory_ratio={ratio:.4f}")


if __name__ == "__main__":
    main()
