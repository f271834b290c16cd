"""Batched generation for evaluation: greedy or beam search, left padding, one answer per prompt.

Prompts are never truncated from the right (the question is at the end): an over-long prompt loses
tokens from the left. Generation stops at a stop string: by default the end of the line, and the answer
is the generated text up to the first newline, stripped; with ``stop="}"`` and ``keep_stop`` (EAI's JSON
answers, over several lines) it runs up to and including the first ``}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from e2wm.evaluation.batching import pad_batch

__all__ = ["generate_answers"]


@torch.no_grad()
def generate_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    num_beams: int = 1,
    batch_size: int = 8,
    max_prompt_tokens: int | None = None,
    stop: str = "\n",
    keep_stop: bool = False,
) -> list[str]:
    """Each prompt's continuation up to ``stop`` (the first line, by default), stripped, in order; with
    ``keep_stop`` the stop string ends the answer."""
    device = next(model.parameters()).device
    limit = max_prompt_tokens or max(
        16, (getattr(model.config, "max_position_embeddings", None) or 2048) - max_new_tokens
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token to pad batches with")
    encoded = [list(tokenizer(prompt)["input_ids"])[-limit:] for prompt in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    answers: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        # left padding: the prompts end where generation starts
        input_ids, mask = pad_batch([encoded[i] for i in rows], pad, left=True)
        width = input_ids.shape[1]
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            num_beams=num_beams,
            do_sample=False,
            pad_token_id=pad,
            stop_strings=[stop],
            tokenizer=tokenizer,
        )
        for row, index in enumerate(rows):
            text = tokenizer.decode(output[row, width:], skip_special_tokens=True)
            head, found, _ = text.partition(stop)
            answers[index] = (head + stop if found and keep_stop else head).strip()
    return answers
