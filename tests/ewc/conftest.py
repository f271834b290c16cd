"""Tiny models shared by the EWC tests, built once per session (they are never modified in place)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.tiny import sample_documents, save_pretrained, tiny_gpt2, tiny_llama, tiny_tokenizer


@pytest.fixture(scope="session")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="session")
def docs() -> list[str]:
    """Household documents of 1 to 6 sentences (about 10 to 60 tokens): batches need padding."""
    return sample_documents(24, seed=7)


@pytest.fixture(scope="session")
def llama64(tok):
    return tiny_llama(tok, dtype=torch.float64)


@pytest.fixture(scope="session")
def gpt2_64(tok):
    return tiny_gpt2(tok, dtype=torch.float64)


@pytest.fixture(scope="session")
def llama_folder(tok, tmp_path_factory) -> Path:
    """A tiny fp32 Llama saved as a local model folder (a model id for from_pretrained)."""
    return save_pretrained(tiny_llama(tok), tok, tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def llama_4bit(llama_folder):
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(llama_folder, quantization_config=config, device_map="cpu").eval()
