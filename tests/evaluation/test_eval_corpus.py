"""Evaluating on the corpus's evaluation configs, end to end through ``e2wm eval``."""

from __future__ import annotations

import json

import pytest

from e2wm.cli import main
from e2wm.evaluation.run import plan_context_from_corpus
from e2wm.evaluation.tasks import tasks_from_corpus
from e2wm.models import resolve_model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return resolve_model("e2wm:tiny", tmp_path_factory.mktemp("models") / "tiny")


def test_tasks_from_the_corpus(corpus):
    folder, _ = corpus
    tasks = {
        t.name: t
        for t in tasks_from_corpus(str(folder), ["counting_qa", "plan_generation_vanilla_unseen"], limit=5, mc_limit=5)
    }
    assert tasks["counting_qa"].kind == "multiple_choice" and tasks["counting_qa"].metric == "accuracy_normalised"
    assert len(tasks["counting_qa"].examples) == 5 and tasks["counting_qa"].examples[0]["choices"] == [
        "0",
        "1",
        "2",
        "3",
        "4",
    ]
    plan = tasks["plan_generation_vanilla_unseen"]
    assert plan.metric == "rouge_l" and plan.examples[0]["reference"].startswith("Walk to")
    with pytest.raises(ValueError, match="unknown evaluation task"):
        tasks_from_corpus(str(folder), ["cooking_show"])


def test_reference_plans_execute_in_the_corpus_scenes(corpus):
    from e2wm.evaluation.plans import execute_plan

    folder, _ = corpus
    context = plan_context_from_corpus(str(folder), "test")
    (task,) = tasks_from_corpus(str(folder), ["plan_generation_vanilla_unseen"], zero_shot=False)
    reached = 0
    for example in task.examples:
        scene, goal = context(example["scene_id"], example["episode_id"])
        reached += execute_plan(example["reference"], scene, goal).reached
    assert reached == len(task.examples), "the reference plans reach their goals when read back from text"


def test_eval_command_end_to_end(corpus, tiny_model, tmp_path, capsys):
    folder, _ = corpus
    text = tmp_path / "general.txt"
    text.write_text("The cat sat on the mat in the kitchen.\nAlice opened the fridge and took the milk.\n")
    argv = ["eval", "--model", tiny_model, "--tasks", "counting_qa,plan_generation_vanilla_unseen,object_location_qa",
            "--corpus", str(folder), "--limit", "4", "--mc-limit", "4", "--no-zero-shot", "--out", str(tmp_path / "eval"),
            "--perplexity-text", str(text), "--max-new-tokens", "8", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    results = json.loads((tmp_path / "eval" / "base" / "results.json").read_text())
    assert set(results["tasks"]) == {
        "counting_qa",
        "plan_generation_vanilla_unseen",
        "object_location_qa",
        "perplexity",
    }
    plan = results["tasks"]["plan_generation_vanilla_unseen"]
    assert plan["n"] == 4 and {"plan_executable", "plan_reached"} <= set(plan["extra"])
    assert "counting_qa" in out
    code = main(["eval", "--model", tiny_model, "--out", str(tmp_path / "e2"), "--quiet"])
    assert code == 2 and "nothing to evaluate" in capsys.readouterr().err
