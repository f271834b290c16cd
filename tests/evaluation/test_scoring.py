"""Log-likelihood scoring, generation and perplexity against direct computations on tiny models."""

from __future__ import annotations

import math

import pytest
import torch

from e2wm.evaluation.generation import generate_answers
from e2wm.evaluation.perplexity import general_text, perplexity
from e2wm.evaluation.scoring import choose, score_continuations
from tests.tiny import sample_documents, tiny_gpt2, tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def llama(tok):
    return tiny_llama(tok, seed=3)


def direct_logprob(model, ids, n_cont):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(logprobs[t - 1, ids[t]].item() for t in range(len(ids) - n_cont, len(ids)))


def test_continuation_scores_equal_a_hand_computation_with_a_bos_tokenizer(tok, llama):
    context, continuation = "Alice walks to the kitchen.", " the cup"
    ctx = tok(context)["input_ids"]
    cont = tok(continuation, add_special_tokens=False)["input_ids"]
    assert ctx[0] == tok.bos_token_id and tok.bos_token_id not in cont, "BOS in front of the context only"
    (score,) = score_continuations(llama, tok, [(context, continuation)])
    assert score.tokens == len(cont)
    assert score.logprob == pytest.approx(direct_logprob(llama, ctx + cont, len(cont)), abs=1e-4)
    assert score.normalised == pytest.approx(score.logprob / len(cont))


def test_batched_scores_equal_one_at_a_time_with_padding(tok, llama):
    pairs = [(doc, " the plate") for doc in sample_documents(7, seed=2)] + [("Hi", " there is a lamp in the bedroom")]
    batched = score_continuations(llama, tok, pairs, batch_size=4)
    single = [score_continuations(llama, tok, [p], batch_size=1)[0] for p in pairs]
    for a, b in zip(batched, single, strict=True):
        assert a.tokens == b.tokens and a.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_gpt2_shaped_model_without_bos(tok):
    from transformers import GPT2TokenizerFast  # noqa: F401  (the tiny tokenizer stands in)

    model = tiny_gpt2(tok, seed=1)
    context, continuation = "Bob opens the fridge.", " kitchen"
    ctx, cont = tok(context)["input_ids"], tok(continuation, add_special_tokens=False)["input_ids"]
    (score,) = score_continuations(model, tok, [(context, continuation)])
    assert score.logprob == pytest.approx(direct_logprob(model, ctx + cont, len(cont)), abs=1e-4)


def test_choose_with_both_scorings(tok, llama):
    prompts = ["Alice walks to the kitchen. She grabs", "The robot opens", "Bob puts down"]
    choices = [["the cup", "the sofa", "a knife"], ["the fridge", "the lamp"], ["the lamp", "the cup"]]  # repeats
    picks = choose(llama, tok, prompts, choices, "normalised")
    for prompt, options, pick in zip(prompts, choices, picks, strict=True):
        scores = [s.normalised for s in score_continuations(llama, tok, [(prompt, " " + o) for o in options])]
        assert pick == scores.index(max(scores))
    picks = choose(llama, tok, prompts, choices, "calibrated")
    for prompt, options, pick in zip(prompts, choices, picks, strict=True):
        cond = score_continuations(llama, tok, [(prompt, " " + o) for o in options])
        base = score_continuations(llama, tok, [("Answer:", " " + o) for o in options])
        values = [c.logprob - b.logprob for c, b in zip(cond, base, strict=True)]
        assert pick == values.index(max(values))
    with pytest.raises(ValueError, match="scoring"):
        choose(llama, tok, prompts, choices, "majority")


def test_long_contexts_lose_tokens_from_the_left(tok, llama):
    long = " ".join(sample_documents(40, seed=5))
    (score,) = score_continuations(llama, tok, [(long, " the cup")], max_length=64)
    ids = (tok(long)["input_ids"] + tok(" the cup", add_special_tokens=False)["input_ids"])[-64:]
    assert score.logprob == pytest.approx(direct_logprob(llama, ids, score.tokens), abs=1e-4)


def test_perplexity_equals_a_direct_computation(tok, llama):
    docs = sample_documents(6, seed=9)
    result = perplexity(llama, tok, docs, max_length=20, batch_size=4)
    total, count = 0.0, 0
    for doc in docs:
        ids = tok(doc)["input_ids"][:20]
        with torch.no_grad():
            logits = llama(input_ids=torch.tensor([ids])).logits[0].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        total -= sum(logprobs[t - 1, ids[t]].item() for t in range(1, len(ids)))
        count += len(ids) - 1
    assert result.tokens == count and result.documents == 6
    assert result.nll == pytest.approx(total / count, rel=1e-5)
    assert result.perplexity == pytest.approx(math.exp(total / count), rel=1e-5)
    assert result.perplexity_base2 == pytest.approx(2 ** (total / count), rel=1e-5)


def test_generation_is_batched_left_padded_and_stops_at_the_line(tok, llama):
    prompts = ["Alice walks to", "The robot", "Carol puts the cup in the kitchen and then"]
    batched = generate_answers(llama, tok, prompts, max_new_tokens=12, batch_size=3)
    single = [generate_answers(llama, tok, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert all("\n" not in answer for answer in batched)


def test_general_text_is_offline_english_prose():
    docs = general_text(50)
    assert len(docs) == 50 and all(len(d) >= 200 for d in docs)
    assert general_text(50) == docs and general_text(50, seed=1) != docs
