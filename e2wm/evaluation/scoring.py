"""Log-likelihood scoring of continuations, for multiple choice and perplexity.

A continuation is scored as in lm-evaluation-harness: the context and the continuation are tokenized
separately and concatenated, so a tokenizer that adds a BOS token puts it in front of the context only
and the continuation's span is exactly its own tokens (no GPT-2-only assumptions). A trailing EOS that
some tokenizers append to every text is dropped from the context.

Multiple choice (E2WM's two scorings, prediction = argmax):

* length-normalised: ``Σ log p(answer tokens | prompt) / #answer tokens``;
* calibrated: ``log p(answer | prompt) − log p(answer | "Answer:")``.

Answers are scored with a leading space (``" kitchen"``), as the paper did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from e2wm.evaluation.batching import pad_batch

__all__ = ["CALIBRATION_CONTEXT", "ContinuationScore", "choose", "score_continuations"]

CALIBRATION_CONTEXT = "Answer:"


@dataclass(frozen=True)
class ContinuationScore:
    logprob: float  # Σ log p(continuation tokens | context)
    tokens: int

    @property
    def normalised(self) -> float:
        return self.logprob / max(self.tokens, 1)


def _context_ids(tokenizer: Any, text: str) -> list[int]:
    ids = list(tokenizer(text)["input_ids"])
    eos = tokenizer.eos_token_id
    if ids and eos is not None and ids[-1] == eos and not text.endswith(tokenizer.eos_token or "\x00"):
        ids = ids[:-1]
    return ids


def _continuation_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _accepts(model: Any, argument: str) -> bool:
    """Whether the model's forward takes ``argument`` (looking through a peft wrapper's ``**kwargs``)."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return argument in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def score_continuations(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 8,
    max_length: int | None = None,
) -> list[ContinuationScore]:
    """``log p(continuation | context)`` for each ``(context, continuation)`` pair, batched.

    Over-long inputs lose tokens from the *left* of the context (the question is at the end);
    the continuation is never cut.
    """
    device = next(model.parameters()).device
    limit = max_length or getattr(model.config, "max_position_embeddings", None) or 2048
    encoded = []
    for context, continuation in pairs:
        ctx, cont = _context_ids(tokenizer, context), _continuation_ids(tokenizer, continuation)
        if not cont:
            raise ValueError(f"the continuation {continuation!r} has no tokens")
        ids = (ctx + cont)[-limit:]
        encoded.append((ids, len(cont)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    keep_logits = _accepts(model, "logits_to_keep")
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))  # similar lengths batch together
    scores: list[ContinuationScore | None] = [None] * len(encoded)
    for start in range(0, len(order), batch_size):
        batch = [encoded[i] for i in order[start : start + batch_size]]
        longest = max(n for _, n in batch)
        # Left padding: every continuation ends at the last position, so the LM head only has to run on
        # the last ``longest + 1`` positions (a large vocabulary makes the full logits the main cost).
        input_ids, attention = pad_batch([ids for ids, _ in batch], pad, left=True)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        kwargs: dict[str, Any] = {"logits_to_keep": longest + 1} if keep_logits else {}
        logits = model(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            position_ids=positions.to(device),
            **kwargs,
        ).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)  # (batch, kept positions, vocab)
        kept = logprobs.shape[1]
        for row, (ids, n_cont) in enumerate(batch):
            # the continuation's tokens sit at the last n_cont positions; each is predicted one position earlier
            positions_kept = torch.arange(kept - n_cont - 1, kept - 1, device=logprobs.device)
            targets = torch.tensor(ids[len(ids) - n_cont :], device=logprobs.device)
            total = logprobs[row, positions_kept, targets].sum().item()
            scores[order[start + row]] = ContinuationScore(total, n_cont)
    return [s for s in scores if s is not None]


def choose(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    choices: Sequence[Sequence[str]],
    scoring: str = "normalised",
    batch_size: int = 8,
) -> list[int]:
    """The index of the chosen answer for each question (``scoring``: ``normalised`` or ``calibrated``)."""
    if scoring not in ("normalised", "calibrated"):
        raise ValueError(f"scoring must be 'normalised' or 'calibrated', got {scoring!r}")
    pairs = [
        (prompt, " " + choice.strip()) for prompt, options in zip(prompts, choices, strict=True) for choice in options
    ]
    scores = score_continuations(model, tokenizer, pairs, batch_size)
    if scoring == "calibrated":
        # log p(answer | "Answer:") depends on the answer only: once per distinct answer (options repeat a lot)
        answers = sorted({c for _, c in pairs})
        scored = score_continuations(model, tokenizer, [(CALIBRATION_CONTEXT, c) for c in answers], batch_size)
        base = dict(zip(answers, scored, strict=True))
        values = [s.logprob - base[c].logprob for s, (_, c) in zip(scores, pairs, strict=True)]
    else:
        values = [s.normalised for s in scores]
    picks, index = [], 0
    for options in choices:
        block = values[index : index + len(options)]
        picks.append(max(range(len(options)), key=block.__getitem__))
        index += len(options)
    return picks
