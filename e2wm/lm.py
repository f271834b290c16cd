"""Per-token losses of a causal LM without the full-vocabulary logits of a whole batch.

A model's own forward returns logits of shape (B, T, V) in one piece: for Gemma's 262k vocabulary, a
batch of 8 × 800 tokens is 6.7 GB of fp32 logits, and a log-softmax doubles it. Perplexity and the
Fisher only need, at each predicted position, the log-probability of one token (and, for the Fisher,
its gradient), so they run the backbone once and the LM head on ``chunk_tokens`` positions at a time:

    hidden = backbone(ids)                                 # (B, T, H), what the model's forward computes
    logits_c = post(lm_head(hidden[positions of chunk c])) # (c, V) fp32, one chunk alive at a time

``post`` is what the model applies after its head (Gemma's final-logit soft-capping, a logit scale).
Models differ there, so ``LMHead`` checks itself once per model against the model's own forward on a
short input and, where the numbers differ (a model with logit post-processing it does not know), says
so and uses the model's full logits instead: never different numbers, at worst the old memory.

Pure torch: no trl, no peft import (peft wrappers are looked through by attribute).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["DEFAULT_CHUNK_TOKENS", "LMHead"]

DEFAULT_CHUNK_TOKENS = 256  # positions whose fp32 logits exist at once: 268 MB at a 262k vocabulary


def _inner(model: nn.Module) -> Any:
    """The transformers model inside a peft wrapper (LoRA layers stay injected in its modules)."""
    classes = {cls.__name__ for cls in type(model).__mro__}
    wrapper: Any = model
    if "PeftModel" in classes:
        return wrapper.base_model.model
    if "BaseTuner" in classes:
        return wrapper.model
    return model


class LMHead:
    """A causal LM split into its backbone and its head, for chunked per-token losses.

    ``hidden(ids, mask)`` is the backbone's last hidden state (B, T, H); ``logits(h)`` the model's logits
    for hidden states ``h`` (..., H), in fp32. With ``chunked`` False (a model whose parts could not be
    found or did not reproduce its own logits), use ``full_logits`` instead.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        inner = _inner(model)
        config: Any = getattr(inner, "config", None)
        self.config = config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        backbone = getattr(inner, "base_model", None)
        head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
        self.backbone: Any = backbone if backbone is not None and backbone is not inner else None
        self.head: Any = head
        self.softcap = getattr(text, "final_logit_softcapping", None)
        self.scale = getattr(text, "logit_scale", None)
        self.chunked = self.backbone is not None and self.head is not None
        self._checked = False

    # ---------------------------------------------------------------------------------------------- parts
    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        outputs = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return outputs.last_hidden_state if hasattr(outputs, "last_hidden_state") else outputs[0]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.head(hidden.to(self.head.weight.device))
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 (fp64 models stay fp64)
        if self.scale is not None:
            logits = logits * self.scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def full_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        return logits.to(torch.promote_types(logits.dtype, torch.float32))

    def check(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> bool:
        """Once per model: do the parts give the model's own logits? (Falls back to full logits if not.)"""
        if self._checked or not self.chunked:
            return self.chunked
        self._checked = True
        ids = input_ids[:1, : min(8, input_ids.shape[1])]
        mask = attention_mask[:1, : ids.shape[1]] if attention_mask is not None else None
        with torch.no_grad():
            reference = self.full_logits(ids, mask)
            ours = self.logits(self.hidden(ids, mask))
        tolerance = 1e-3 * max(1.0, reference.abs().max().item())
        if reference.shape != ours.shape or (reference - ours).abs().max().item() > tolerance:
            warnings.warn(
                f"{type(_inner(self.model)).__name__}: its logits are not lm_head(hidden) with the known "
                "post-processing, so per-token losses use the full-vocabulary logits (more memory, same numbers)",
                stacklevel=3,
            )
            self.chunked = False
        return self.chunked

    # -------------------------------------------------------------------------------------------- losses
    def token_nll(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
    ) -> torch.Tensor:
        """NLL of every next token (B, T-1), 0 where the token is padding; no gradients.

        ``chunk_tokens=None`` computes the whole batch's logits at once (the reference)."""
        predicted = attention_mask[:, 1:].bool()
        labels = input_ids[:, 1:]
        nll = torch.zeros(labels.shape, dtype=torch.float64, device=input_ids.device)
        with torch.no_grad():
            if chunk_tokens is None or not self.check(input_ids, attention_mask):
                logits = self.full_logits(input_ids, attention_mask)[:, :-1]
                losses = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
                return torch.where(predicted, losses.view(labels.shape), 0.0).to(nll)
            hidden = self.hidden(input_ids, attention_mask)[:, :-1]  # (B, T-1, H): position t predicts t+1
            rows, cols = predicted.nonzero(as_tuple=True)
            for start in range(0, rows.numel(), chunk_tokens):
                r, c = rows[start : start + chunk_tokens], cols[start : start + chunk_tokens]
                logits = self.logits(hidden[r, c])  # (chunk, V)
                losses = nn.functional.cross_entropy(logits, labels[r, c].to(logits.device), reduction="none")
                nll[r, c] = losses.to(nll)
        return nll

    def backward_weighted_nll(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        weights: torch.Tensor,
        labels_for: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        chunk_tokens: int | None = DEFAULT_CHUNK_TOKENS,
    ) -> None:
        """Backpropagate Σ_n w_n Σ_t nll_nt through the model, one chunk of logits at a time.

        ``weights`` (B,) weighs each row's token NLLs. ``labels_for(logp, rows, cols)`` gives the labels of a
        chunk's positions from its log-probabilities (the sampled Fisher draws them); default: the next tokens.
        The backbone runs once; each chunk's loss is differentiated with respect to its hidden states, and the
        backbone's backward then runs once with the gathered gradient, so at most one chunk of logits lives at
        a time. ``chunk_tokens=None`` differentiates the full logits (the reference).
        """
        predicted = attention_mask[:, 1:].bool()
        targets = input_ids[:, 1:]

        def nll_of(logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
            logp = torch.log_softmax(logits, -1)
            labels = targets[rows, cols].to(logp.device) if labels_for is None else labels_for(logp, rows, cols)
            return -logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)

        rows, cols = predicted.nonzero(as_tuple=True)
        if chunk_tokens is None or not self.check(input_ids, attention_mask):
            logits = self.full_logits(input_ids, attention_mask)[:, :-1]
            nll = nll_of(logits[rows, cols], rows, cols)
            (nll * weights[rows].to(nll)).sum().backward()
            return
        hidden = self.hidden(input_ids, attention_mask)[:, :-1]  # (B, T-1, H)
        if not hidden.requires_grad:
            return  # nothing upstream wants a gradient
        leaf = hidden.detach().requires_grad_(True)
        for start in range(0, rows.numel(), chunk_tokens):
            r, c = rows[start : start + chunk_tokens], cols[start : start + chunk_tokens]
            nll = nll_of(self.logits(leaf[r, c]), r, c)
            (nll * weights[r].to(nll)).sum().backward()  # accumulates into leaf.grad at (r, c)
        if leaf.grad is not None:
            hidden.backward(leaf.grad)
