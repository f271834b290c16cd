"""Rouge-L and path scores, the paper's file formats, and generated plans executed in the world."""

from __future__ import annotations

import json

import pytest

from e2wm.evaluation.metrics import ROUGE_L_PATH, path_score, rouge_l
from e2wm.evaluation.plans import execute_plan, parse_sentence
from e2wm.evaluation.tasks import EvalFileError, metric_for, tasks_from_files
from e2wm.experience.goals import EdgeFact, Goal, StateFact
from tests.world.homes import ALICE, COFFEE_TABLE, PLATE, TV, small_home


def test_rouge_l_on_known_pairs():
    assert rouge_l(["Walk to kitchen. Grab cup."], ["Walk to kitchen. Grab cup."]) == pytest.approx(1.0)
    # LCS of 5 tokens over 6 and 6 → F = 5/6
    assert rouge_l(["walk to kitchen grab the cup"], ["walk to kitchen grab a cup"]) == pytest.approx(5 / 6)
    assert rouge_l(["sofa"], ["kitchen"]) == 0.0
    import evaluate

    assert evaluate.load(ROUGE_L_PATH).compute(predictions=["a b c"], references=["a c"])["rougeL"] == pytest.approx(
        0.8
    )


@pytest.mark.parametrize(
    ("prediction", "reference", "score"),
    [
        ("kitchen, bedroom, bathroom", "kitchen, bedroom, bathroom", 1.0),
        ("kitchen, bedroom, bathroom", "kitchen, bedroom, home office", 2 / 3),
        ("bedroom, kitchen", "kitchen, bedroom, bathroom", 1 / 3),
        ("bedroom", "kitchen, bedroom, bathroom, dining room", 1 / 4),
        ("", "kitchen", 0.0),
    ],
)
def test_path_score(prediction, reference, score):
    assert path_score(prediction, reference) == pytest.approx(score)


def test_both_released_file_shapes(tmp_path):
    gen = tmp_path / "plan_generation_vanilla_seen.json"
    gen.write_text(
        "\n".join(json.dumps({"input": f"Q: How to {a}?\nA:", "ref": "Walk to kitchen."}) for a in "abc") + "\n"
    )
    mc = tmp_path / "housework_qa.json"
    mc.write_text(
        json.dumps(
            {
                "input": "To cook, a possibly related item could be",
                "answer": "pot",
                "answer_list": ["pot", "sock", "bed", "tv"],
            }
        )
        + "\n"
    )
    track = tmp_path / "object_path_tracking.json"
    track.write_text(json.dumps({"input": "story\nAnswer:", "ref": "kitchen, bedroom"}) + "\n")
    counting = tmp_path / "counting.json"
    counting.write_text(
        json.dumps({"input": "Q: ...\nA:", "answer": "2", "answer_list": ["0", "1", "2", "3", "4"]}) + "\n"
    )
    tasks = {
        t.name: t for t in tasks_from_files([gen, mc, track, counting], metrics={"counting": "accuracy_calibrated"})
    }
    assert (
        tasks["plan_generation_vanilla_seen"].kind == "generation"
        and tasks["plan_generation_vanilla_seen"].metric == "rouge_l"
    )
    assert len(tasks["plan_generation_vanilla_seen"].examples) == 3
    assert tasks["housework_qa"].kind == "multiple_choice" and tasks["housework_qa"].metric == "accuracy_calibrated"
    assert tasks["object_path_tracking"].metric == "path_score"
    assert tasks["counting"].metric == "accuracy_calibrated", "a flag overrides the file name"
    assert metric_for("activity_recognition_qa", "multiple_choice") == "accuracy_normalised"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"input": "a", "ref": "b"}', "not json"], ":2: not a JSON object"),
        (['{"input": "a", "answer": "x", "answer_list": ["y", "z"]}'], ":1: 'answer' 'x' is not in 'answer_list'"),
        (['{"input": "a", "ref": "b"}', '{"input": 3, "ref": "b"}'], ":2: 'input' must be a string"),
        (['{"question": "a"}'], ":1: expected 'input' with 'ref'"),
        (['{"input": "a", "ref": "b"}', '{"input": "a"}'], ":2: a generation line needs a string 'ref'"),
    ],
)
def test_malformed_lines_are_rejected_with_their_number(tmp_path, lines, message):
    path = tmp_path / "task.json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EvalFileError) as err:
        tasks_from_files([path])
    assert message in str(err.value) and str(path) in str(err.value)


def test_babi_files_are_tasks(tmp_path):
    path = tmp_path / "qa1.txt"
    path.write_text("1 Mary went to the kitchen.\n2 Where is Mary? \tkitchen\t1\n")
    (task,) = tasks_from_files([path])
    assert task.metric == "exact_match" and task.examples[0]["reference"] == "kitchen"


def test_sentences_parse_back_into_verbs():
    assert parse_sentence("Put plate on coffee table.") == ("PutBack", ["plate", "coffee table"])
    assert parse_sentence("Put on shirt.") == ("PutOn", ["shirt"])
    assert parse_sentence("Stand up.") == ("StandUp", [])
    assert parse_sentence("Do a dance.") is None


GOAL = Goal("tidy", (EdgeFact(PLATE, "ON", COFFEE_TABLE),), ALICE)


def test_a_good_plan_executes_and_reaches_the_goal():
    plan = "Walk to plate. Grab plate. Walk to coffee table. Put plate on coffee table."
    result = execute_plan(plan, small_home(), GOAL)
    assert result.executable and result.reached and result.lines == 4


def test_bad_plans_fail_with_a_reason():
    assert not execute_plan("Walk to plate. Grab plate.", small_home(), GOAL).reached
    result = execute_plan("Grab plate. Walk to coffee table.", small_home(), GOAL)
    assert not result.executable and "does not execute" in result.reason
    assert "cannot parse" in execute_plan("Juggle the plates.", small_home(), GOAL).reason
    assert "no 'spaceship'" in execute_plan("Walk to spaceship.", small_home(), GOAL).reason
    assert execute_plan("", small_home(), GOAL).reason == "the plan is empty"
    tv = execute_plan(
        "Walk to television. Switch on television.", small_home(), Goal("tv", (StateFact(TV, "ON"),), ALICE)
    )
    assert tv.reached
