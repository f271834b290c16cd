"""Perplexity and the chunked LM head: the numbers of the model's own loss, without the batch's full logits."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from e2wm.evaluation.perplexity import perplexity
from e2wm.lm import LMHead
from tests.tiny import sample_documents, tiny_gemma3, tiny_gpt2, tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def _reference_nll(model, tok, docs, max_length):
    """Σ NLL and token count, one document at a time, from the model's own full logits."""
    total, count = 0.0, 0
    for doc in docs:
        ids = torch.tensor([tok(doc)["input_ids"][:max_length]])
        if ids.shape[1] < 2:
            continue
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, :-1].double()
        total += torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum").item()
        count += ids.shape[1] - 1
    return total, count


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2])
def test_perplexity_is_the_token_weighted_nll_of_the_models_own_logits(tok, build):
    model = build(tok, seed=3)
    docs = sample_documents(7, seed=5)
    result = perplexity(model, tok, docs, max_length=40, batch_size=3, chunk_tokens=5)  # batches are padded
    total, count = _reference_nll(model, tok, docs, 40)
    assert result.tokens == count and result.documents == 7
    assert result.nll == pytest.approx(total / count, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)
    assert result.perplexity_base2 == pytest.approx(2 ** (total / count), rel=1e-5)
    assert sum(t for _, t in result.per_document) == count
    assert sum(n for n, _ in result.per_document) == pytest.approx(total, rel=1e-5)


def test_chunked_and_full_logits_give_the_same_perplexity(tok):
    model = tiny_llama(tok, seed=1)
    docs = sample_documents(6, seed=2)
    full = perplexity(model, tok, docs, max_length=48, batch_size=4, chunk_tokens=None)
    for chunk in (1, 7, 10_000):
        assert perplexity(model, tok, docs, max_length=48, batch_size=4, chunk_tokens=chunk).nll == pytest.approx(
            full.nll, rel=1e-6
        )


def test_the_head_reproduces_soft_capped_logits_of_gemma(tok):
    model = tiny_gemma3(tok, softcap=5.0)
    ids = torch.tensor([tok("Alice walks to the kitchen. Bob grabs the cup.")["input_ids"]])
    head = LMHead(model)
    assert head.softcap == 5.0 and head.check(ids, torch.ones_like(ids))
    with torch.no_grad():
        assert torch.allclose(head.logits(head.hidden(ids, None)), model(ids).logits, atol=1e-5)
    docs = sample_documents(4, seed=8)
    total, count = _reference_nll(model, tok, docs, 32)
    assert perplexity(model, tok, docs, max_length=32, chunk_tokens=3).nll == pytest.approx(total / count, rel=1e-5)


def test_a_model_whose_logits_the_head_cannot_reproduce_falls_back_to_full_logits_with_a_warning(tok):
    model = tiny_llama(tok, seed=2)
    original = type(model).forward

    class Scaled(type(model)):  # logits post-processed in a way LMHead does not know
        def forward(self, *args, **kwargs):
            out = original(self, *args, **kwargs)
            out.logits = out.logits * 0.5
            return out

    model.__class__ = Scaled
    docs = sample_documents(3, seed=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = perplexity(model, tok, docs, max_length=32, chunk_tokens=4)
    assert any("full-vocabulary logits" in str(w.message) for w in caught)
    total, count = _reference_nll(model, tok, docs, 32)  # the model's own (scaled) logits
    assert result.nll == pytest.approx(total / count, rel=1e-5)
