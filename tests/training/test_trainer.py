"""EWCLoRATrainer: the penalty once per optimizer step, task weights, Fisher checks, quantized bases, resume."""

from __future__ import annotations

import math

import pytest
import torch

from tests.training.common import (
    TARGETS,
    config_fields,
    load_model,
    lora_config,
    lora_weights,
    prompt_completion,
    training_config,
)


def _trainer(folder, args, dataset, *, random_b=False, model_kwargs=None, peft_config=None, **kwargs):
    from e2wm import EWCLoRATrainer

    model, tok = load_model(folder, **(model_kwargs or {}))
    peft_config = peft_config or lora_config(random_b=random_b)
    return EWCLoRATrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tok, peft_config=peft_config, **kwargs
    )  # fmt: skip


LR, LAMBDA = 0.05, 1e-3  # λ·P is then about the task loss (random B, paper_int8 Fisher): both gradients matter


def _sgd(tmp_path, name, fisher, **overrides):
    """One plain SGD step without clipping: the update is exactly -lr × gradient, so any miscounted term shows."""
    # LAMBDA is sized for the paper_int8 Fisher, whatever the default normalisation
    fields = dict(optim="sgd", learning_rate=LR, max_grad_norm=0.0, fisher=str(fisher), ewc_lambda=LAMBDA,
                  fisher_normalization="paper_int8")  # fmt: skip
    return training_config(tmp_path / name, **{**fields, **overrides})


def _update(before, after):
    return {name: after[name] - before[name] for name in before}


def _assert_close(a, b, atol=1e-6, rtol=1e-5):
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=atol, rtol=rtol, msg=name)


def test_one_step_of_batch_4_equals_batch_2_with_2_accumulation_steps_and_applies_the_penalty_once(
    tmp_path, llama_folder, fisher_folder
):
    data = prompt_completion(8)
    updates = {}
    for name, batch, accumulation, lam in [("b4", 4, 1, LAMBDA), ("b2x2", 2, 2, LAMBDA), ("b4-task-only", 4, 1, 0.0)]:
        args = _sgd(tmp_path, name, fisher_folder, per_device_train_batch_size=batch,
                    gradient_accumulation_steps=accumulation, ewc_lambda=lam)  # fmt: skip
        trainer = _trainer(llama_folder, args, data, random_b=True)
        assert args.gradient_checkpointing  # trl's default, kept: the penalty is computed outside the forward
        before = lora_weights(trainer.model)
        if name == "b4":  # ∇P at the starting point, from the penalty alone
            params = [p for n, p in trainer.model.named_parameters() if "lora_" in n]
            grad_p = dict(
                zip(before, (g.detach().clone() for g in torch.autograd.grad(trainer._penalty(), params)), strict=True)
            )
        trainer.train()
        updates[name] = _update(before, lora_weights(trainer.model))
    _assert_close(updates["b4"], updates["b2x2"])
    # The step with λ minus the step without it is -lr·λ·∇P: the penalty gradient entered exactly once.
    penalty_part = {n: updates["b4"][n] - updates["b4-task-only"][n] for n in updates["b4"]}
    _assert_close(penalty_part, {n: -LR * LAMBDA * g for n, g in grad_p.items()})
    task_part = max(u.abs().max().item() for u in updates["b4-task-only"].values())
    assert max(p.abs().max().item() for p in penalty_part.values()) > 0.1 * task_part  # the check has teeth


@pytest.mark.parametrize(("lam", "penalty"), [(0.0, "ewc"), (5.0, "none")])
def test_without_a_penalty_the_trainer_equals_plain_sft_trainer_step_for_step(tmp_path, llama_folder, lam, penalty):
    from trl import SFTConfig, SFTTrainer

    data = prompt_completion(12)
    steps = dict(max_steps=3, optim="adamw_torch", learning_rate=1e-2)
    ours = _trainer(llama_folder, training_config(tmp_path / "ewc", ewc_lambda=lam, penalty=penalty, **steps), data)
    ours.train()
    model, tok = load_model(llama_folder)
    args = SFTConfig(**config_fields(tmp_path / "sft", **steps))
    plain = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                       peft_config=lora_config())  # fmt: skip
    plain.train()
    logged = [(h["loss"], h["grad_norm"]) for h in ours.state.log_history if "loss" in h]
    assert logged == [(h["loss"], h["grad_norm"]) for h in plain.state.log_history if "loss" in h]
    assert len(logged) == 3
    theirs = lora_weights(plain.model)
    for name, weight in lora_weights(ours.model).items():
        assert torch.equal(weight, theirs[name]), name


def test_a_huge_lambda_keeps_the_adapter_near_zero(tmp_path, llama_folder, fisher_folder):
    data = prompt_completion(16)
    norms = {}
    for lam in (0.0, 1e6):
        args = training_config(tmp_path / str(lam), fisher=str(fisher_folder), ewc_lambda=lam, max_steps=12,
                               optim="adamw_torch", learning_rate=1e-2)  # fmt: skip
        trainer = _trainer(llama_folder, args, data)
        trainer.train()
        deltas = [layer.get_delta_weight("default") for _, layer in _lora_layers(trainer.model)]
        norms[lam] = math.sqrt(sum(float(d.square().sum()) for d in deltas))
    assert norms[0.0] > 0.05
    assert norms[1e6] < 0.1 * norms[0.0]


def _lora_layers(model):
    from e2wm.ewc.layers import lora_layers

    return list(lora_layers(model))


def test_the_penalty_and_its_ratio_to_the_task_loss_are_logged(tmp_path, llama_folder, fisher_folder):
    args = training_config(tmp_path, fisher=str(fisher_folder), ewc_lambda=2.0, max_steps=2)
    trainer = _trainer(llama_folder, args, prompt_completion(8), random_b=True)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2
    for log in logs:
        assert log["ewc_penalty"] > 0
        assert log["ewc_task_loss"] == pytest.approx(log["loss"] - 2.0 * log["ewc_penalty"])
        assert log["ewc_penalty_ratio"] == pytest.approx(2.0 * log["ewc_penalty"] / log["ewc_task_loss"])


def test_task_weights_scale_each_examples_token_loss_and_metadata_columns_pass_through(tmp_path, llama_folder):
    """loss = Σ_i w_i Σ_t nll_it / N, N = trl's token count; the corpus' metadata columns do not get in the way."""
    data = prompt_completion(
        4, tasks=True, metadata=True
    )  # tasks: plan_generation, activity_recognition, counting, path
    weights = {"plan_generation": 1.0, "activity_recognition": 0.7, "counting": 0.0, "object_path_tracking": 2.0}
    args = training_config(tmp_path, penalty="none", task_weights=weights)
    trainer = _trainer(llama_folder, args, data)
    batch = next(iter(trainer.get_train_dataloader()))
    assert set(batch) == {"input_ids", "attention_mask", "labels", "weight"}
    assert batch["weight"].tolist() == pytest.approx([1.0, 0.7, 0.0, 2.0])

    labels = batch["labels"][:, 1:]
    num_items = int((labels != -100).sum())
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=num_items)
        logits = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
        expected = (batch["weight"][:, None] * nll).sum() / num_items
        unweighted = trainer.compute_loss(trainer.model, {k: v for k, v in batch.items() if k != "weight"},
                                          num_items_in_batch=num_items)  # fmt: skip
        ones = trainer.compute_loss(trainer.model, {**batch, "weight": torch.ones(4)}, num_items_in_batch=num_items)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(ones, unweighted)  # all weights 1: exactly trl's loss
    trainer.model.train()
    trainer.train()  # and a step runs with them
    assert math.isfinite(trainer.state.log_history[0]["loss"])


def test_task_weights_override_the_weight_column_for_the_tasks_they_name():
    from e2wm.trainer import with_task_weights

    data = prompt_completion(4, tasks=True).map(lambda row, i: {"weight": 0.5 * i}, with_indices=True)
    assert with_task_weights(data, {"counting": 3.0})["weight"] == [0.0, 0.5, 3.0, 1.5]
    assert with_task_weights(data, {})["weight"] == [0.0, 0.5, 1.0, 1.5]
    plain = prompt_completion(2, tasks=True).remove_columns("weight")
    assert with_task_weights(plain, {"plan_generation": 0.25})["weight"] == [0.25, 1.0]


def test_task_weights_refuse_packing(tmp_path, llama_folder):
    args = training_config(tmp_path, penalty="none", packing=True, task_weights={"counting": 0.5})
    with pytest.raises(ValueError, match="packing"):
        _trainer(llama_folder, args, prompt_completion(4, tasks=True))


def test_a_fisher_that_does_not_fit_the_adapters_is_a_clear_error(tmp_path, llama_folder, q_only_fisher):
    from e2wm.ewc import FisherMismatchError

    with pytest.raises(FisherMismatchError, match=r"no entry for 'model\.layers\.0\.self_attn\.v_proj\.weight'"):
        _trainer(llama_folder, training_config(tmp_path, fisher=str(q_only_fisher)), prompt_completion(4))


def test_a_penalty_needs_a_lora_model(tmp_path, llama_folder, fisher_folder):
    from e2wm import EWCLoRATrainer

    model, tok = load_model(llama_folder)
    args = training_config(tmp_path, fisher=str(fisher_folder))
    with pytest.raises(ValueError, match="peft_config=LoraConfig"):
        EWCLoRATrainer(model=model, args=args, train_dataset=prompt_completion(4), processing_class=tok)


@pytest.mark.parametrize("bits", [4, 8])
def test_quantized_bases_train_with_the_penalty_in_fp32(tmp_path, llama_folder, fisher_folder, bits):
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32) if bits == 4 else BitsAndBytesConfig(load_in_8bit=True)  # fmt: skip
    args = training_config(
        tmp_path, fisher=str(fisher_folder), ewc_lambda=1.0, max_steps=2, per_device_train_batch_size=2
    )
    trainer = _trainer(llama_folder, args, prompt_completion(4), random_b=True,
                       model_kwargs={"quantization_config": quant, "device_map": "cpu"})  # fmt: skip
    before = lora_weights(trainer.model)
    assert {p.dtype for n, p in trainer.model.named_parameters() if "lora_" in n} == {torch.bfloat16}  # trl's cast
    penalty = trainer._penalty()
    assert penalty.dtype == torch.float32 and penalty.item() > 0
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss"]) and h["ewc_penalty"] > 0 for h in logs)
    after = lora_weights(trainer.model)
    assert any(not torch.equal(before[n], after[n]) for n in before)


def _stop_after_two_steps():
    """A callback that ends training after step 2, as a killed run would (its checkpoint-2 saved)."""
    from transformers import TrainerCallback

    class StopAfter(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                control.should_training_stop = True

    return StopAfter()


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(tmp_path, llama_folder, fisher_folder):
    data = prompt_completion(16)

    def run(name, **kwargs):
        args = training_config(tmp_path / name, fisher=str(fisher_folder), ewc_lambda=2.0, max_steps=4,
                               save_strategy="steps", save_steps=2, optim="adamw_torch", learning_rate=1e-2,
                               lr_scheduler_type="linear", train_sampling_strategy="random")  # fmt: skip
        return _trainer(llama_folder, args, data, random_b=True, **kwargs)

    whole = run("whole")
    whole.train()
    stopped = run("resumed", callbacks=[_stop_after_two_steps()])
    stopped.train()
    assert stopped.state.global_step == 2 and (tmp_path / "resumed/checkpoint-2").is_dir()
    resumed = run("resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed/checkpoint-2"))
    assert resumed.state.global_step == 4
    _assert_close(lora_weights(resumed.model), lora_weights(whole.model), atol=1e-7, rtol=1e-6)


# ------------------------------------------------------------------------------------------- every LoRA setting
def _naive_penalty(trainer, original=None):
    """Σ F ⊙ (W − W*)² in float64 from peft's own weights: W = the current base weight plus get_delta_weight of the
    active adapters, W* = ``original`` (the base weights before peft touched them) or the current base weights."""
    total = torch.zeros((), dtype=torch.float64)
    for name, layer in _lora_layers(trainer.model):
        base = layer.get_base_layer().weight.detach().double()
        change = base - original[name] if original is not None else torch.zeros_like(base)
        for adapter in (a for a in layer.active_adapters if a in layer.lora_A):
            change = change + layer.get_delta_weight(adapter).detach().double()
        total += (trainer.fisher[f"{name}.weight"].double() * change**2).sum()
    return total.item()


def _rewriting_config(init):
    from peft import LoraConfig

    return LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=init)


@pytest.mark.parametrize("init", ["pissa", "olora"])
def test_rewriting_inits_train_against_the_original_base_weights(tmp_path, llama_folder, fisher_folder, init):
    """The Fisher is checked against W* (not W* − s·B⁰A⁰) and P is Σ F ⊙ (W − W*)² before and after training."""
    original = {name: m.weight.detach().double() for name, m in _base_linears(load_model(llama_folder)[0])}
    args = _sgd(tmp_path, init, fisher_folder, max_steps=2, ewc_lambda=1.0)
    trainer = _trainer(llama_folder, args, prompt_completion(8), peft_config=_rewriting_config(init))
    name, layer = _lora_layers(trainer.model)[0]
    assert not torch.allclose(layer.get_base_layer().weight.double(), original[name])  # peft rewrote the base
    start = trainer._penalty().item()
    plain_formula = sum(
        (trainer.fisher[f"{n}.weight"].double() * lay.get_delta_weight("default").double() ** 2).sum().item()
        for n, lay in _lora_layers(trainer.model)
    )
    assert start < 1e-6 * plain_formula  # the model starts at W*: nothing to penalise yet
    trainer.train()
    penalty = trainer._penalty().item()
    assert penalty == pytest.approx(_naive_penalty(trainer, original), rel=1e-4)
    assert penalty > 1e3 * start  # training moved it


def test_resuming_a_pissa_run_rebuilds_the_same_reference_and_gives_the_uninterrupted_result(
    tmp_path, llama_folder, fisher_folder
):
    data = prompt_completion(16)

    def run(name, **kwargs):
        args = training_config(tmp_path / name, fisher=str(fisher_folder), ewc_lambda=2.0, max_steps=4,
                               save_strategy="steps", save_steps=2, optim="adamw_torch", learning_rate=1e-2,
                               train_sampling_strategy="random")  # fmt: skip
        return _trainer(llama_folder, args, data, peft_config=_rewriting_config("pissa"), **kwargs)

    whole = run("whole")
    whole.train()
    stopped = run("resumed", callbacks=[_stop_after_two_steps()])
    stopped.train()
    resumed = run("resumed")
    reference = resumed.penalty_reference  # built at construction, before the checkpoint's factors are loaded
    assert reference is not None and reference.inits == {"default": "pissa"}
    for layer_name in reference.layer_names:
        for (a0, b0, s0), (a1, b1, s1) in zip(
            whole.penalty_reference.factors(layer_name), reference.factors(layer_name), strict=True
        ):
            assert torch.equal(a0, a1) and torch.equal(b0, b1) and s0 == s1
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed/checkpoint-2"))
    assert resumed.state.global_step == 4
    _assert_close(lora_weights(resumed.model), lora_weights(whole.model), atol=1e-7, rtol=1e-6)
    original = {name: m.weight.detach().double() for name, m in _base_linears(load_model(llama_folder)[0])}
    assert resumed._penalty().item() == pytest.approx(_naive_penalty(resumed, original), rel=1e-4)


def test_rewriting_inits_need_the_base_model_to_check_the_fisher(tmp_path, llama_folder, fisher_folder):
    from peft import get_peft_model

    from e2wm import EWCLoRATrainer

    args = training_config(tmp_path, fisher=str(fisher_folder))
    model, tok = load_model(llama_folder)
    wrapped = get_peft_model(model, _rewriting_config("olora"))
    with pytest.raises(ValueError, match=r"adapter 'default'.*init_lora_weights='olora'.*Pass the base model"):
        EWCLoRATrainer(model=wrapped, args=args, train_dataset=prompt_completion(4), processing_class=tok)
    with pytest.raises(ValueError, match=r"load the model and pass it.*fisher_check_base=False"):
        EWCLoRATrainer(model=str(llama_folder), args=args, train_dataset=prompt_completion(4), processing_class=tok,
                       peft_config=_rewriting_config("pissa"))  # fmt: skip


def test_a_frozen_adapter_and_a_new_one_are_penalised_on_their_sum(tmp_path, llama_folder, fisher_folder):
    """Continual learning: the earlier task's adapter frozen, a new one trained; P is on their summed change."""
    from peft import LoraConfig, get_peft_model

    from e2wm import EWCLoRATrainer

    model, tok = load_model(llama_folder)
    model = get_peft_model(model, lora_config(random_b=True))  # the earlier task's adapter
    model.add_adapter("new", LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], init_lora_weights=False))
    model.base_model.set_adapter(["default", "new"])
    for name, param in model.named_parameters():
        if ".default." in name:
            param.requires_grad_(False)
    args = _sgd(tmp_path, "stacked", fisher_folder, ewc_lambda=1.0)
    trainer = EWCLoRATrainer(model=model, args=args, train_dataset=prompt_completion(8), processing_class=tok)
    assert trainer._penalty().item() == pytest.approx(_naive_penalty(trainer), rel=1e-5)
    before = lora_weights(trainer.model)
    trainer.train()
    after = lora_weights(trainer.model)
    for name in before:
        assert torch.equal(before[name], after[name]) == (".default." in name), name  # only "new" moves
    assert trainer._penalty().item() == pytest.approx(_naive_penalty(trainer), rel=1e-5)


def _base_linears(model):
    from e2wm.ewc.layers import base_modules

    return [(name, m) for name, m in base_modules(model) if name.rsplit(".", 1)[-1] in TARGETS]


# ----------------------------------------------------------------------------------------- weights fail loudly
def _token_nll(outputs, labels, num_items_in_batch=None):
    """The summed next-token NLL over the logits, divided by trl's token count: trl's loss, from the logits."""
    logits, labels = outputs.logits[:, :-1], labels[:, 1:]
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="sum")
    return nll / (num_items_in_batch or (labels != -100).sum())


def test_task_weights_fail_loudly_when_the_loss_comes_from_the_logits(tmp_path, llama_folder):
    """A compute_loss_func takes the loss from the logits, where per-example weights cannot enter: refused."""
    args = training_config(tmp_path, penalty="none")
    trainer = _trainer(llama_folder, args, prompt_completion(4), compute_loss_func=_token_nll)  # weights all 1
    batch = next(iter(trainer.get_train_dataloader()))
    with torch.no_grad():
        plain = trainer.compute_loss(trainer.model, dict(batch))  # weights 1: the logits path is fine
        assert torch.isfinite(plain)
        with pytest.raises(RuntimeError, match=r"task weights \[1\.0, 0\.5, 0\.0, 2\.0\].*no fused.*log_probs"):
            trainer.compute_loss(trainer.model, {**batch, "weight": torch.tensor([1.0, 0.5, 0.0, 2.0])})


def test_weighted_eval_data_with_label_smoothing_is_refused_at_construction(tmp_path, llama_folder):
    data = prompt_completion(4, tasks=True)
    train = data.filter(lambda row: row["task"] == "plan_generation")  # weight 1 only
    args = training_config(tmp_path, penalty="none", label_smoothing_factor=0.1)  # default task weights: 0.7 for one
    with pytest.raises(ValueError, match="label smoothing"):
        _trainer(llama_folder, args, train, eval_dataset=data)


# ----------------------------------------------------------------------------------------- the LM head on a CPU
def test_on_a_cpu_the_fused_lm_head_projects_only_the_labelled_positions_with_the_same_loss_and_gradients(
    tmp_path, llama_folder, monkeypatch
):
    """trl scores every position off Triton devices; e2wm's trainer narrows that to the labelled ones on a CPU
    (the quickstart's step: ~5× faster). Same loss, same gradients as trl's own choice of rows."""
    import trl.trainer.utils as trl_utils

    trainer = _trainer(llama_folder, training_config(tmp_path, penalty="none"), prompt_completion(4))
    batch = next(iter(trainer.get_train_dataloader()))
    labelled = int((batch["labels"][:, 1:] != -100).sum())
    positions = batch["labels"][:, 1:].numel()
    assert 0 < labelled < positions  # prompts are not scored: the check has teeth
    rows, kernel = [], trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden, *args):
            rows.append(hidden.shape[0])
            return kernel.apply(hidden, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    params = [p for n, p in trainer.model.named_parameters() if "lora_" in n]
    narrowed = trainer.compute_loss(trainer.model, dict(batch))
    narrowed_grads = torch.autograd.grad(narrowed, params)
    full = super(type(trainer), trainer).compute_loss(trainer.model, dict(batch))  # trl's own: every position
    full_grads = torch.autograd.grad(full, params)
    assert rows == [labelled, positions]
    torch.testing.assert_close(narrowed, full)
    for a, b in zip(narrowed_grads, full_grads, strict=True):
        torch.testing.assert_close(a, b)
    assert trl_utils._use_triton(torch.device("cpu")) is False  # trl's choice is restored after the call


def test_an_evaluation_on_a_cpu_does_not_end_gradients_through_4bit_layers(tmp_path, llama_folder):
    """bitsandbytes ≥ 0.50 repacks 4-bit weights for a kernel without a backward on an eval-mode forward without
    gradients (on CPUs with AVX512-BF16); the steps after an evaluation must still train every adapter."""
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32)
    args = training_config(tmp_path, penalty="none", per_device_train_batch_size=2)
    trainer = _trainer(llama_folder, args, prompt_completion(4), random_b=True,
                       model_kwargs={"quantization_config": quant, "device_map": "cpu"})  # fmt: skip
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():  # what Trainer.evaluate does
        trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    trainer.model.train()
    trainer.compute_loss(trainer.model, dict(batch)).backward()
    grads = {n: p.grad for n, p in trainer.model.named_parameters() if "lora_" in n}
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads.values()), [
        n for n, g in grads.items() if g is None or g.abs().sum() == 0
    ]
