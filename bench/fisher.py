"""Benchmark: e2wm's batched Fisher estimator against the paper's one-document-at-a-time loop.

    python bench/fisher.py                       # 64 documents, batch 8, max length 256
    python bench/fisher.py --rounds 3 --max-length 64   # shorter documents
    python bench/fisher.py --rounds 3 --vocab-size 32000   # LLaMA's vocabulary size

Model: a small Llama-shaped causal LM built locally (4 layers, hidden 256, 8 heads, MLP 688, the tiny
400-token BPE of ``tests/tiny.py``), fp32, random weights. Documents: generated household stories of
4 to 24 sentences (about 40 to 250 tokens), truncated to ``--max-length``. Targets: q_proj, v_proj.

Reference (what the paper's code did): for each document, ``model(ids, labels=ids).loss`` (mean token
NLL over the predicted tokens), ``backward()`` with gradients for *all* parameters, then the squared
gradient of every parameter added to its running sum; the q_proj/v_proj sums are kept and divided by N.
e2wm: ``estimate_fisher(..., batch_size=B)``: one backward per batch, per-document gradients of the
target weights only, from module hooks.

For scale, the bench also times the floor of any estimator that does one backward per batch: a forward
and an input-gradient backward on e2wm's batches with no Fisher work. Everything runs in this process
after a warm-up, alternating for ``--rounds`` rounds; the speedup is the ratio of the best wall times
(the machines are shared: contention only adds time). ``max_rel_err`` is the largest, over the target
tensors, of max|F_e2wm − F_ref| / max|F_ref| (both fp32). CPU only here; GPU figures were not measured. Last line:

    fisher_speedup=<reference time / e2wm time> max_rel_err=<e>
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from e2wm.ewc import estimate_fisher
from tests.tiny import sample_documents, tiny_tokenizer

TARGETS = ["q_proj", "v_proj"]


def small_llama(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def reference_fisher(model, tokenizer, documents, max_length, keys):
    """The paper's loop: one document at a time, gradients of every parameter, squared and summed."""
    params = dict(model.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    sums = {name: torch.zeros_like(p) for name, p in params.items()}
    device = model.get_input_embeddings().weight.device  # bench/gpu.py runs it on a GPU
    count = 0
    for text in documents:
        ids = torch.tensor([tokenizer(text, truncation=True, max_length=max_length)["input_ids"]], device=device)
        if ids.shape[1] < 2:
            continue
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        for name, p in params.items():
            sums[name] += p.grad**2
        count += 1
    model.zero_grad(set_to_none=True)
    return {key: sums[key] / count for key in keys}


def plain_backward(model, tokenizer, documents, max_length, batch_size) -> None:
    """The floor of any one-backward-per-batch estimator: e2wm's batches, a forward and an input-gradient
    backward (weights frozen), no Fisher work at all."""
    encoded = tokenizer(documents, truncation=True, max_length=max_length)["input_ids"]
    window = 8 * batch_size
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    hook = model.get_input_embeddings().register_forward_hook(lambda _m, _a, out: out.requires_grad_(True))
    for first in range(0, len(encoded), window):
        docs = sorted(encoded[first : first + window], key=len, reverse=True)
        for start in range(0, len(docs), batch_size):
            batch = docs[start : start + batch_size]
            ids = torch.zeros((len(batch), len(batch[0])), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, doc in enumerate(batch):
                ids[row, : len(doc)], mask[row, : len(doc)] = torch.tensor(doc), 1
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
            logp.gather(-1, ids[:, 1:, None]).sum().backward()
    hook.remove()
    for p, flag in flags:
        p.requires_grad_(flag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2, help="alternating timed rounds; the best of each is kept")
    parser.add_argument(
        "--vocab-size",
        type=int,
        default=None,
        help="the model's vocabulary (default: the tiny BPE's 400; LLaMA: 32000)",
    )
    args = parser.parse_args()

    tokenizer = tiny_tokenizer()
    model = small_llama(args.vocab_size or len(tokenizer))
    documents = sample_documents(args.docs, seed=0, min_sentences=4, max_sentences=24)
    lengths = [min(len(tokenizer(d)["input_ids"]), args.max_length) for d in documents]
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(
        f"model: Llama-shaped, {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"{args.docs} documents, {sum(lengths):,} tokens (min {min(lengths)}, max {max(lengths)}), batch {args.batch_size}"
    )

    def ours():
        return estimate_fisher(
            model, tokenizer, documents, target_modules=TARGETS, max_length=args.max_length, batch_size=args.batch_size
        ).tensors

    keys = list(estimate_fisher(model, tokenizer, documents[:4], target_modules=TARGETS, max_length=8).tensors)
    reference_fisher(model, tokenizer, documents[:4], args.max_length, keys)  # warm-up
    ours_times, reference_times, floor_times = [], [], []
    for _ in range(args.rounds):  # alternate, keep the best: a busy shared machine only adds time
        start = time.perf_counter()
        fisher = ours()
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain_backward(model, tokenizer, documents, args.max_length, args.batch_size)
        floor_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        reference = reference_fisher(model, tokenizer, documents, args.max_length, keys)
        reference_times.append(time.perf_counter() - start)
    ours_seconds, reference_seconds = min(ours_times), min(reference_times)

    errors = {key: ((fisher[key] - ref).abs().max() / ref.abs().max()).item() for key, ref in reference.items()}
    worst = max(errors, key=errors.__getitem__)
    print(
        f"reference loop (all parameters): best {reference_seconds:.2f} s of {[round(t, 2) for t in reference_times]}"
    )
    print(f"e2wm batched (q_proj, v_proj):   best {ours_seconds:.2f} s of {[round(t, 2) for t in ours_times]}")
    print(f"floor (batched forward + input-gradient backward, no Fisher work): best {min(floor_times):.2f} s")
    print(f"worst tensor: {worst}")
    print(f"fisher_speedup={reference_seconds / ours_seconds:.2f} max_rel_err={errors[worst]:.2e}")


if __name__ == "__main__":
    main()
