"""The Fisher estimators hold to their definitions: batched equals the paper's one-document loop, sampled is unbiased."""

from __future__ import annotations

import itertools

import pytest
import torch

from e2wm.ewc import FisherAccumulator, FisherError, estimate_fisher
from tests.tiny import tiny_gpt_neo, tiny_llama

LLAMA_TARGETS = ["q_proj", "v_proj"]


def reference_fisher(model, tokenizer, documents, keys, max_length):
    """The paper's loop: one document at a time, gradients of all parameters, mean-token NLL, squared."""
    params = dict(model.named_parameters())
    flags = {name: p.requires_grad for name, p in params.items()}
    sums = {key: torch.zeros_like(params[key]) for key in keys}
    count = 0
    for text in documents:
        ids = torch.tensor([tokenizer(text, truncation=True, max_length=max_length)["input_ids"]])
        if ids.shape[1] < 2:
            continue
        for p in params.values():
            p.requires_grad_(True)
            p.grad = None
        logp = torch.log_softmax(model(ids).logits[0, :-1], -1)  # the model's own precision, no fp32 cast
        (-logp.gather(-1, ids[0, 1:, None]).mean()).backward()
        for key in keys:
            sums[key] += params[key].grad ** 2
        count += 1
    for name, p in params.items():
        p.grad = None
        p.requires_grad_(flags[name])
    return {key: s / count for key, s in sums.items()}


def assert_close(ours, ref, rtol):
    assert ours.keys() == ref.keys()
    for key in ref:
        scale = ref[key].abs().max()
        assert scale > 0, key
        err = ((ours[key].to(ref[key].dtype) - ref[key]).abs().max() / scale).item()
        assert err <= rtol, f"{key}: relative error {err:.3g}"


@pytest.mark.parametrize("batch_size", [1, 5])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_empirical_fisher_equals_per_document_loop_in_float64(arch, batch_size, tok, docs, llama64, gpt2_64):
    model, targets = (llama64, LLAMA_TARGETS) if arch == "llama" else (gpt2_64, ["c_attn", "c_fc"])
    est = estimate_fisher(model, tok, docs, target_modules=targets, max_length=40, batch_size=batch_size)
    ref = reference_fisher(model, tok, docs, list(est.tensors), max_length=40)
    assert_close(est.tensors, ref, rtol=1e-10)
    assert est.num_docs == len(docs) and est.num_skipped_docs == 0
    lengths = [min(len(tok(d)["input_ids"]), 40) for d in docs]
    assert est.num_tokens == sum(lengths) and est.num_predicted_tokens == sum(lengths) - len(docs)
    assert max(lengths) == 40 and min(lengths) < 20  # truncation and padding were both exercised


def test_fisher_is_keyed_by_base_weight_names_with_base_weight_shapes(gpt2_64, llama64, tok, docs):
    est = estimate_fisher(gpt2_64, tok, docs[:3], target_modules=["c_attn"], max_length=16)
    assert list(est.tensors) == ["transformer.h.0.attn.c_attn.weight", "transformer.h.1.attn.c_attn.weight"]
    assert est.tensors["transformer.h.0.attn.c_attn.weight"].shape == (64, 192)  # Conv1D: (in, out)
    assert est.layouts["transformer.h.0.attn.c_attn.weight"] == "in_out"
    est = estimate_fisher(llama64, tok, docs[:3], target_modules=LLAMA_TARGETS, max_length=16)
    assert est.tensors["model.layers.1.self_attn.v_proj.weight"].shape == (32, 64)  # GQA: 2 kv heads of 16
    assert est.layouts["model.layers.1.self_attn.v_proj.weight"] == "out_in"


def test_empirical_fisher_on_gpt_neo_matches_loop(tok, docs):
    # GPT-Neo's attention computes in fp32 even in an fp64 model: agreement to fp32 precision.
    model = tiny_gpt_neo(tok, dtype=torch.float64)
    est = estimate_fisher(model, tok, docs[:8], target_modules=["q_proj", "v_proj"], max_length=32, batch_size=4)
    assert_close(est.tensors, reference_fisher(model, tok, docs[:8], list(est.tensors), 32), rtol=1e-5)


def test_fisher_leaves_the_model_as_it_was(tok, docs):
    model = tiny_llama(tok).train()
    model.model.layers[0].mlp.up_proj.weight.requires_grad_(False)
    before = {n: (p.requires_grad, p.detach().clone()) for n, p in model.named_parameters()}
    estimate_fisher(model, tok, docs[:4], target_modules=LLAMA_TARGETS, max_length=16)
    assert model.training
    for name, p in model.named_parameters():
        assert p.requires_grad == before[name][0] and torch.equal(p, before[name][1]) and p.grad is None
    assert not any(m._forward_hooks for m in model.modules())


def test_documents_without_a_predicted_token_are_skipped(tok, llama64, docs):
    est = estimate_fisher(llama64, tok, ["", docs[0], ""], target_modules=["q_proj"], max_length=16)
    assert (est.num_docs, est.num_skipped_docs) == (1, 2)  # "" is just <s>: nothing to predict
    with pytest.raises(FisherError, match="none of the 2 documents"):
        estimate_fisher(llama64, tok, ["", ""], target_modules=["q_proj"], max_length=16)


def test_unknown_target_module_names_the_available_ones(llama64, tok):
    with pytest.raises(FisherError, match=r"'c_attn' matches no module .*q_proj"):
        estimate_fisher(llama64, tok, ["a b"], target_modules=["c_attn"], max_length=8)
    with pytest.raises(FisherError, match="Embedding layers are not supported"):
        estimate_fisher(llama64, tok, ["a b"], target_modules=["embed_tokens"], max_length=8)


# ------------------------------------------------------------------------------------- sampled estimator
def _vocab12_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=12,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 2:
                p.mul_(25.0)  # sharper predictive distributions than the 0.02-std init
    return model


def exact_sampled_fisher(model, doc, keys):
    """E_y[(∂L/∂W)²] with y_t ~ p(·|x_<t) independently: cross terms vanish (E ∇log p = 0), so it is
    (1/k²) Σ_t Σ_v p_t(v) (∂ log p_t(v)/∂W)², enumerating the whole vocabulary."""
    params = dict(model.named_parameters())
    ids = torch.tensor([doc])
    k = len(doc) - 1
    exact = {key: torch.zeros_like(params[key]) for key in keys}
    probs = torch.softmax(model(ids).logits[0, :-1], -1).detach()
    for t, v in itertools.product(range(k), range(probs.shape[-1])):
        model.zero_grad()
        torch.log_softmax(model(ids).logits[0, t], -1)[v].backward()
        for key in keys:
            exact[key] += probs[t, v] * (params[key].grad / k) ** 2
    model.zero_grad(set_to_none=True)
    return exact


def test_sampled_fisher_is_unbiased():
    model = _vocab12_llama()
    doc = [1, 5, 7, 3, 9]  # 4 predicted positions
    keys = ["model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight"]
    exact = exact_sampled_fisher(model, doc, keys)
    acc = FisherAccumulator(model, ["q_proj", "v_proj"], estimator="sampled", seed=0)
    draws = 4000
    for start in range(0, draws, 500):
        acc.add([doc] * 500, list(range(start, start + 500)))
    est = acc.fisher()
    for key in keys:
        total_err = abs(est[key].sum() / exact[key].sum() - 1).item()
        corr = torch.corrcoef(torch.stack([est[key].flatten(), exact[key].flatten()]))[0, 1].item()
        assert total_err < 0.05 and corr > 0.98, (key, total_err, corr)
    # the empirical Fisher of the same document is a different quantity (labels fixed to the document)
    empirical = FisherAccumulator(model, ["q_proj", "v_proj"])
    empirical.add([doc], [0])
    assert abs(empirical.fisher()[keys[0]].sum() / exact[keys[0]].sum() - 1) > 0.1


def test_sampled_fisher_is_seeded_and_independent_of_batching(tok, docs, llama64):
    kwargs = {"target_modules": ["v_proj"], "max_length": 24, "estimator": "sampled", "seed": 3}
    one = estimate_fisher(llama64, tok, docs[:10], batch_size=1, **kwargs).tensors
    four = estimate_fisher(llama64, tok, docs[:10], batch_size=4, **kwargs).tensors
    other = estimate_fisher(llama64, tok, docs[:10], batch_size=4, **{**kwargs, "seed": 4}).tensors
    assert_close(four, one, rtol=1e-10)
    assert not torch.allclose(
        other["model.layers.0.self_attn.v_proj.weight"], one["model.layers.0.self_attn.v_proj.weight"]
    )


# ------------------------------------------------------------------------------------- quantized and bf16
def test_fisher_on_4bit_base_matches_its_dequantized_fp32_twin(llama_4bit, tok, docs):
    import bitsandbytes.functional as bnbf
    from bitsandbytes.nn import Linear4bit

    twin = tiny_llama(tok)  # same architecture; every linear weight replaced by the 4-bit one, dequantized
    twin_modules = dict(twin.named_modules())
    with torch.no_grad():
        for name, module in llama_4bit.named_modules():
            if isinstance(module, Linear4bit):
                weight = bnbf.dequantize_4bit(module.weight.data, module.weight.quant_state)
                twin_modules[name].weight.copy_(weight)
        for name, param in llama_4bit.named_parameters():
            if (param.dtype.is_floating_point and param.ndim == 1) or "embed" in name or "lm_head" in name:
                dict(twin.named_parameters())[name].copy_(param)
    quantized = estimate_fisher(llama_4bit, tok, docs[:8], target_modules=LLAMA_TARGETS, max_length=32, batch_size=4)
    plain = estimate_fisher(twin, tok, docs[:8], target_modules=LLAMA_TARGETS, max_length=32, batch_size=4)
    assert quantized.tensors["model.layers.0.self_attn.q_proj.weight"].shape == (64, 64)  # logical, not packed
    assert_close(quantized.tensors, plain.tensors, rtol=1e-4)


def test_fisher_on_8bit_base_matches_its_dequantized_fp32_twin(llama_folder, tok, docs):
    """LLM.int8 quantizes the activations too (and casts them to fp16), so the 8-bit Fisher is not the twin's
    to rounding: measured max relative error 1-5% per tensor, totals within 0.5%, correlation > 0.999. The
    tolerances below are twice those; a Fisher of the wrong weights, layout or scale fails them by far."""
    from bitsandbytes.nn import Linear8bitLt
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    model = AutoModelForCausalLM.from_pretrained(
        llama_folder, quantization_config=BitsAndBytesConfig(load_in_8bit=True), device_map="cpu"
    )
    twin = tiny_llama(tok)  # every int8 weight replaced by its dequantized value W = CB · SCB / 127
    modules, params = dict(twin.named_modules()), dict(twin.named_parameters())
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, Linear8bitLt):
                scb = getattr(module.weight, "SCB", None)
                scb = module.state.SCB if scb is None else scb
                modules[name].weight.copy_(module.weight.data.float() * scb.float()[:, None] / 127)
        for name, param in model.named_parameters():
            if param.dtype.is_floating_point and (param.ndim == 1 or "embed" in name or "lm_head" in name):
                params[name].copy_(param)
    quantized = estimate_fisher(model, tok, docs[:8], target_modules=LLAMA_TARGETS, max_length=32, batch_size=4)
    plain = estimate_fisher(twin, tok, docs[:8], target_modules=LLAMA_TARGETS, max_length=32, batch_size=4)
    for key, ours in quantized.tensors.items():
        ref = plain.tensors[key]
        assert ours.shape == ref.shape == ((64, 64) if "q_proj" in key else (32, 64)) and ours.dtype == torch.float32
        assert ((ours - ref).abs().max() / ref.abs().max()).item() < 0.1, key
        assert abs((ours.sum() / ref.sum()).item() - 1) < 0.01, key
        assert torch.corrcoef(torch.stack([ours.flatten(), ref.flatten()]))[0, 1].item() > 0.998, key


def test_the_chunked_lm_head_gives_the_full_logits_fisher(tok, docs, llama64):
    """The LM head on a few positions at a time (a 262k vocabulary never needs a whole batch's logits)."""
    batch = [tok(d, truncation=True, max_length=24)["input_ids"] for d in docs[:6]]
    for estimator in ("empirical", "sampled"):
        full, chunked = (
            FisherAccumulator(llama64, LLAMA_TARGETS, estimator=estimator, seed=1, chunk_tokens=chunk)
            for chunk in (None, 3)
        )
        full.add(batch, list(range(6)))
        chunked.add(batch, list(range(6)))
        assert_close(chunked.fisher(), full.fisher(), rtol=1e-10)


def test_fisher_on_bf16_base_is_fp32_and_close_to_fp32_base(tok, docs):
    fp32 = estimate_fisher(tiny_llama(tok), tok, docs[:6], target_modules=["q_proj"], max_length=24)
    bf16 = estimate_fisher(
        tiny_llama(tok, dtype=torch.bfloat16), tok, docs[:6], target_modules=["q_proj"], max_length=24
    )
    for key in fp32.tensors:
        assert bf16.tensors[key].dtype == torch.float32
        assert (bf16.tensors[key].sum() / fp32.tensors[key].sum() - 1).abs() < 0.1


# ------------------------------------------------------------------------------------- checkpoint / resume
class _Killed(Exception):
    pass


def _dies_after(documents, count):
    for index, doc in enumerate(documents):
        if index == count:
            raise _Killed
        yield doc


def test_estimation_resumes_from_its_checkpoint_after_a_kill(tmp_path, tok, docs, llama64):
    kwargs = {"target_modules": LLAMA_TARGETS, "max_length": 32, "batch_size": 2, "checkpoint_every": 16}
    whole = estimate_fisher(llama64, tok, docs, **kwargs)
    with pytest.raises(_Killed):
        estimate_fisher(llama64, tok, _dies_after(docs, 20), checkpoint_dir=tmp_path, **kwargs)
    assert (tmp_path / "checkpoint.safetensors").exists()  # written after document 16
    resumed = estimate_fisher(llama64, tok, docs, checkpoint_dir=tmp_path, **kwargs)
    assert resumed.num_docs == whole.num_docs and resumed.num_tokens == whole.num_tokens
    assert_close(resumed.tensors, whole.tensors, rtol=1e-12)


def test_a_checkpoint_of_another_run_is_refused(tmp_path, tok, docs, llama64):
    kwargs = {"target_modules": ["q_proj"], "max_length": 32, "batch_size": 2, "checkpoint_every": 16}
    estimate_fisher(llama64, tok, docs, checkpoint_dir=tmp_path, **kwargs)
    with pytest.raises(FisherError, match=r"different run \(differs in: max_length\).*delete"):
        estimate_fisher(llama64, tok, docs, checkpoint_dir=tmp_path, **{**kwargs, "max_length": 16})
