"""Tiny tokenizers and causal LMs for tests, built locally in well under a second (tests never touch the Hub).

Thin wrappers over ``e2wm.models`` (the one tiny-model builder), with the test suite's own training text.

    tok = tiny_tokenizer()                    # byte-level BPE, ~400 tokens, <pad> <s> </s> <unk>
    model = tiny_llama(tok)                   # LlamaForCausalLM, 2 layers, hidden 64
    model = tiny_gpt2(tok)                    # GPT2LMHeadModel (Conv1D layers: fan_in_fan_out)
    model = tiny_gpt_neo(tok)                 # GPTNeoForCausalLM
    folder = save_pretrained(model, tok, tmp_path / "tiny-llama")   # a "local folder" model id

Every builder is deterministic in its ``seed``; hidden sizes are multiples of 64 so that
bitsandbytes 4-bit (block size 64) can quantize the linear layers.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path

import torch

__all__ = [
    "sample_documents",
    "save_pretrained",
    "tiny_gpt2",
    "tiny_gpt_neo",
    "tiny_llama",
    "tiny_tokenizer",
]

_AGENTS = ["Alice", "Bob", "the robot", "Carol", "the cook", "Dan"]
_VERBS = ["walks to", "grabs", "opens", "closes", "puts", "rinses", "switches on", "looks at", "sits on", "reads"]
_OBJECTS = [
    "the cup",
    "the plate",
    "the fridge",
    "the sofa",
    "the lamp",
    "the book",
    "the sink",
    "the towel",
    "a knife",
]
_PLACES = ["in the kitchen", "in the bedroom", "on the table", "near the window", "in the bathroom", "at home"]


def sample_documents(count: int, seed: int = 0, min_sentences: int = 1, max_sentences: int = 6) -> list[str]:
    """``count`` household-story documents of ``min_sentences``..``max_sentences`` sentences."""
    rng = random.Random(seed)
    docs = []
    for _ in range(count):
        sentences = [
            f"{rng.choice(_AGENTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_PLACES)}."
            for _ in range(rng.randint(min_sentences, max_sentences))
        ]
        docs.append(" ".join(sentences).capitalize())
    return docs


@functools.cache
def _tokenizer_json(vocab_size: int) -> str:
    from e2wm.models import train_bpe_tokenizer

    return train_bpe_tokenizer(sample_documents(400, seed=1234), vocab_size).backend_tokenizer.to_str()


def tiny_tokenizer(vocab_size: int = 400):
    """A byte-level BPE trained on generated household sentences, as a ``PreTrainedTokenizerFast``.

    Special tokens: ``<pad>`` = 0, ``<s>`` (BOS, added in front of every text) = 1, ``</s>`` (EOS) = 2,
    ``<unk>`` = 3. Built by ``e2wm.models.train_bpe_tokenizer`` (cached per session as JSON).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json(vocab_size)),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )


def _tiny(architecture: str, tokenizer, seed: int, dtype: torch.dtype, hidden: int, layers: int):
    from e2wm.models import tiny_causal_lm

    tokenizer = tokenizer or tiny_tokenizer()
    # std 0.1 instead of the libraries' 0.02, so that gradients are not all tiny
    model = tiny_causal_lm(
        tokenizer, architecture, hidden=hidden, layers=layers, max_positions=256, seed=seed, init_std=0.1
    )
    return model.to(dtype).eval()


def tiny_llama(tokenizer=None, seed: int = 0, dtype: torch.dtype = torch.float32, hidden: int = 64, layers: int = 2):
    """A ``LlamaForCausalLM`` with ``layers`` layers of width ``hidden`` (linear: q/k/v/o_proj, gate/up/down_proj)."""
    return _tiny("llama", tokenizer, seed, dtype, hidden, layers)


def tiny_gpt2(tokenizer=None, seed: int = 0, dtype: torch.dtype = torch.float32, hidden: int = 64, layers: int = 2):
    """A ``GPT2LMHeadModel`` (its ``c_attn``/``c_proj``/``c_fc`` are ``Conv1D``: weights stored (in, out))."""
    return _tiny("gpt2", tokenizer, seed, dtype, hidden, layers)


def tiny_gpt_neo(tokenizer=None, seed: int = 0, dtype: torch.dtype = torch.float32, hidden: int = 64, layers: int = 2):
    """A ``GPTNeoForCausalLM`` (global and local attention layers, like GPT-Neo-1.3B)."""
    return _tiny("gpt_neo", tokenizer, seed, dtype, hidden, layers)


def tiny_gemma3(tokenizer=None, seed: int = 0, softcap: float | None = None):
    """A Gemma 3 text model with sliding-window layers (window 8) around a full-attention one: its cache mixes
    ``DynamicSlidingWindowLayer`` and ``DynamicLayer``, as Gemma-3-270M's does (window 512). ``softcap``: Gemma 2's
    final-logit soft-capping, logits = cap · tanh(logits / cap). Weights larger than the default init, so that
    wrong attention shows in the numbers."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        max_position_embeddings=256,
        final_logit_softcapping=softcap,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = Gemma3ForCausalLM(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * (0.05 if "norm" in name else 0.1))
    return model.eval()


def save_pretrained(model, tokenizer, folder: str | Path) -> Path:
    """Save ``model`` and ``tokenizer`` to ``folder`` (safetensors) so it loads as a local model id."""
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
