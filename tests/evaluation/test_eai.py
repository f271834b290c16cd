"""EAI action sequencing: the benchmark read from eai-eval 1.0.5, scored by EAI's own evaluator.

The wiring check: the benchmark's gold programs, written as a model would answer in either prompt
mode, go through e2wm's path (conversion, EAI's evaluator, e2wm's world) and score as EAI scores
them. A sample of short programs keeps it fast (EAI's evaluator deep-copies every past graph at every
step); `python bench/eai_gold.py` runs all 342 tasks. Needs ``pip install --no-deps eai-eval==1.0.5``
(CI installs it).
"""

from __future__ import annotations

import json

import pytest

from e2wm.tasks.common import EAI_PROGRAM_IDS
from tests.conftest import require

# Short gold programs: node goals (394_2), an edge and an action goal (1035_1), an edge goal on a
# couch (563_1), two lights of one class to ground (604_2), and 27_2, which EAI leaves out (its two
# edge goals fail EAI's own gold check).
SAMPLE = ["394_2", "1035_1", "563_1", "604_2", "27_2"]


@pytest.fixture(scope="module")
def eai():
    from e2wm.evaluation import eai as module
    from e2wm.evaluation.eai_evaluator import EAIUnavailableError

    try:
        module.load_eai_tasks(1)
    except EAIUnavailableError as err:
        require(str(err))
    return module


@pytest.fixture(scope="module")
def sample(eai):
    return eai.load_eai_tasks(ids=SAMPLE)


@pytest.fixture(scope="module")
def gold_runs(eai, sample):
    """The gold programs in both answer formats, executed by EAI (``execute_gold_matches``)."""
    return {
        mode: eai.score_answers(
            sample, [eai.gold_answer(t, mode) for t in sample], mode, execute_gold_matches=True, hash_seed=None
        )
        for mode in eai.MODES
    }


def test_the_benchmark_is_read_from_the_installed_wheel(eai):
    tasks = eai.load_eai_tasks()
    assert len(tasks) == 342 and {t.id for t in tasks} == EAI_PROGRAM_IDS
    assert len({t.activity for t in tasks}) == 26
    assert len({t.activity for t in tasks[:26]}) == 26, "a limit takes the activities in turn"
    task = eai.load_eai_tasks(ids=["27_2"])[0]
    assert task.activity == "Wash clothes" and task.prompt.rstrip().endswith("Output:")
    assert ("washing_machine", 1001) in task.objects and task.goal_ids() <= {node for _, node in task.objects}
    assert task.program[0] == "[WALK] <dining_room> (1.201)"
    assert "CLOSED(washing_machine.1001)" in task.tl_goal
    with pytest.raises(ValueError, match="no EAI action-sequencing task 'file27_2'"):
        eai.load_eai_tasks(ids=["file27_2"])


def test_gold_programs_score_as_eai_scores_them_in_both_answer_formats(gold_runs):
    for mode, run in gold_runs.items():
        assert run["eai"]["n"] == 4 and run["eai"]["left_out"] == 1, mode
        assert run["eai"]["success_rate"] == 1.0 and run["eai"]["executability"] == 1.0, mode
        assert run["e2wm"] == {"n": 4, "success_rate": 1.0, "executability": 1.0}, mode
        assert run["disagreements"]["count"] == 0, mode
        # EAI totalled the set itself, and its summary matched the verdicts read from its log
        assert run["eai_summary"]["goal_evaluation"]["task_success_rate"] == 100.0, mode
        left_out = next(r for r in run["records"] if r["id"] == "27_2")
        assert not left_out["eai"]["scored"] and not left_out["e2wm"]["executed"]
    # the sentences of the e2wm format come back as the same plans (the two lights bound apart)
    eai_lines = {r["id"]: r["eai"]["actions"] for r in gold_runs["eai"]["records"]}
    e2wm_lines = {r["id"]: r["eai"]["actions"] for r in gold_runs["e2wm"]["records"]}
    assert e2wm_lines["394_2"] == eai_lines["394_2"] == ["[FIND] <light> (245)", "[SWITCHON] <light> (245)"]
    assert {line for line in e2wm_lines["604_2"] if "SWITCHON" in line} == {
        "[SWITCHON] <light> (64)",
        "[SWITCHON] <light> (1000)",
    }


def test_eai_counts_a_verbatim_gold_answer_executable_but_never_successful(eai, sample):
    """EAI's shortcut (EAI_DEFECTS["gold_shortcut"]), as its published numbers have it: e2wm names
    every such task as a disagreement instead of hiding it."""
    answers = [eai.gold_answer(t, "eai") for t in sample]
    run = eai.score_answers(sample, answers, "eai", hash_seed=None)  # no two-action goal: any seed will do
    assert run["eai"]["success_rate"] == 0.0 and run["eai"]["executability"] == 1.0
    assert run["eai"]["gold_shortcuts"] == 4
    assert run["disagreements"]["by_kind"] == {"gold_shortcut": 4}
    assert run["e2wm"]["success_rate"] == 1.0


def test_wrong_answers_get_eai_error_types_and_e2wm_verdicts(eai):
    tasks = eai.load_eai_tasks(ids=["394_2", "1035_1", "563_1", "211_1"])
    answers = [
        '{"FIND": ["light", 99999], "SWITCHON": ["light", 99999]}',  # not a task object
        '{"TOUCH": ["cat", 1000]}',  # the cat is far away: EAI calls it a missing step
        '{"WALK": ["couch", 352, "couch", 352]}',  # two objects for WALK
        "I would pick up the phone.",  # no JSON at all
    ]
    run = eai.score_answers(tasks, answers, "eai", hash_seed=None)
    verdicts = {r["id"]: (r["eai"]["executable"], r["eai"]["error_type"]) for r in run["records"]}
    assert verdicts == {
        "394_2": (False, "hallucination error"),
        "1035_1": (False, "missing_step"),
        "563_1": (False, "parameter error"),
        "211_1": (False, "parsing error"),
    }
    assert run["eai"]["success_rate"] == 0.0 and run["eai"]["missing_step"] == 0.25
    touch = next(r for r in run["records"] if r["id"] == "1035_1")
    assert touch["e2wm"]["executed"] and not touch["e2wm"]["executable"] and "close" in touch["e2wm"]["reason"]
    assert touch["eai"]["error_action"] == "[TOUCH] <cat> (1000)"
    assert run["disagreements"]["count"] == 0


def test_the_evaluator_hash_seed_keeps_two_action_goals_in_their_listed_order(eai):
    """EAI orders action goals through set(): its worker processes run with EAI_HASH_SEED, under which
    every two-action goal of the benchmark keeps the order it is listed in (the order e2wm checks)."""
    import subprocess
    import sys

    from e2wm.evaluation.eai_evaluator import EAI_HASH_SEED

    goals = sorted(
        {tuple(dict.fromkeys(t.goal["actions"])) for t in eai.load_eai_tasks() if len(t.goal["actions"]) > 1}
    )
    assert len(goals) == 2
    code = f"import json; print(json.dumps([list(set(g)) for g in {goals!r}]))"
    env = {"PYTHONHASHSEED": str(EAI_HASH_SEED), "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert [tuple(g) for g in json.loads(out.stdout)] == goals


def test_an_answer_that_crashes_eai_is_recorded_and_the_others_still_scored(eai):
    tasks = eai.load_eai_tasks(ids=["394_2", "511_1"])
    answers = ['{"FIND": ["light", 245], "LOOKAT_SHORT": ["light", 245]}', eai.gold_answer(tasks[1], "eai")]
    run = eai.score_answers(tasks, answers, "eai", execute_gold_matches=True, hash_seed=None)
    crashed, fine = run["records"]
    assert crashed["eai"]["crash"].startswith("TypeError") and not crashed["eai"]["executable"]
    assert fine["eai"]["crash"] is None and fine["eai"]["success"]
    assert run["eai"]["crashes"] == 1 and run["eai_summary"] is None  # EAI never totalled the set


def test_an_e2wm_plan_is_grounded_to_the_task_objects_and_written_as_eai_json(eai):
    (task,) = eai.load_eai_tasks(ids=["394_2"])
    converted = eai.e2wm_to_eai(task, "Find light. Switch on light.")
    assert converted.answer == '{"FIND": ["light", 245], "SWITCHON": ["light", 245]}' and converted.error is None
    assert converted.lines == ("[FIND] <light> (245)", "[SWITCHON] <light> (245)")
    unparsed = eai.e2wm_to_eai(task, "Find light. Dance wildly.")
    assert unparsed.error == "cannot parse 'Dance wildly.'" and unparsed.answer == "Find light. Dance wildly."
    elsewhere = eai.e2wm_to_eai(task, "Walk to bedroom. Find unicorn.")  # not task objects: EAI refuses them
    assert elsewhere.lines[0] == "[WALK] <bedroom> (67)" and elsewhere.lines[1] == "[FIND] <unicorn> (None)"
    assert '"FIND": ["unicorn", null]' in elsewhere.answer
    prompt = eai.e2wm_prompt(task, shots=2)
    assert prompt.count("Q: How to ") == 3 and prompt.endswith(
        "Q: How to turn on light? Given items include light. The light is off.\nA:"
    )


def test_the_suite_runs_both_modes_and_marks_seen_activities(eai, corpus, tmp_path):
    from e2wm.evaluation import suite
    from e2wm.evaluation.tasks import tasks_from_corpus
    from tests.tiny import tiny_llama, tiny_tokenizer

    folder, _ = corpus  # generated homes: none of EAI's 26 activities is trained on
    tasks = tasks_from_corpus(str(folder), ["eai_action_sequencing", "eai_action_sequencing_e2wm"], limit=2)
    assert [(t.name, t.kind, t.settings["mode"]) for t in tasks] == [
        ("eai_action_sequencing", "eai_action_sequencing", "eai"),
        ("eai_action_sequencing_e2wm", "eai_action_sequencing", "e2wm"),
    ]
    assert tasks[0].examples[0]["prompt"] == eai.load_eai_tasks(1)[0].prompt
    for task in tasks:
        task.settings["max_new_tokens"] = 8  # a tiny random model: a few tokens of noise are enough
    tok = tiny_tokenizer()
    results = suite.evaluate_model(tiny_llama(tok, seed=3), tok, tasks, tmp_path, "base", progress=False)
    for task in tasks:
        summary = results["tasks"][task.name]
        assert summary["metric"] == "eai_success_rate" and summary["n"] == 1 and summary["value"] == 0.0
        assert summary["extra"]["n_unseen_activities"] == 1.0 and summary["extra"]["n_seen_activities"] == 0.0
        saved = json.loads((tmp_path / "base" / f"{task.name}.json").read_text())
        records = saved["predictions"]
        assert [r["id"] for r in records] == [t.id for t in eai.load_eai_tasks(2)]
        assert all(r["activity_seen"] is False and r["program_in_training"] is False for r in records)
        assert {"prediction", "eai_answer", "eai", "e2wm", "disagreement"} <= set(records[0])


def test_seen_activities_come_from_the_corpus_record(eai, tmp_path):
    record = {"training_activities": ["Watch TV"], "training_programs": ["file2_1"]}
    (tmp_path / "e2wm_corpus.json").write_text(json.dumps(record))
    assert eai.seen_activities(tmp_path) == {"Watch TV"} and eai.training_programs(tmp_path) == {"file2_1"}
    (tmp_path / "e2wm_corpus.json").write_text(json.dumps({"task_config": {}}))
    with pytest.raises(ValueError, match="rebuild the corpus"):
        eai.seen_activities(tmp_path)


def test_a_missing_evaluator_says_how_to_install_it(monkeypatch):
    import importlib.util

    from e2wm.evaluation.eai_evaluator import EAIUnavailableError, eai_package_dir

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EAIUnavailableError, match=r"pip install --no-deps eai-eval==1\.0\.5"):
        eai_package_dir()
