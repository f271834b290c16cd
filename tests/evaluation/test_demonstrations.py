"""Few-shot evaluation: demonstrations from the training split only, the same for every model; zero-shot too."""

from __future__ import annotations

import pytest

from e2wm.evaluation.demonstrations import DEFAULT_SHOTS, parse_shots
from e2wm.evaluation.tasks import tasks_from_corpus
from e2wm.tasks.common import TaskConfig
from e2wm.tasks.corpus import build_corpus, build_examples, check_leaks, demonstration_pool, load_corpus
from e2wm.tasks.story_tasks import COUNTING_HEADER

TASKS = ["counting_qa", "plan_generation_vanilla_seen", "housework_qa", "object_path_tracking"]


@pytest.fixture(scope="module")
def evaluated(corpus):
    folder, _ = corpus
    return {t.name: t for t in tasks_from_corpus(str(folder), TASKS)}


def rows(folder, config, split):
    return {r["example_id"]: r for r in load_corpus(folder, config, split=split)}


def test_demonstrations_are_training_examples_in_the_evaluation_format(corpus, evaluated):
    folder, _ = corpus
    for name in TASKS:
        task, test = evaluated[name], rows(folder, name, "test")
        pool = rows(folder, demonstration_pool(name), "train")
        held = {i for split in ("validation", "test") for i in rows(folder, demonstration_pool(name), split)}
        k = DEFAULT_SHOTS[name]
        assert task.settings["shots"] == k and task.settings["headline"] and len(task.examples) == len(test)
        for example in task.examples:
            row = test[example["id"]]
            assert len(example["demo_ids"]) == k and set(example["demo_ids"]) <= set(pool)
            assert not set(example["demo_ids"]) & held, "never a validation or test example"
            header = COUNTING_HEADER if name == "counting_qa" else ""
            shots = "".join(pool[d]["question"] + pool[d]["completion"] + "\n\n" for d in example["demo_ids"])
            assert example["prompt"] == header + shots + row["question"]
            assert all(pool[d]["question"] != row["question"] for d in example["demo_ids"])
    counting_demo = rows(folder, "counting_qa", "train")[evaluated["counting_qa"].examples[0]["demo_ids"][0]]
    assert counting_demo["question"].endswith("\nAnswer:") and counting_demo["completion"].strip() in "01234"


def test_zero_shot_is_the_question_alone_and_listed_apart(corpus, evaluated):
    folder, _ = corpus
    test = rows(folder, "counting_qa", "test")
    zero = evaluated["counting_qa_zero_shot"]
    assert zero.settings["shots"] == 0 and not zero.settings["headline"] and zero.settings["config"] == "counting_qa"
    for example in zero.examples:
        assert example["prompt"] == COUNTING_HEADER + test[example["id"]]["question"] and example["demo_ids"] == []
    assert [e["id"] for e in zero.examples] == [e["id"] for e in evaluated["counting_qa"].examples], "paired"


def test_plan_demonstrations_never_show_the_activity_asked_about(corpus, evaluated):
    folder, _ = corpus
    activity = {}
    for split in load_corpus(folder, "episodes").values():
        activity.update(zip(split["episode_id"], split["activity"], strict=True))
    for name in ("plan_generation_vanilla_seen", "housework_qa"):
        pool = rows(folder, demonstration_pool(name), "train")
        for example in evaluated[name].examples:
            shown = {activity[pool[d]["episode_id"]] for d in example["demo_ids"]}
            assert activity[example["episode_id"]] not in shown


def test_the_choice_depends_on_the_seed_and_task_never_on_the_model(corpus, evaluated):
    folder, _ = corpus
    again = {t.name: t for t in tasks_from_corpus(str(folder), TASKS)}
    assert all(again[n].examples == evaluated[n].examples for n in evaluated), "the same prompts every time"
    other = {t.name: t for t in tasks_from_corpus(str(folder), ["counting_qa"], demo_seed=1)}
    assert [e["demo_ids"] for e in other["counting_qa"].examples] != [
        e["demo_ids"] for e in evaluated["counting_qa"].examples
    ]
    one = {t.name: t for t in tasks_from_corpus(str(folder), ["counting_qa"], shots=["counting_qa=1"], zero_shot=False)}
    assert set(one) == {"counting_qa"} and all(len(e["demo_ids"]) == 1 for e in one["counting_qa"].examples)
    none = tasks_from_corpus(str(folder), ["counting_qa"], shots=["0"])
    assert [t.name for t in none] == ["counting_qa"] and none[0].settings["shots"] == 0, "k = 0: one zero-shot task"


def test_caps_count_multiple_choice_and_generation_apart(corpus):
    folder, _ = corpus
    tasks = {
        t.name: t for t in tasks_from_corpus(str(folder), ["counting_qa", "plan_generation_vanilla_unseen"], limit=2)
    }
    available = len(load_corpus(folder, "counting_qa", split="test"))
    assert len(tasks["counting_qa"].examples) == available > 2, "--limit caps generation tasks only"
    assert len(tasks["plan_generation_vanilla_unseen"].examples) == 2
    assert tasks["plan_generation_vanilla_unseen"].settings["cap"] == 2
    capped = tasks_from_corpus(str(folder), ["counting_qa"], mc_limit=3, zero_shot=False)
    assert len(capped[0].examples) == 3 and capped[0].settings["available"] == available


def test_shots_are_checked():
    assert parse_shots(["3", "counting_qa=1"], ["counting_qa", "housework_qa"]) == {"counting_qa": 1, "housework_qa": 3}
    for bad in ("x", "counting_qa=-1", "cooking=2"):
        with pytest.raises(ValueError, match="--shots"):
            parse_shots([bad], ["counting_qa"])


def test_a_recipe_writes_shots_as_whole_numbers_or_task_settings():
    from e2wm.arguments import RecipeError, from_mapping
    from e2wm.evaluation.run import EvalConfig

    section = {"model": "e2wm:tiny", "out": "eval", "tasks": ["counting_qa"]}
    assert from_mapping(EvalConfig, {**section, "shots": [2]}, "evaluate").shots == ["2"]
    assert from_mapping(EvalConfig, {**section, "shots": "counting_qa=1"}, "evaluate").shots == ["counting_qa=1"]
    for bad in ([1.5], [True], [-1]):
        with pytest.raises(RecipeError, match=r"evaluate: .*shots"):
            from_mapping(EvalConfig, {**section, "shots": bad}, "evaluate")


def test_a_corpus_without_demonstration_pools_says_how_to_fix_it(corpus, collection, tmp_path):
    folder, _ = corpus
    old = tmp_path / "old"  # as the quickstart's corpus was built before the pools: no demonstrations, no pool
    build_corpus(collection, old, TaskConfig(demos={}), progress=False)
    for file in (old / "counting_qa").glob("train-*.parquet"):
        file.unlink()
    with pytest.raises(ValueError, match=r"no train split .* rebuild the corpus .* --shots counting_qa=0"):
        tasks_from_corpus(str(old), ["counting_qa"])
    (zero,) = tasks_from_corpus(str(old), ["counting_qa"], shots=["counting_qa=0"])
    assert zero.examples and all(e["prompt"].startswith(COUNTING_HEADER) for e in zero.examples)
    with pytest.raises(ValueError, match="train split is training data"):
        tasks_from_corpus(str(folder), ["counting_qa"], split="train")


def test_the_leak_check_holds_for_demonstration_pools(collection):
    examples, summary = build_examples(collection, TaskConfig(), progress=False)
    assert check_leaks(examples, summary.held_out) == []
    pool, test = examples["counting_qa"]["train"], examples["counting_qa"]["test"]
    assert pool and test
    pool.append(test[0])  # a test story in the pool
    assert any("no training config trains on" in p for p in check_leaks(examples))
    pool.pop()
    test[1].demos = [test[2]]  # the corpus's own prompt showing a test example
    assert any("is not from its pool counting_qa/train" in p for p in check_leaks(examples))
