"""Token-id batches for the evaluation's forward passes (scoring, generation, perplexity)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_batch(sequences: Sequence[Sequence[int]], pad: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` of the sequences padded to the longest with ``pad``: on the left
    (every sequence ends at the last position, where continuations are scored and generation starts) or
    on the right."""
    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        span = slice(width - len(ids), width) if left else slice(0, len(ids))
        input_ids[row, span] = torch.tensor(ids, dtype=torch.long)
        mask[row, span] = 1
    return input_ids, mask
