"""Log-likelihood scoring of continuations, for multiple choice and perplexity.

The context and the continuation are tokenized separately and concatenated, so a tokenizer that adds a
BOS token puts it in front of the context only and the continuation's span is exactly its own tokens (no
GPT-2-only assumptions; lm-evaluation-harness tokenizes the whole string and splits it at the context's
length: in practice the same tokens when the continuation starts a new word). A trailing EOS that
some tokenizers append to every text is dropped from the context.

Multiple choice (E2WM's two scorings, prediction = argmax):

* length-normalised: ``Σ log p(answer tokens | prompt) / #answer tokens``;
* calibrated: ``log p(answer | prompt) − log p(answer | "Answer:")``.

Answers are scored with a leading space (``" kitchen"``), as the paper did.

How (the numbers are those of one full forward pass per ``context + continuation``): the options of a
question share their context, so each distinct context runs through the model once (a *prefix pass*,
contexts batched with left padding) and its key/value cache is expanded along the batch to the options,
which run together in an *option pass* (right padding, position ids continuing the context's). The
prefix pass's last position predicts every option's first token; an option's last token needs no pass
(nothing after it is scored), so single-token options cost no option pass at all. Where the cache cannot
be used (an encoder-decoder, a peft prompt-learning adapter, a cache type other than transformers'
dynamic full / sliding-window layers) every pair runs as a full sequence instead, with a warning.
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.profiler import record_function

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


# (context ids after the left cut, continuation ids): what one pair feeds the model, ctx + cont
Encoded = tuple[list[int], list[int]]


def _context_ids(tokenizer: Any, text: str) -> list[int]:
    ids = list(tokenizer(text)["input_ids"])
    eos = tokenizer.eos_token_id
    if ids and eos is not None and ids[-1] == eos and not text.endswith(tokenizer.eos_token or "\x00"):
        ids = ids[:-1]
    return ids


def _continuation_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _forward_parameters(model: Any) -> set[str]:
    """The argument names of the model's forward (looking through a peft wrapper's ``**kwargs``)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return set(inspect.signature(base.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _accepts(model: Any, argument: str) -> bool:
    """Whether the model's forward takes ``argument``."""
    return argument in _forward_parameters(model)


def _encode(tokenizer: Any, pairs: Sequence[tuple[str, str]], limit: int) -> list[Encoded]:
    """Token ids of every pair, each distinct text tokenized once (a question's options share its prompt).

    ``ctx + cont`` keeps its last ``limit`` tokens: the cut falls on the context, never the continuation.
    """
    contexts = {text: _context_ids(tokenizer, text) for text in dict.fromkeys(c for c, _ in pairs)}
    continuations = {text: _continuation_ids(tokenizer, text) for text in dict.fromkeys(c for _, c in pairs)}
    encoded = []
    for context, continuation in pairs:
        ctx, cont = contexts[context], continuations[continuation]
        if not cont:
            raise ValueError(f"the continuation {continuation!r} has no tokens")
        if len(cont) >= limit:
            raise ValueError(
                f"the continuation {continuation[:40]!r} has {len(cont)} tokens: with at least one context token "
                f"it does not fit the model's {limit} (continuations are never cut)"
            )
        if not ctx:
            raise ValueError(
                f"the context {context!r} has no tokens, so nothing predicts the continuation's first token "
                "(a tokenizer without BOS and an empty context): give a non-empty context"
            )
        encoded.append((ctx[max(0, len(ctx) + len(cont) - limit) :], cont))
    return encoded


def _why_no_prefix_cache(model: Any) -> str | None:
    """Why the shared-prefix path cannot run on this model (None if it can, as far as can be told before a
    forward pass: the cache type is checked on the first prefix pass)."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return "it is an encoder-decoder model"
    peft_config = getattr(model, "peft_config", None)
    if isinstance(peft_config, dict):
        active = getattr(model, "active_adapter", None)
        adapter = peft_config.get(active) if isinstance(active, str) else None
        if adapter is not None and getattr(adapter, "is_prompt_learning", False):
            return f"its peft adapter ({type(adapter).__name__}) feeds its own past key values"
    if _cache_argument(model) is None:
        return "its forward takes no cache (neither `cache` nor `past_key_values`)"
    return None


def _cache_argument(model: Any) -> str | None:
    """The forward's name for the key/value cache: ``cache`` (transformers ≥ 5.24) or ``past_key_values``."""
    parameters = _forward_parameters(model)
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def _unsupported_cache(cache: Any) -> str | None:
    """Why ``cache`` cannot be shared by the options (None if it can).

    Allowed: transformers' ``DynamicCache`` made of ``DynamicLayer`` (full attention) and
    ``DynamicSlidingWindowLayer`` (Gemma 3's local layers, Mistral...). Their ``update`` and
    ``reorder_cache`` rebind new tensors and never write into the old ones, which ``_expand`` relies on
    to give each option batch its own view of one prefix cache without copying it.
    """
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    if not isinstance(cache, DynamicCache):
        return f"it returns a {type(cache).__name__} cache"
    layers = {
        type(layer).__name__ for layer in cache.layers if type(layer) not in (DynamicLayer, DynamicSlidingWindowLayer)
    }
    if layers:
        return f"its cache has {', '.join(sorted(layers))} layers"
    return None


class _UnshareableCacheError(Exception):
    """The model's cache cannot be expanded to the options (the message says why)."""


def _expand(cache: Any, rows: torch.Tensor) -> Any:
    """A cache whose batch row ``i`` is the prefix cache's row ``rows[i]`` (rows repeat: one per option)."""
    expanded = copy.copy(cache)
    expanded.layers = [copy.copy(layer) for layer in cache.layers]  # tensors shared until rebound
    expanded.reorder_cache(rows)  # each layer: keys = keys.index_select(0, rows on the layer's device), a new tensor
    return expanded


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[target]`` per row: (rows, vocab), (rows,) → (rows,), in fp32."""
    logits = logits.float()
    return logits.gather(-1, targets[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)


def _score_full(model: Any, encoded: Sequence[Encoded], pad: int, batch_size: int) -> list[ContinuationScore]:
    """The reference path: each ``ctx + cont`` as one sequence, batched with left padding."""
    device = next(model.parameters()).device
    sequences = [(ctx + cont, len(cont)) for ctx, cont in encoded]
    keep_logits = _accepts(model, "logits_to_keep")
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i][0]))  # similar lengths batch together
    scores: list[ContinuationScore | None] = [None] * len(sequences)
    for start in range(0, len(order), batch_size):
        batch = [sequences[i] for i in order[start : start + batch_size]]
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
        ).logits
        kept = logits.shape[1]
        for row, (ids, n_cont) in enumerate(batch):
            # the continuation's tokens sit at the last n_cont positions; each is predicted one position earlier
            predicting = logits[row, kept - n_cont - 1 : kept - 1]
            targets = torch.tensor(ids[len(ids) - n_cont :], device=logits.device)
            total = _token_logprobs(predicting, targets).sum().item()
            scores[order[start + row]] = ContinuationScore(total, n_cont)
    return [s for s in scores if s is not None]


def _prefix_batches(groups: list[tuple[list[int], list[int]]], encoded: Sequence[Encoded], batch_size: int, limit: int):
    """Groups (prefix, pair indices) in batches of at most ``batch_size`` prefixes, longest first.

    A batch's cache is as wide as its longest prefix and every option pass appends its longest option, so a
    batch also keeps ``longest prefix + longest option - 1 ≤ limit`` (learned position tables and GPT-Neo's
    causal bias stop at the model's length); a group alone always fits (its pairs were cut to ``limit``).
    """
    batch: list[tuple[list[int], list[int]]] = []
    width = option = 0
    for prefix, members in sorted(groups, key=lambda g: -len(g[0])):
        longest_option = max(len(encoded[i][1]) for i in members)
        if batch and (len(batch) == batch_size or width + max(option, longest_option) - 1 > limit):
            yield batch
            batch, width, option = [], 0, 0
        batch.append((prefix, members))
        width, option = max(width, len(prefix)), max(option, longest_option)
    if batch:
        yield batch


def _score_shared_prefix(
    model: Any, encoded: Sequence[Encoded], pad: int, batch_size: int, limit: int, cache_name: str
) -> list[ContinuationScore]:
    """Scores through one prefix pass per distinct context (``_UnshareableCacheError`` if the model's cache
    cannot be shared by the options: found on the first prefix pass)."""
    device = next(model.parameters()).device
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (ctx, _) in enumerate(encoded):
        groups.setdefault(tuple(ctx), []).append(index)
    keep_logits = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    totals = [0.0] * len(encoded)
    for batch in _prefix_batches([(list(p), m) for p, m in groups.items()], encoded, batch_size, limit):
        with record_function("e2wm.prefix_pass"):
            input_ids, attention = pad_batch([prefix for prefix, _ in batch], pad, left=True)
            positions = (attention.cumsum(-1) - 1).clamp(min=0)
            out = model(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                position_ids=positions.to(device),
                use_cache=True,
                **keep_logits,
            )
            cache = out.cache if "cache" in out else out.past_key_values
        if (reason := _unsupported_cache(cache)) is not None:
            raise _UnshareableCacheError(reason)
        rows = [(b, i) for b, (_, members) in enumerate(batch) for i in members]  # (prefix row, pair) per option
        with record_function("e2wm.logprobs"):
            # every option's first token is predicted by its prefix's last position
            last = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (prefixes, vocab)
            firsts = last[[b for b, _ in rows], [encoded[i][1][0] for _, i in rows]]
            for (_, i), value in zip(rows, firsts.tolist(), strict=True):
                totals[i] += value
        # the other tokens: options of more than one token, batch_size rows per option pass
        rows = [(b, i) for b, i in rows if len(encoded[i][1]) > 1]
        lengths = attention.sum(-1)  # each prefix's real length = its options' first position id
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            with record_function("e2wm.cache_expand"):
                owners = torch.tensor([b for b, _ in chunk])
                chunk_cache = _expand(cache, owners.to(device))
                # feed each option but its last token (right padding: pads sit after what is scored)
                option_ids, option_mask = pad_batch([encoded[i][1][:-1] for _, i in chunk], pad, left=False)
                width = option_ids.shape[1]
                real = option_mask.sum(-1)
                # position ids continue each prefix (``_prefix_batches`` keeps them inside the model's table)
                option_positions = lengths[owners][:, None] + torch.arange(width)[None, :]
                option_attention = torch.cat([attention[owners], option_mask], dim=-1)
            with record_function("e2wm.option_pass"):
                logits = model(
                    input_ids=option_ids.to(device),
                    attention_mask=option_attention.to(device),
                    position_ids=option_positions.to(device),
                    use_cache=True,
                    **{cache_name: chunk_cache},
                ).logits  # (chunk, width, vocab)
            with record_function("e2wm.logprobs"):
                mask = option_mask.bool().to(logits.device)
                targets = torch.tensor(
                    [t for _, i in chunk for t in encoded[i][1][1:]], device=logits.device
                )  # row-major, matching logits[mask]
                values = _token_logprobs(logits[mask], targets).split(real.tolist())  # one piece per option
                for (_, i), value in zip(chunk, torch.stack([v.sum() for v in values]).tolist(), strict=True):
                    totals[i] += value
    return [ContinuationScore(total, len(cont)) for total, (_, cont) in zip(totals, encoded, strict=True)]


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
    the continuation is never cut. Pairs sharing a context (after the cut) share one forward pass over
    it; ``batch_size`` bounds both the contexts per prefix pass and the options per option pass.
    """
    if not pairs:
        return []
    limit = max_length or getattr(model.config, "max_position_embeddings", None) or 2048
    with record_function("e2wm.tokenize"):
        encoded = _encode(tokenizer, pairs, limit)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    reason = _why_no_prefix_cache(model)
    if reason is None:
        try:
            return _score_shared_prefix(model, encoded, pad, batch_size, limit, _cache_argument(model) or "cache")
        except _UnshareableCacheError as error:
            reason = str(error)
    warnings.warn(
        f"score_continuations: the shared-prefix cache cannot be used with {type(model).__name__} ({reason}); "
        "scoring every option as a full sequence instead (same numbers, slower)",
        stacklevel=3,
    )
    return _score_full(model, encoded, pad, batch_size)


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
