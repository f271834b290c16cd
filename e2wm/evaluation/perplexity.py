"""Perplexity on general text: how much of its language ability a finetuned model keeps.

Token-weighted: the NLL (in nats) summed over every predicted token of every document, divided by the
number of those tokens. Each document is tokenized with the tokenizer's defaults (a BOS where it adds
one) and truncated to ``max_length`` tokens (the paper: 800). Reported both as the standard
perplexity ``e^NLL`` and as ``2^NLL``, which is what E2WM's released code printed (its 4.120 for
GPT-Neo-1.3B is a standard perplexity of about 7.7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from e2wm.evaluation.batching import pad_batch
from e2wm.lm import DEFAULT_CHUNK_TOKENS, LMHead

__all__ = ["Perplexity", "general_text", "perplexity"]


@dataclass(frozen=True)
class Perplexity:
    nll: float  # mean NLL per predicted token, in nats
    tokens: int
    documents: int
    #: per document: (summed NLL in nats, predicted tokens), in the order of the documents scored
    per_document: tuple[tuple[float, int], ...] = ()

    @property
    def perplexity(self) -> float:
        """The standard perplexity, e^NLL."""
        return math.exp(self.nll)

    @property
    def perplexity_base2(self) -> float:
        """2^NLL, the number E2WM's code reported as "perplexity"."""
        return 2.0**self.nll


@torch.no_grad()
def perplexity(
    model: Any,
    tokenizer: Any,
    documents: Sequence[str],
    max_length: int = 800,
    batch_size: int = 4,
    chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
) -> Perplexity:
    """Token-weighted perplexity of ``model`` on ``documents``.

    The LM head runs on ``chunk_tokens`` positions at a time (``e2wm.lm.LMHead``): the full-vocabulary
    logits of a whole batch never exist at once. ``chunk_tokens=None`` computes them in one piece (the
    reference; the numbers are the same)."""
    device = next(model.parameters()).device
    encoded = [list(tokenizer(doc)["input_ids"])[:max_length] for doc in documents]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    if not encoded:
        raise ValueError("no document has two tokens or more to score")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    head = LMHead(model)
    per_document: list[tuple[float, int]] = []
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        input_ids, mask = pad_batch(batch, pad, left=False)
        nll = head.token_nll(input_ids.to(device), mask.to(device), chunk_tokens=chunk_tokens)  # (B, T-1)
        for row, ids in enumerate(batch):
            per_document.append((float(nll[row].sum()), len(ids) - 1))
    total, count = sum(n for n, _ in per_document), sum(t for _, t in per_document)
    return Perplexity(total / count, count, len(encoded), tuple(per_document))


def general_text(count: int | None = None, min_chars: int = 200, seed: int = 0) -> list[str]:
    """English prose available offline everywhere: the paragraphs of Python's own documentation
    topics (``pydoc_data``), shuffled with ``seed``. A stand-in for the Pile where no network is."""
    import random
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        for block in topics[name].split("\n\n"):
            text = " ".join(line.strip() for line in block.splitlines() if line.strip())
            if len(text) >= min_chars and not text.startswith((">>>", "...")) and text.count("(") < 20:
                paragraphs.append(text)
    paragraphs = sorted(set(paragraphs))
    random.Random(seed).shuffle(paragraphs)
    return paragraphs[:count] if count is not None else paragraphs
