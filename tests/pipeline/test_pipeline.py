"""The pipeline: recipes, the smoke run end to end, and its resume after a stage is interrupted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import e2wm.pipeline as pipeline
from e2wm.cli import main
from e2wm.pipeline import STAGES, PipelineError, load_recipe, run_pipeline

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_pipeline_recipes_load_and_build_their_training_configs(tmp_path):
    from e2wm.pipeline import training_arguments

    for name in ("smoke.yaml", "quickstart.yaml"):
        recipe = load_recipe(RECIPES / name)
        assert recipe.collect and recipe.train and recipe.evaluate["tasks"]
        _, plain, lora = training_arguments(recipe, tmp_path / "lora", "m", "c", penalty="none", ewc_lambda=0.0)
        data, ewc, _ = training_arguments(recipe, tmp_path / "ewc", "m", "c", penalty="ewc", fisher="f")
        assert plain.penalty == "none" and plain.ewc_lambda == 0.0
        assert ewc.penalty == "ewc" and ewc.ewc_lambda == recipe.train["ewc_lambda"] > 0 and ewc.fisher == "f"
        assert lora.lora_r == recipe.train["lora_r"] and data.dataset_config and data.dataset_name == "c"
        assert ewc.output_dir == str(tmp_path / "ewc") and lora.model_name_or_path == "m"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: x\n", "needs a 'collect' section"),
        ("model: x\ncollect: [{plans: 3}]\ntrain: {}\nevaluate: {}\n", "collect[0] needs 'scenes'"),
        ("model: x\ncollect: []\ntrain: {}\nevaluate: {}\nshuffle: true\n", "unknown section(s) shuffle"),
        ("- a list\n", "a recipe is a YAML mapping"),
        ("model: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_recipes_are_refused_with_the_fix(tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError) as err:
        load_recipe(path)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("ewc_lambda: 1.0", "ewc_lamda: 1.0"), "unknown key 'ewc_lamda'; did you mean ewc_lambda?"),
        (("ewc_lambda: 1.0", "ewc_lambda: -1.0"), "ewc_lambda must be a finite number ≥ 0"),
        (("ewc_lambda: 1.0", "ewc_lambda: [1, 2]"), "ewc_lambda must be a number, got [1, 2]"),
        (("  limit: 6", "  limt: 6"), "unknown key 'limt'; did you mean limit?"),
        (("  limit: 6", "  limit: -1"), "--limit must be at least 1"),
        (
            ("  limit: 6", "  limit: 6\n  dtype: fastest"),
            "evaluate: dtype must be one of float32, bfloat16, float16, fast, got 'fastest'; did you mean fast?",
        ),
        (
            ("tasks: [counting_qa,", "tasks: [countin_qa,"),
            "unknown evaluation task 'countin_qa'; did you mean counting_qa?",
        ),
        (
            ("lora_target_modules: [q_proj, v_proj]", "lora_target_modules: 5"),
            "lora_target_modules must be a list of str, got 5",
        ),
        (("max_steps: 6", "output_dir: somewhere"), "output_dir is set by the pipeline"),
        (("explorations: 160", "explorations: -5"), "--explorations must be 0 or more"),
    ],
)
def test_a_wrong_value_anywhere_in_the_recipe_fails_before_the_first_stage(tmp_path, edit, message):
    path = tmp_path / "r.yaml"
    text = (RECIPES / "smoke.yaml").read_text()
    assert edit[0] in text
    path.write_text(text.replace(*edit))
    with pytest.raises(PipelineError) as err:
        load_recipe(path)
    assert message in str(err.value) and str(path) in str(err.value)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The smoke recipe, interrupted during the EWC-LoRA training, then resumed to the end."""
    out = tmp_path_factory.mktemp("run") / "smoke"
    recipe = load_recipe(RECIPES / "smoke.yaml")
    original = pipeline._RUNNERS["train_ewc_lora"]

    def interrupted(run):
        raise KeyboardInterrupt

    pipeline._RUNNERS["train_ewc_lora"] = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            run_pipeline(recipe, out, log=lambda _: None, progress=False)
    finally:
        pipeline._RUNNERS["train_ewc_lora"] = original
    done_before = sorted(p.name for p in (out / ".done").iterdir())
    ran: list[str] = []
    originals = dict(pipeline._RUNNERS)
    for stage, runner in originals.items():
        pipeline._RUNNERS[stage] = lambda run, stage=stage, runner=runner: ran.append(stage) or runner(run)
    try:
        report = run_pipeline(recipe, out, log=lambda _: None, progress=False)
    finally:
        pipeline._RUNNERS.update(originals)
    return out, report, done_before, ran


def test_the_interrupted_run_resumes_where_it_stopped(smoke_run):
    _, _, done_before, ran = smoke_run
    assert done_before == sorted(["model", "collect", "corpus", "fisher", "train_lora"])
    assert ran == ["model", "train_ewc_lora", "eval_base", "eval_lora", "eval_ewc_lora", "report"]


def test_the_smoke_run_leaves_every_stage_output(smoke_run):
    out, report, _, _ = smoke_run
    assert report == out / "report" / "report.md" and report.exists()
    for path in ("episodes/0/collect.json", "corpus/README.md", "fisher/fisher.safetensors", "adapters/lora/adapter_model.safetensors",
                 "adapters/ewc_lora/adapter_model.safetensors", "eval/base/results.json", "report/tasks.png", "report/perplexity.png"):  # fmt: skip
        assert (out / path).exists(), path
    results = json.loads((out / "report" / "results.json").read_text())["labels"]
    assert set(results) == {"base", "lora", "ewc_lora"}
    assert all("perplexity" in r["tasks"] for r in results.values())
    card = (out / "adapters" / "ewc_lora" / "README.md").read_text()
    assert "model-index" in card and "counting_qa" in card
    state = json.loads((out / "pipeline.json").read_text())
    assert set(state["stages"]) == set(STAGES)


def test_a_finished_run_is_not_redone_and_a_corrected_recipe_redoes_only_what_it_changes(smoke_run, tmp_path, capsys):
    out, _, _, _ = smoke_run
    assert main(["pipeline", "--recipe", str(RECIPES / "smoke.yaml"), "--out", str(out), "--quiet"]) == 0
    assert "already done" in capsys.readouterr().out
    ran: list[str] = []
    originals = dict(pipeline._RUNNERS)
    for stage, runner in originals.items():
        pipeline._RUNNERS[stage] = lambda run, stage=stage, runner=runner: ran.append(stage) or runner(run)
    other = tmp_path / "other.yaml"
    other.write_text((RECIPES / "smoke.yaml").read_text().replace("  limit: 6", "  limit: 5"))
    try:
        run_pipeline(load_recipe(other), out, log=lambda _: None, progress=False)
    finally:
        pipeline._RUNNERS.update(originals)
    assert ran == ["model", "eval_base", "eval_lora", "eval_ewc_lora", "report"]  # no retraining
    results = json.loads((out / "report" / "results.json").read_text())["labels"]
    generation = [t for r in results.values() for t in r["tasks"].values() if t["settings"].get("kind") == "generation"]
    assert generation and all(t["n"] <= 5 and t["settings"]["cap"] == 5 for t in generation)  # limit caps generation


def test_the_progress_display_counts_stages_and_shows_the_stages_own_status(tmp_path, monkeypatch):
    """One bar: its count is right after skipped stages, and a stage's live detail (the training step)
    reaches it."""
    shown: list[tuple[str, object]] = []

    class Bar:
        def __init__(self, total, **kwargs):
            shown.append(("total", total))

        def update(self, n):
            shown.append(("update", n))

        def set_postfix_str(self, text):
            shown.append(("status", text))

        def close(self):
            shown.append(("close", None))

    monkeypatch.setattr(pipeline, "tqdm", Bar)
    for stage in STAGES:
        monkeypatch.setitem(pipeline._RUNNERS, stage, lambda run, stage=stage: run.status(f"{stage} step 1/1"))
    recipe = load_recipe(RECIPES / "smoke.yaml")
    out = tmp_path / "run"
    (out / ".done").mkdir(parents=True)
    # as if resumed after the collection (a run folder: its state file and the collection's marker)
    (out / "pipeline.json").write_text(json.dumps({"recipe": recipe.raw, "stages": {"collect": 1.0}}))
    (out / ".done" / "collect").write_text(f"{pipeline.fingerprints(recipe)['collect']} 1.0\n")
    run_pipeline(recipe, out, log=lambda _: None)
    assert shown[0] == ("total", len(STAGES)) and shown[-1] == ("close", None)
    assert shown.count(("update", 1)) == len(STAGES)
    statuses = [text for kind, text in shown if kind == "status"]
    assert "train_lora step 1/1" in statuses and "collect step 1/1" not in statuses
    assert statuses.index("train_lora") < statuses.index("train_lora step 1/1")


def test_a_recipe_with_eai_tasks_needs_eai_before_the_first_stage(tmp_path, monkeypatch):
    import e2wm.evaluation.eai_evaluator as evaluator

    def missing():
        raise evaluator.EAIUnavailableError(f"EAI's evaluator is not installed: {evaluator.EAI_INSTALL}")

    monkeypatch.setattr(evaluator, "eai_package_dir", missing)
    monkeypatch.setattr(pipeline, "_RUNNERS", {})  # a stage that ran would fail differently
    recipe = load_recipe(RECIPES / "quickstart.yaml")
    with pytest.raises(PipelineError, match=r"evaluate: eai_action_sequencing_e2wm: .*pip install --no-deps eai-eval"):
        run_pipeline(recipe, tmp_path / "run", log=lambda _: None)
    assert not (tmp_path / "run").exists()
