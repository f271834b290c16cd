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
    from e2wm.pipeline import training_setup

    for name in ("smoke.yaml", "quickstart.yaml"):
        recipe = load_recipe(RECIPES / name)
        assert recipe.collect and recipe.train and recipe.evaluate["tasks"]
        plain, lora, data = training_setup(recipe, tmp_path / "lora", ewc=False)
        ewc, _, _ = training_setup(recipe, tmp_path / "ewc", ewc=True, fisher=str(tmp_path / "fisher"))
        assert plain.penalty == "none" and plain.ewc_lambda == 0.0
        assert ewc.penalty == "ewc" and ewc.ewc_lambda == recipe.train["ewc_lambda"] > 0
        assert lora.r == recipe.train["lora"]["r"] and data["configs"]


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


def test_a_finished_run_is_not_redone_and_another_recipe_is_refused(smoke_run, tmp_path, capsys):
    out, _, _, _ = smoke_run
    assert main(["pipeline", "--recipe", str(RECIPES / "smoke.yaml"), "--out", str(out), "--quiet"]) == 0
    assert "already done" in capsys.readouterr().out
    other = tmp_path / "other.yaml"
    other.write_text((RECIPES / "smoke.yaml").read_text().replace("max_steps: 6", "max_steps: 7"))
    assert main(["pipeline", "--recipe", str(other), "--out", str(out), "--quiet"]) == 2
    assert "was started with another recipe" in capsys.readouterr().err


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
    (out / ".done" / "collect").write_text("1.0\n")  # as if resumed after the collection
    run_pipeline(recipe, out, log=lambda _: None)
    assert shown[0] == ("total", len(STAGES)) and shown[-1] == ("close", None)
    assert shown.count(("update", 1)) == len(STAGES)
    statuses = [text for kind, text in shown if kind == "status"]
    assert "train_lora step 1/1" in statuses and "collect step 1/1" not in statuses
    assert statuses.index("train_lora") < statuses.index("train_lora step 1/1")
