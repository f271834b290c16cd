"""The adapter's model card (trl's mechanism, extended) next to the adapter and on the Hub, and the CLI entry."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from tests.training.common import load_model, lora_config, lora_weights, prompt_completion, training_config

REPO = Path(__file__).resolve().parents[2]


def _card(text: str) -> tuple[dict, str]:
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def test_save_model_leaves_the_ewc_card_next_to_the_adapter(tmp_path, llama_folder, fisher_folder):
    from e2wm import EWCLoRATrainer

    model, tok = load_model(llama_folder)
    args = training_config(tmp_path / "run", fisher=str(fisher_folder), ewc_lambda=0.25)
    data = prompt_completion(8, tasks=True)
    trainer = EWCLoRATrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                             peft_config=lora_config(), dataset_name="e2wm/experiences")  # fmt: skip
    trainer.train()
    trainer.save_model(str(tmp_path / "adapter"))
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files - {"training_args.bin"})
    meta, body = _card((tmp_path / "adapter/README.md").read_text(encoding="utf-8"))
    assert meta["library_name"] == "peft" and meta["datasets"] == ["e2wm/experiences"]
    assert {"e2wm", "ewc-lora", "trl"} <= set(meta["tags"])
    assert "Model Card for" in body and "EWC-LoRA" in body  # trl's template, with our section
    assert "| λ (`ewc_lambda`) | 0.25 |" in body
    assert f"`{fisher_folder}`" in body and "global_mean" in body  # the default normalization
    assert f"`{llama_folder}`" in body and "huggingface.co/None" not in body
    assert "task `activity_recognition` | 2 examples, loss weight 0.7" in body  # the paper's default weights
    assert "2305.10626" in body and "r = 4, alpha = 8" in body


def test_an_osf_adapter_saves_with_a_card_that_names_it(tmp_path, llama_folder):
    """peft's OSF (the frontier's forgetting control) has no r or alpha: its card row says what it is (the card
    asked for ``r`` and the frontier's OSF point failed at its first save)."""
    from peft import OSFConfig

    from e2wm import EWCLoRATrainer

    model, tok = load_model(llama_folder)
    args = training_config(tmp_path / "run", ewc_lambda=0.0, penalty="none", max_steps=1)
    trainer = EWCLoRATrainer(model=model, args=args, train_dataset=prompt_completion(4), processing_class=tok,
                             peft_config=OSFConfig(target_modules=["q_proj", "v_proj"]))  # fmt: skip
    trainer.train()
    trainer.save_model(str(tmp_path / "adapter"))
    _, body = _card((tmp_path / "adapter/README.md").read_text(encoding="utf-8"))
    assert "| adapter | peft `OSF`, effective rank peft's default, targets q_proj, v_proj |" in body
    assert "| LoRA |" not in body


def test_push_to_hub_uploads_the_adapter_and_its_card_and_peft_loads_it_back(fake_hub, tmp_path, llama_folder,
                                                                             fisher_folder):  # fmt: skip
    from huggingface_hub import HfApi
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from e2wm import EWCLoRATrainer
    from e2wm.hub import push_artifact

    api = HfApi()
    api.create_repo("e2wm-test/tiny-llama")
    api.upload_folder(repo_id="e2wm-test/tiny-llama", folder_path=str(llama_folder))
    push_artifact("fisher", fisher_folder, "e2wm-test/tiny-llama-fisher")

    model, tok = load_model("e2wm-test/tiny-llama")
    args = training_config(tmp_path / "ewc-adapter", fisher="e2wm-test/tiny-llama-fisher", ewc_lambda=0.5,
                           hub_model_id="fake-user/tiny-ewc-adapter")  # fmt: skip
    trainer = EWCLoRATrainer(model=model, args=args, train_dataset=prompt_completion(8), processing_class=tok,
                             peft_config=lora_config(random_b=True))  # fmt: skip
    trainer.train()
    trainer.push_to_hub(dataset_name="e2wm/experiences")

    files = fake_hub.files("fake-user/tiny-ewc-adapter")
    assert {"adapter_model.safetensors", "adapter_config.json", "README.md"} <= set(files)
    meta, body = _card(files["README.md"].decode())
    assert meta["base_model"] == "e2wm-test/tiny-llama" and meta["datasets"] == ["e2wm/experiences"]
    assert meta["library_name"] == "peft"
    for named in ("[e2wm-test/tiny-llama](https://huggingface.co/e2wm-test/tiny-llama)",
                  "[e2wm/experiences](https://huggingface.co/datasets/e2wm/experiences)",
                  "[e2wm-test/tiny-llama-fisher](https://huggingface.co/e2wm-test/tiny-llama-fisher)",
                  "| λ (`ewc_lambda`) | 0.5 |", "https://huggingface.co/papers/2305.10626",
                  'PeftModel.from_pretrained(base, "fake-user/tiny-ewc-adapter")'):  # fmt: skip
        assert named in body, named

    base = AutoModelForCausalLM.from_pretrained("e2wm-test/tiny-llama")
    loaded = PeftModel.from_pretrained(base, "fake-user/tiny-ewc-adapter")
    trained = lora_weights(trainer.model)
    for name, weight in lora_weights(loaded).items():
        assert torch.equal(weight, trained[name]), name


def test_e2wm_train_runs_the_offline_cpu_recipe(tmp_path, monkeypatch):
    from e2wm.cli import main

    monkeypatch.chdir(tmp_path)  # the recipe's paths (runs/cpu-tiny/...) are relative
    recipe = str(REPO / "recipes/cpu_tiny_ewc_lora.yaml")
    assert main(["train", "--config", recipe, "--max_steps", "2", "--save_strategy", "no", "--eval_steps", "2"]) == 0
    adapter = tmp_path / "runs/cpu-tiny/adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    assert "runs/cpu-tiny/assets/fisher" in (adapter / "README.md").read_text(encoding="utf-8")
    assert (tmp_path / "runs/cpu-tiny/assets/READY").is_file()


@pytest.mark.parametrize(
    ("flags", "message"),
    [(["--ewc_lambda", "-1"], "EWCLoRAConfig.ewc_lambda"), (["--fisher", "no/such/folder/x"], "no Fisher at")],
)
def test_e2wm_train_reports_a_bad_recipe_value_in_one_line(tmp_path, monkeypatch, capsys, flags, message):
    from e2wm.cli import main

    monkeypatch.chdir(tmp_path)
    recipe = str(REPO / "recipes/cpu_tiny_ewc_lora.yaml")
    assert main(["train", "--config", recipe, "--use_cpu", "true", *flags]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bars of the tiny assets
    assert last.startswith("e2wm train: error:") and message in last


def test_a_plain_lora_baseline_gets_a_card_that_says_so(tmp_path, llama_folder):
    from e2wm import EWCLoRATrainer

    model, tok = load_model(llama_folder)
    args = training_config(tmp_path / "run", penalty="none", ewc_lambda=0.0)
    trainer = EWCLoRATrainer(model=model, args=args, train_dataset=prompt_completion(4), processing_class=tok,
                             peft_config=lora_config())  # fmt: skip
    trainer.save_model()
    _, body = _card((tmp_path / "run/README.md").read_text(encoding="utf-8"))
    assert "| penalty | none (plain LoRA: λ = 0.0, penalty `none`) |" in body and "| Fisher |" not in body
