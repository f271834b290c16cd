"""The learning–forgetting frontier: its points, the Pareto front, the budget, and `e2wm frontier` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import e2wm.pipeline as pipeline
from e2wm.cli import main
from e2wm.evaluation.frontier import best_within, pareto_front
from e2wm.frontier import frontier_points, frontier_stages
from e2wm.pipeline import PipelineError, load_recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_the_pareto_front_keeps_exactly_the_points_nothing_beats():
    #          x = forgetting (lower better), y = learning (higher better)
    points = [(5.0, 0.5), (1.0, 0.2), (3.0, 0.1), (0.5, 0.0), (1.0, 0.2), (8.0, 0.4), (2.0, 0.45)]
    front = pareto_front(points)
    assert front == [3, 1, 4, 6, 0]  # sorted by x; (3, .1) and (8, .4) are dominated, the two (1, .2) tie
    assert all(points[j] != (8.0, 0.4) for j in front)


def _row(label, change, gain, low=None):
    return {
        "label": label, "method": "ewc", "setting": label,
        "perplexity_change": {"estimate": change, "low": change - 0.01, "high": change + 0.01},
        "gain": {"estimate": gain, "low": gain - 0.1 if low is None else low, "high": gain + 0.1},
    }  # fmt: skip


def test_the_best_setting_within_a_budget_is_the_highest_gain_that_fits_it():
    rows = [_row("a", 0.005, 0.10), _row("b", 0.015, 0.30), _row("c", 0.05, 0.90), _row("d", 0.019, 0.20)]
    assert best_within(rows, budget=2.0)["label"] == "b"
    assert best_within(rows, budget=2.0, conservative=True)["label"] == "a"  # b's upper bound is 2.5%
    assert best_within(rows, budget=0.1) is None


def _frontier_recipe(tmp_path, frontier, **train):
    data = yaml.safe_load((RECIPES / "smoke.yaml").read_text())
    data["frontier"] = frontier
    data["train"].update(train)
    path = tmp_path / "frontier.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path)


def test_points_that_equal_the_pipelines_trainings_are_the_pipelines_stages(tmp_path):
    recipe = _frontier_recipe(tmp_path, {"methods": ["lora", "ewc", "l2"], "ewc_lambdas": [0.1, 1.0],
                                         "normalizations": ["mean", "paper_int8"], "l2_lambdas": [1.0]})  # fmt: skip
    labels = [p.label for p in frontier_points(recipe, tmp_path)]
    # smoke.yaml trains EWC-LoRA at λ = 1 with the mean normalization: that point is the pipeline's ewc_lora
    assert labels == ["lora", "ewc_mean_l0.1", "ewc_lora", "ewc_paper_int8_l0.1", "ewc_paper_int8_l1", "l2_l1"]
    stages, _ = frontier_stages(recipe, tmp_path)
    names = [s.name for s in stages]
    assert names[:5] == ["model", "collect", "corpus", "fisher", "eval_base"]
    assert {"train_lora", "eval_lora", "train_ewc_lora", "eval_ewc_lora", "train:l2_l1", "eval:l2_l1"} <= set(names)
    assert names[-1] == "frontier"
    prints = pipeline.fingerprints(recipe, stages)
    assert prints["train_lora"] == pipeline.fingerprints(recipe)["train_lora"]  # the same stage as the pipeline's
    assert len({prints[n] for n in names}) == len(names)  # every point trains something different


@pytest.mark.parametrize(
    ("frontier", "message"),
    [
        ({"methods": ["ewc", "dropout"]}, "frontier.methods must name some of"),
        ({"ewc_lambdas": [0.1, -1]}, "frontier.ewc_lambdas must be positive"),
        ({"normalizations": ["l1"]}, "frontier.normalizations: unknown ['l1']"),
        ({"budgett": 2}, "unknown key 'budgett'; did you mean budget?"),
    ],
)
def test_a_bad_frontier_section_fails_before_anything_runs(tmp_path, frontier, message):
    with pytest.raises(PipelineError, match=None) as err:
        _frontier_recipe(tmp_path, frontier)
    assert message in str(err.value)


def test_frontier_end_to_end_on_the_smoke_model(tmp_path, capsys):
    """Two methods, two λ (CI): every point trained and evaluated alike, the plot, the table and the budget."""
    recipe_path = tmp_path / "recipe.yaml"
    data = yaml.safe_load((RECIPES / "smoke.yaml").read_text())
    data["collect"][0].update(plans=16, explorations=64)
    data["train"].update(max_steps=4, save_steps=4)
    data["evaluate"].update(limit=4)
    data["frontier"] = {"methods": ["lora", "ewc", "l2"], "ewc_lambdas": [0.1, 10.0], "l2_lambdas": [10.0],
                        "budget": 5.0}  # fmt: skip
    recipe_path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    assert main(["frontier", "--recipe", str(recipe_path), "--out", str(out), "--quiet"]) == 0
    report = (out / "frontier" / "report.md").read_text()
    result = json.loads((out / "frontier" / "frontier.json").read_text())
    labels = [row["label"] for row in result["rows"]]
    assert labels == ["lora", "ewc_mean_l0.1", "ewc_mean_l10", "l2_l10"]
    for row in result["rows"]:
        change, gain = row["perplexity_change"], row["gain"]
        assert change["low"] <= change["estimate"] <= change["high"] and gain["low"] <= gain["estimate"] <= gain["high"]
        zero = row["gain_zero_shot"]  # the same tasks without demonstrations, beside the few-shot y
        assert zero["low"] <= zero["estimate"] <= zero["high"]
        assert (out / "adapters" / row["label"] / "adapter_model.safetensors").exists()
    assert "| gain, few-shot (aggregate) | gain, zero-shot |" in report
    assert result["pareto_front"] and set(result["pareto_front"]) <= set(labels)
    assert (out / "frontier" / "frontier.png").stat().st_size > 0 and (out / "frontier" / "frontier.svg").exists()
    assert "| ewc | λ = 10, mean |" in report and "perplexity budget of +5%" in report
    # a stronger penalty keeps the adapter closer to the base (in Fisher-weighted ΔW²): λ = 10 below λ = 0.1
    penalties = {}
    for label in ("ewc_mean_l0.1", "ewc_mean_l10"):
        state = json.loads(next((out / "adapters" / label).glob("checkpoint-*/trainer_state.json")).read_text())
        penalties[label] = [e["ewc_penalty"] for e in state["log_history"] if "ewc_penalty" in e][-1]
    assert penalties["ewc_mean_l10"] < penalties["ewc_mean_l0.1"]
    # run again: every point is cached
    capsys.readouterr()
    assert main(["frontier", "--recipe", str(recipe_path), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.count("already done") >= 10
