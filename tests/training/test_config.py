"""EWCLoRAConfig, the recipes and the accelerate configs: every shipped YAML builds its config objects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.training.common import training_config

REPO = Path(__file__).resolve().parents[2]
# Training recipes (`e2wm train`); recipes/ also holds `e2wm pipeline` recipes, which have a `collect` section.
RECIPES = [p for p in sorted((REPO / "recipes").glob("*.yaml")) if "collect" not in yaml.safe_load(p.read_text())]
ACCELERATE_CONFIGS = sorted((REPO / "accelerate_configs").glob("*.yaml"))
PAPER_TASK_WEIGHTS = {"plan_generation": 1.0, "activity_recognition": 0.7, "counting": 1.0, "object_path_tracking": 1.0}


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"ewc_lambda": -1.0}, "ewc_lambda"),
        ({"ewc_lambda": float("nan")}, "ewc_lambda"),
        ({"penalty": "fisher"}, "penalty"),
        ({"fisher_normalization": "int8"}, "fisher_normalization"),
        ({"fisher": None}, "fisher"),
        ({"task_weights": {"counting": -0.5}}, "task_weights['counting']"),
        ({"task_weights": "counting=0.5"}, "task_weights"),
        ({"penalty_chunk_bytes": 0}, "penalty_chunk_bytes"),
    ],
)
def test_invalid_values_fail_at_construction_naming_the_field(tmp_path, fields, named):
    with pytest.raises(ValueError, match=f"EWCLoRAConfig.{named}".replace("[", r"\[")):
        training_config(tmp_path, **{"fisher": "fisher/", **fields})


def test_missing_fisher_error_says_how_to_fix_it(tmp_path):
    with pytest.raises(ValueError) as err:
        training_config(tmp_path)
    assert "e2wm fisher" in str(err.value) and "penalty='l2'" in str(err.value)


def test_no_fisher_is_needed_without_an_ewc_penalty(tmp_path):
    assert training_config(tmp_path, penalty="l2").fisher is None
    assert training_config(tmp_path, ewc_lambda=0.0).ewc_lambda == 0.0
    assert training_config(tmp_path, penalty="none").penalty == "none"


def test_defaults_are_the_papers_and_task_weights_parse_from_json(tmp_path):
    from e2wm.ewc import DEFAULT_NORMALIZATION

    config = training_config(tmp_path, fisher="fisher/")
    assert config.task_weights == PAPER_TASK_WEIGHTS
    assert (config.ewc_lambda, config.penalty) == (0.5, "ewc")
    assert config.fisher_normalization == DEFAULT_NORMALIZATION == "global_mean"
    assert training_config(tmp_path, fisher="f", task_weights='{"counting": 0.5}').task_weights == {"counting": 0.5}
    assert training_config(tmp_path, fisher="f", task_weights="{}").task_weights == {}


def _parse(path: Path, *extra: str):
    from trl import get_peft_config, get_quantization_config

    from e2wm.train import parse_config, read_recipe

    data, args, model = parse_config(read_recipe(path), extra, where=str(path))  # what `e2wm train --config` runs
    return data, args, model, get_quantization_config(model), get_peft_config(model)


def test_every_recipe_opens_with_its_command_and_builds_its_config_objects():
    assert {p.stem for p in RECIPES} == {
        f"{model}_{method}"
        for model, methods in [
            ("gpt_neo_1.3b", "lora"),
            ("gpt_j_6b", "lora"),
            ("llama_13b", "qlora"),
            ("opt_13b", "qlora"),
        ]
        for method in (methods, f"ewc_{methods}")
    } | {"cpu_tiny_ewc_lora"}
    for path in RECIPES:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == f"# e2wm train --config recipes/{path.name}", path.name
        # --use_cpu: the GPU recipes ask for bf16, which SFTConfig accepts on a CPU only with use_cpu.
        data, args, model, quantization, lora = _parse(path, "--use_cpu", "true")
        assert model.use_peft and lora is not None and lora.r == 8 and lora.lora_alpha == 32, path.name
        assert set(lora.target_modules) == {"q_proj", "v_proj"}, path.name
        assert args.task_weights == PAPER_TASK_WEIGHTS, path.name
        assert data.dataset_config == list(PAPER_TASK_WEIGHTS), path.name
        if path.name.startswith("cpu_"):
            assert model.model_name_or_path == "e2wm:tiny" and args.fisher.startswith(data.tiny_assets)
            continue
        assert lora.lora_dropout == 0.1 and args.max_length == 800, path.name
        assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 20, path.name
        assert args.lr_scheduler_type == "linear" and args.warmup_steps == 0, path.name
        baseline = "ewc" not in path.name
        assert (args.ewc_lambda == 0 and args.penalty == "none") if baseline else (args.ewc_lambda > 0 and args.fisher)
        if "13b" in path.name:
            assert quantization.load_in_4bit and quantization.bnb_4bit_quant_type == "nf4", path.name
            assert quantization.bnb_4bit_use_double_quant, path.name
        else:
            assert quantization.load_in_8bit, path.name


def test_recipe_fields_can_be_overridden_by_flags():
    data, args, _, _, _ = _parse(REPO / "recipes/gpt_neo_1.3b_ewc_lora.yaml", "--use_cpu", "true",
                                     "--ewc_lambda", "2", "--learning_rate", "8e-4", "--dataset_config", "counting")  # fmt: skip
    assert (args.ewc_lambda, args.learning_rate, data.dataset_config) == (2.0, 8e-4, ["counting"])


def test_every_accelerate_config_loads_as_an_accelerate_config():
    from accelerate.commands.config.config_args import load_config_from_file

    names = {path.stem for path in ACCELERATE_CONFIGS}
    assert names == {"single_gpu", "multi_gpu", "fsdp", "deepspeed_zero2", "deepspeed_zero3", "cpu_ddp"}
    for path in ACCELERATE_CONFIGS:
        config = load_config_from_file(str(path))
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert config.distributed_type.value == raw["distributed_type"], path.name
        assert path.read_text(encoding="utf-8").startswith("#"), f"{path.name} opens with its command"
    cpu = load_config_from_file(str(REPO / "accelerate_configs/cpu_ddp.yaml"))
    assert cpu.use_cpu and cpu.num_processes == 2 and cpu.distributed_type.value == "MULTI_GPU"  # see its comment
    fsdp = load_config_from_file(str(REPO / "accelerate_configs/fsdp.yaml"))
    assert fsdp.fsdp_config["fsdp_version"] == 2  # FSDP1 cannot carry the penalty
    zero3 = load_config_from_file(str(REPO / "accelerate_configs/deepspeed_zero3.yaml"))
    ds_file = REPO / zero3.deepspeed_config["deepspeed_config_file"]
    zero = json.loads(ds_file.read_text(encoding="utf-8"))["zero_optimization"]
    assert zero["stage"] == 3 and zero["stage3_param_persistence_threshold"] > 8 * 8192  # LoRA r=8 stays whole


def test_import_e2wm_and_its_cli_stay_free_of_torch_and_trl():
    import subprocess
    import sys

    code = "import sys, e2wm, e2wm.cli; print(sorted({'torch', 'trl'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert {"EWCLoRAConfig", "EWCLoRATrainer"} <= set(__import__("e2wm").__all__)
