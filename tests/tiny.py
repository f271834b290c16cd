"""Tiny tokenizers and causal LMs, built locally in well under a second (tests never touch the Hub).

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
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sample_documents(400, seed=1234), trainer=trainer)
    # Like Llama's tokenizer: a BOS token in front of every text.
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return tokenizer.to_str()


def tiny_tokenizer(vocab_size: int = 400):
    """A byte-level BPE trained on generated household sentences, as a ``PreTrainedTokenizerFast``.

    Special tokens: ``<pad>`` = 0, ``<s>`` (BOS, added in front of every text) = 1, ``</s>`` (EOS) = 2,
    ``<unk>`` = 3.
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


def _finish(model, seed: int, dtype: torch.dtype):
    # Random init, but larger than HF's default std 0.02 so that gradients are not all tiny.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            is_norm_weight = param.ndim == 1 and not name.endswith("bias")
            param.copy_(torch.randn(param.shape, generator=gen) * 0.1 + (1.0 if is_norm_weight else 0.0))
    return model.to(dtype).eval()


def tiny_llama(tokenizer=None, seed: int = 0, dtype: torch.dtype = torch.float32, hidden: int = 64, layers: int = 2):
    """A ``LlamaForCausalLM`` with ``layers`` layers of width ``hidden`` (linear: q/k/v/o_proj, gate/up/down_proj)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    return _finish(LlamaForCausalLM(config), seed, dtype)


def tiny_gpt2(tokenizer=None, seed: int = 0, dtype: torch.dtype = torch.float32, hidden: int = 64, layers: int = 2):
    """A ``GPT2LMHeadModel`` (its ``c_attn``/``c_proj``/``c_fc`` are ``Conv1D``: weights stored (in, out))."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = tokenizer or tiny_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=hidden,
        n_layer=layers,
        n_head=4,
        n_positions=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    torch.manual_seed(seed)
    return _finish(GPT2LMHeadModel(config), seed, dtype)


def tiny_gpt_neo(tokenizer=None, seed: int = 0, dtype: torch.dtype = torch.float32, hidden: int = 64, layers: int = 2):
    """A ``GPTNeoForCausalLM`` (global and local attention layers, like GPT-Neo-1.3B)."""
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    tokenizer = tokenizer or tiny_tokenizer()
    config = GPTNeoConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_layers=layers,
        num_heads=4,
        attention_types=[[["global", "local"], max(1, layers // 2)]],
        window_size=8,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        resid_dropout=0.0,
        embed_dropout=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    return _finish(GPTNeoForCausalLM(config), seed, dtype)


def save_pretrained(model, tokenizer, folder: str | Path) -> Path:
    """Save ``model`` and ``tokenizer`` to ``folder`` (safetensors) so it loads as a local model id."""
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
