"""The shared-prefix path of ``score_continuations`` (one pass per context, its cache expanded to the options)
against a straightforward reference: each ``context + continuation`` alone, unpadded, in one forward pass."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from e2wm.evaluation.scoring import choose, score_continuations
from tests.tiny import sample_documents, tiny_gemma3, tiny_gpt2, tiny_gpt_neo, tiny_llama, tiny_tokenizer

FALLBACK = "shared-prefix cache cannot be used"


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


MODELS = {"llama": tiny_llama, "gpt2": tiny_gpt2, "gpt_neo": tiny_gpt_neo, "gemma3": tiny_gemma3}


def reference_logprob(model, tokenizer, context: str, continuation: str, limit: int) -> tuple[float, int]:
    """Σ log p(continuation | context): tokenized apart, concatenated, cut from the left to ``limit``, one
    unpadded forward pass, log-softmax in float64."""
    ctx = tokenizer(context)["input_ids"]
    cont = tokenizer(continuation, add_special_tokens=False)["input_ids"]
    ids = (ctx + cont)[-limit:]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logprobs = torch.log_softmax(logits, dim=-1)
    return sum(logprobs[t - 1, ids[t]].item() for t in range(len(ids) - len(cont), len(ids))), len(cont)


def mixed_pairs() -> list[tuple[str, str]]:
    """Prompts of different lengths, each with options of 1 to ~10 tokens; one prompt longer than the models'
    256 positions (so each option length cuts it differently); a context shared by many answers."""
    options = [" a", " the cup", " kitchen", " there is a lamp in the bedroom near the window"]
    prompts = [*sample_documents(5, seed=3), " ".join(sample_documents(60, seed=5))]
    pairs = [(prompt, option) for prompt in prompts for option in options]
    return pairs + [("Answer:", option) for option in [*options, " the sofa", " a knife"]] + [("Hi", " the plate")]


def scores_without_fallback(model, tokenizer, pairs, batch_size):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = score_continuations(model, tokenizer, pairs, batch_size=batch_size)
    assert not [w for w in caught if FALLBACK in str(w.message)], "the shared-prefix path must be the one taken"
    return scores


@pytest.mark.parametrize("family", sorted(MODELS))
def test_shared_prefix_scores_equal_full_sequences(tok, family):
    model = MODELS[family](tok, seed=1)
    pairs = mixed_pairs()
    limit = model.config.max_position_embeddings
    assert len(tok(pairs[-8][0])["input_ids"]) > limit, "one prompt must exceed the model's length"
    reference = [reference_logprob(model, tok, context, continuation, limit) for context, continuation in pairs]
    # 1: no padding; 3: prefixes of different lengths left-padded together, several option passes per prefix
    # batch; 16: many prefixes per pass (the over-long prompt's cuts go apart where prefix + option > limit)
    for batch_size in (1, 3, 16):
        scores = scores_without_fallback(model, tok, pairs, batch_size)
        for pair, score, (expected, tokens) in zip(pairs, scores, reference, strict=True):
            assert score.tokens == tokens
            assert score.logprob == pytest.approx(expected, abs=1e-4), (family, batch_size, pair[0][:30], pair[1])


def test_peft_lora_model_scores_equal_full_sequences(tok):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    model = get_peft_model(tiny_llama(tok, seed=2), config).eval()
    base = tiny_llama(tok, seed=2)
    pairs = mixed_pairs()[:12]
    scores = scores_without_fallback(model, tok, pairs, batch_size=4)
    for (context, continuation), score in zip(pairs, scores, strict=True):
        expected, _ = reference_logprob(model, tok, context, continuation, 256)
        assert score.logprob == pytest.approx(expected, abs=1e-4)
    # the adapter is really in the numbers
    plain = score_continuations(base, tok, pairs[:1])[0]
    assert abs(plain.logprob - scores[0].logprob) > 1e-3


def test_each_context_is_read_once_and_last_option_tokens_never(tok):
    model = tiny_llama(tok, seed=1)
    prompts = sample_documents(3, seed=4)
    options = [" a", " the cup", " there is a lamp in the bedroom"]
    fed = []

    def count_new_tokens(module, args, kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        fed.append(int(mask[:, -ids.shape[1] :].sum()))

    handle = model.register_forward_pre_hook(count_new_tokens, with_kwargs=True)
    try:
        score_continuations(model, tok, [(p, o) for p in prompts for o in options], batch_size=4)
    finally:
        handle.remove()
    option_tokens = [len(tok(o, add_special_tokens=False)["input_ids"]) for o in options]
    expected = sum(len(tok(p)["input_ids"]) for p in prompts) + len(prompts) * sum(n - 1 for n in option_tokens)
    assert sum(fed) == expected


def test_calibrated_choice_over_many_answers_equals_the_reference(tok):
    # "Answer:" with more answers than a batch: several option passes over one prefix cache
    model = tiny_gemma3(tok, seed=4)
    prompts = sample_documents(4, seed=8)
    rooms = ["kitchen", "bedroom", "bathroom", "living room", "dining room", "home office", "entrance hall"]
    choices = [rooms[i : i + 5] for i in range(len(prompts))]
    picks = choose(model, tok, prompts, choices, "calibrated", batch_size=2)
    for prompt, options, pick in zip(prompts, choices, picks, strict=True):
        values = [
            reference_logprob(model, tok, prompt, " " + o, 256)[0]
            - reference_logprob(model, tok, "Answer:", " " + o, 256)[0]
            for o in options
        ]
        assert pick == values.index(max(values))


@pytest.mark.skipif(
    "cache" not in inspect.signature(__import__("transformers").LlamaForCausalLM.forward).parameters,
    reason="transformers before 5.24 names the cache past_key_values",
)
def test_an_unsupported_cache_falls_back_with_a_warning_and_the_same_numbers(tok):
    from transformers import LlamaForCausalLM, StaticCache

    class StaticCacheLlama(LlamaForCausalLM):
        """Answers a cached call with a StaticCache (fixed-size buffers written in place: not shareable)."""

        def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, use_cache=None, **kw):
            if use_cache is True and cache is None:
                cache = StaticCache(config=self.config, max_cache_len=self.config.max_position_embeddings)
            return super().forward(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                **kw,
            )

    plain = tiny_llama(tok, seed=5)
    model = StaticCacheLlama(plain.config).eval()
    model.load_state_dict(plain.state_dict())
    pairs = mixed_pairs()[:8]
    with pytest.warns(UserWarning, match="StaticCache.*full sequence"):
        scores = score_continuations(model, tok, pairs, batch_size=3)
    for (context, continuation), score in zip(pairs, scores, strict=True):
        assert score.logprob == pytest.approx(reference_logprob(plain, tok, context, continuation, 256)[0], abs=1e-4)


def test_peft_prompt_learning_falls_back_with_a_warning(tok):
    from peft import PrefixTuningConfig, get_peft_model

    model = get_peft_model(tiny_llama(tok, seed=1), PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    with pytest.warns(UserWarning, match="PrefixTuningConfig.*full sequence"):
        score_continuations(model, tok, [("Alice walks to", " the kitchen")])


def test_inputs_that_cannot_be_scored_are_refused(tok):
    model = tiny_gpt2(tok, seed=1)
    too_long = " " + " ".join(["the cup"] * 200)
    with pytest.raises(ValueError, match="never cut"):
        score_continuations(model, tok, [("Alice", too_long)])
    with pytest.raises(ValueError, match="no tokens"):
        score_continuations(model, tok, [("Alice", "")])

    class NoBos:  # a GPT-2-style tokenizer: nothing in front of the text, so "" has no token at all
        def __init__(self, inner):
            self.inner, self.eos_token_id, self.eos_token, self.pad_token_id = inner, 2, "</s>", 0

        def __call__(self, text, add_special_tokens=True):
            return self.inner(text, add_special_tokens=False)

    with pytest.raises(ValueError, match="context '' has no tokens"):
        score_continuations(model, NoBos(tok), [("", " the cup")])
