"""Benchmark: peak memory of perplexity and of the Fisher with the chunked LM head against full logits.

    python bench/memory.py                          # vocabulary 262,144 (Gemma 3), batch 4 x 400 tokens
    python bench/memory.py --batch 8 --length 800   # the issue's 8 x 800 (needs ~25 GB for the full-logit run)

Model: a Llama-shaped causal LM built locally with Gemma 3's vocabulary size (2 layers, hidden 64, random
weights, fp32), so the logits dominate memory as they do for Gemma-3-270M. Each variant runs in its own
process (``--variant``) and reports its peak resident memory (``ru_maxrss``) above the process's memory
after the model is built, so the numbers compare the scoring itself. The full-logit variants are the
reference: ``chunk_tokens=None`` materialises the batch's (B, T, V) fp32 logits, as e2wm did before.

Full fp32 logits of the batch: B·T·V·4 bytes (8 x 800 x 262,144 x 4 = 6.7 GB), and a log-softmax or
cross-entropy adds as much again. Last line:

    perplexity_memory_ratio=<full / chunked> fisher_memory_ratio=<full / chunked>
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _current_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def run_variant(variant: str, vocab: int, batch: int, length: int) -> dict[str, float]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from e2wm.evaluation.perplexity import perplexity
    from e2wm.ewc import FisherAccumulator
    from e2wm.lm import DEFAULT_CHUNK_TOKENS

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=length + 8,
                         tie_word_embeddings=False)  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(1)
    docs = [torch.randint(4, vocab, (length,), generator=generator).tolist() for _ in range(batch)]
    kind, _, chunking = variant.partition(":")
    chunk = None if chunking == "full" else DEFAULT_CHUNK_TOKENS
    baseline = _current_mb()
    if kind == "perplexity":

        class Ids:  # a "tokenizer" that returns the documents' ids as they are
            pad_token_id, eos_token_id = 0, 0

            def __call__(self, doc: list[int]) -> dict[str, list[int]]:
                return {"input_ids": doc}

        result = perplexity(model, Ids(), docs, max_length=length, batch_size=batch, chunk_tokens=chunk)
        value = result.nll
    else:
        accumulator = FisherAccumulator(model, ["q_proj", "v_proj"], chunk_tokens=chunk)
        accumulator.add(docs, list(range(batch)))
        value = float(sum(t.sum() for t in accumulator.fisher().values()))
    return {"peak_mb": _rss_mb() - baseline, "value": value}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=262_144)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=400)
    parser.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.vocab, args.batch, args.length)))
        return 0
    logits_gb = args.batch * args.length * args.vocab * 4 / 1e9
    print(f"vocabulary {args.vocab:,}, batch {args.batch} x {args.length} tokens: full fp32 logits {logits_gb:.2f} GB")
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, CPU only")
    results = {}
    for variant in ("perplexity:chunked", "perplexity:full", "fisher:chunked", "fisher:full"):
        command = [sys.executable, __file__, "--variant", variant, "--vocab", str(args.vocab),
                   "--batch", str(args.batch), "--length", str(args.length)]  # fmt: skip
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results[variant] = json.loads(out)
        print(
            f"{variant:20s} peak above the model: {results[variant]['peak_mb']:9.0f} MB   (value {results[variant]['value']:.6g})"
        )
    for kind in ("perplexity", "fisher"):
        a, b = results[f"{kind}:full"]["value"], results[f"{kind}:chunked"]["value"]
        print(f"{kind}: chunked and full agree to {abs(a - b) / abs(a):.2e} relative")
    ratio = {
        k: results[f"{k}:full"]["peak_mb"] / max(results[f"{k}:chunked"]["peak_mb"], 1.0)
        for k in ("perplexity", "fisher")
    }
    print(f"perplexity_memory_ratio={ratio['perplexity']:.1f} fisher_memory_ratio={ratio['fisher']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
