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

__all__ = ["Perplexity", "general_text", "perplexity"]


@dataclass(frozen=True)
class Perplexity:
    nll: float  # mean NLL per predicted token, in nats
    tokens: int
    documents: int

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
    model: Any, tokenizer: Any, documents: Sequence[str], max_length: int = 800, batch_size: int = 4
) -> Perplexity:
    """Token-weighted perplexity of ``model`` on ``documents``."""
    device = next(model.parameters()).device
    encoded = [list(tokenizer(doc)["input_ids"])[:max_length] for doc in documents]
    encoded = [ids for ids in encoded if len(ids) >= 2]
    if not encoded:
        raise ValueError("no document has two tokens or more to score")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    total, count = 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        input_ids, mask = pad_batch(batch, pad, left=False)
        width = input_ids.shape[1]
        input_ids, mask = input_ids.to(device), mask.to(device)
        logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.size(-1)), input_ids[:, 1:].reshape(-1), reduction="none"
        ).view(len(batch), width - 1)
        predicted = mask[:, 1:].bool()  # a token is predicted when it is real (its predecessor is too)
        total += losses[predicted].sum().item()
        count += int(predicted.sum().item())
    return Perplexity(total / count, count, len(encoded))


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
