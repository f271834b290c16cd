"""The evaluation suite resumes per task but never reuses a stale result; the report and the model card
show every score with its n and interval, and differences paired against the base."""

from __future__ import annotations

import json

import pytest

import e2wm.evaluation.suite as suite
from e2wm.evaluation.metrics import rouge_l, rouge_l_scores
from e2wm.evaluation.report import ReportError, update_model_card, write_report
from e2wm.evaluation.tasks import tasks_from_files
from tests.tiny import sample_documents, tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tok = tiny_tokenizer()
    return tiny_llama(tok, seed=4), tok


def task_files(tmp_path, questions=5):
    mc = tmp_path / "counting_qa.json"
    mc.write_text(
        "\n".join(
            json.dumps(
                {
                    "input": f"Alice puts {k} cups on the table. How many?\nAnswer:",
                    "answer": str(k % 5),
                    "answer_list": ["0", "1", "2", "3", "4"],
                }
            )
            for k in range(questions)
        )
    )
    gen = tmp_path / "plan_generation_vanilla_seen.json"
    gen.write_text(
        "\n".join(
            json.dumps({"input": f"Q: How to drink {i}?\nA:", "ref": "Walk to kitchen. Grab cup."}) for i in range(3)
        )
    )
    return [mc, gen]


def test_evaluation_stores_per_example_scores_and_resumes(model_and_tokenizer, tmp_path, monkeypatch):
    model, tok = model_and_tokenizer
    tasks = tasks_from_files(task_files(tmp_path))
    docs = sample_documents(5, seed=1)
    info = {"model": "tiny", "model_weights": "w1", "adapter": None, "adapter_weights": None}
    run = {"perplexity_documents": docs, "progress": False, "max_new_tokens": 4, "info": info}
    first = suite.evaluate_model(model, tok, tasks, tmp_path / "out", "base", **run)
    assert set(first["tasks"]) == {"counting_qa", "plan_generation_vanilla_seen", "perplexity"}
    counting = first["tasks"]["counting_qa"]
    assert counting["n"] == 5 and counting["per_example"]["id"] == [f"counting_qa-{i}" for i in range(1, 6)]
    assert set(counting["per_example"]["score"]) <= {0.0, 1.0}
    assert counting["value"] == pytest.approx(sum(counting["per_example"]["score"]) / 5)
    plan = first["tasks"]["plan_generation_vanilla_seen"]
    assert len(plan["per_example"]["score"]) == 3 and plan["value"] == pytest.approx(
        sum(plan["per_example"]["score"]) / 3
    )
    ppl = first["tasks"]["perplexity"]
    assert len(ppl["per_document"]["nll"]) == 5 and sum(ppl["per_document"]["tokens"]) == ppl["settings"]["tokens"]
    assert ppl["extra"]["perplexity_2"] < ppl["extra"]["perplexity_e"]
    saved = json.loads((tmp_path / "out" / "base" / "counting_qa.json").read_text())
    assert len(saved["predictions"]) == 5 and saved["provenance"]["model_weights"] == "w1"

    calls = []
    original = suite.run_task
    monkeypatch.setattr(suite, "run_task", lambda *a, **k: calls.append(a[2].name) or original(*a, **k))
    (tmp_path / "out" / "base" / "plan_generation_vanilla_seen.json").unlink()  # as if killed during this task
    started = []
    second = suite.evaluate_model(model, tok, tasks, tmp_path / "out", "base", on_task=started.append, **run)
    assert calls == ["plan_generation_vanilla_seen"], "finished tasks are not run again"
    assert started == ["plan_generation_vanilla_seen"], "the caller hears of the tasks that run"
    assert second["tasks"]["counting_qa"] == first["tasks"]["counting_qa"]


def test_a_result_of_other_settings_is_recomputed_not_reused(model_and_tokenizer, tmp_path, monkeypatch, caplog):
    """Issue 14: a task counted as done when its file existed, so another model, adapter or cap written into
    the same folder returned the old numbers."""
    model, tok = model_and_tokenizer
    files = task_files(tmp_path)
    info = {"model": "tiny", "model_weights": "w1", "adapter": "a", "adapter_weights": "sha-1"}
    run = {"progress": False, "max_new_tokens": 2}
    suite.evaluate_model(model, tok, tasks_from_files(files), tmp_path / "out", "x", info=info, **run)
    calls = []
    original = suite.run_task
    monkeypatch.setattr(suite, "run_task", lambda *a, **k: calls.append(a[2].name) or original(*a, **k))

    suite.evaluate_model(model, tok, tasks_from_files(files), tmp_path / "out", "x", info=info, **run)
    assert calls == [], "the same settings reuse every result"
    retrained = {**info, "adapter_weights": "sha-2"}  # the adapter folder was trained again
    with caplog.at_level("WARNING", logger="e2wm.evaluation.suite"):
        suite.evaluate_model(model, tok, tasks_from_files(files), tmp_path / "out", "x", info=retrained, **run)
    assert calls == ["counting_qa", "plan_generation_vanilla_seen"]
    assert "adapter_weights differ" in caplog.text and "recomputing" in caplog.text
    calls.clear()
    fewer = tasks_from_files(files, mc_limit=3)  # another cap: other examples
    suite.evaluate_model(model, tok, fewer, tmp_path / "out", "x", info=retrained, **run)
    assert calls == ["counting_qa"]
    calls.clear()
    suite.evaluate_model(model, tok, fewer, tmp_path / "out", "x", info=retrained, **{**run, "max_new_tokens": 3})
    assert calls == ["plan_generation_vanilla_seen"], "generation settings count for generation tasks only"
    stored = json.loads((tmp_path / "out" / "x" / "counting_qa.json").read_text())
    assert stored["n"] == 3 and stored["provenance"]["adapter_weights"] == "sha-2"

    (tmp_path / "out" / "x" / "counting_qa.json").write_text(json.dumps({**stored, "provenance": None}))
    calls.clear()
    suite.evaluate_model(model, tok, fewer, tmp_path / "out", "x", info=retrained, **{**run, "max_new_tokens": 3})
    assert calls == ["counting_qa"], "a result without its settings (an older e2wm) is recomputed"


def test_caps_apply_to_their_kind_only(tmp_path):
    tasks = {t.name: t for t in tasks_from_files(task_files(tmp_path, questions=7), limit=2)}
    assert len(tasks["counting_qa"].examples) == 7, "--limit caps generation tasks only"
    assert len(tasks["plan_generation_vanilla_seen"].examples) == 2
    assert tasks["plan_generation_vanilla_seen"].settings == {"cap": 2, "available": 3, "shots": None, "headline": True}
    tasks = {t.name: t for t in tasks_from_files(task_files(tmp_path, questions=7), mc_limit=4)}
    assert len(tasks["counting_qa"].examples) == 4 and len(tasks["plan_generation_vanilla_seen"].examples) == 3


def test_rouge_l_per_example_scores_average_to_the_metric():
    predictions = ["Walk to kitchen. Grab cup.", "walk to kitchen grab the cup", "sofa"]
    references = ["Walk to kitchen. Grab cup.", "walk to kitchen grab a cup", "kitchen"]
    scores = rouge_l_scores(predictions, references)
    assert scores == pytest.approx([1.0, 5 / 6, 0.0])
    assert sum(scores) / 3 == pytest.approx(rouge_l(predictions, references))


def fake_results(correct, rouge, ppl_nll, shots=2, ids=None):
    """One label's results: counting (0/1 per question), plans (Rouge-L per plan), perplexity per document."""
    ids = ids or [f"c{i}" for i in range(len(correct))]
    plan_ids = [f"p{i}" for i in range(len(rouge))]
    mc = {"kind": "multiple_choice", "cap": None, "available": len(correct), "headline": True, "shots": shots}
    gen = {"kind": "generation", "cap": len(rouge), "available": 50, "headline": True, "shots": shots}
    return {
        "label": "x",
        "tasks": {
            "counting_qa": {
                "metric": "accuracy_normalised", "value": sum(correct) / len(correct), "n": len(correct),
                "settings": {**mc, "config": "counting_qa"}, "extra": {},
                "per_example": {"id": ids, "score": correct},
            },
            "plan_generation_vanilla_seen": {
                "metric": "rouge_l", "value": sum(rouge) / len(rouge), "n": len(rouge),
                "settings": {**gen, "config": "plan_generation_vanilla_seen"},
                "extra": {"plan_executable": 0.5, "plan_reached": 0.0, "plans_executed": 4.0},
                "per_example": {"id": plan_ids, "score": rouge, "plan_executable": [1.0, 0.0, 1.0, 0.0, None, None],
                                "plan_reached": [0.0, 0.0, 0.0, 0.0, None, None]},
            },
            "counting_qa_zero_shot": {
                "metric": "accuracy_normalised", "value": 0.5, "n": 4,
                "settings": {**mc, "available": 4, "config": "counting_qa", "shots": 0, "headline": False},
                "extra": {}, "per_example": {"id": ["c0", "c1", "c2", "c3"], "score": [1.0, 0.0, 1.0, 0.0]},
            },
            "perplexity": {
                "metric": "perplexity", "value": 7.0, "n": 4, "settings": {"tokens": 40},
                "extra": {"nll": 2.0, "perplexity_e": 7.0, "perplexity_2": 4.0},
                "per_document": {"nll": ppl_nll, "tokens": [10, 10, 10, 10]},
            },
        },
    }  # fmt: skip


BASE = fake_results([0.0] * 30 + [1.0] * 10, [0.1, 0.2, 0.1, 0.2, 0.1, 0.2], [20.0, 21.0, 19.0, 20.0])
LORA = fake_results([0.0] * 5 + [1.0] * 35, [0.6, 0.7, 0.6, 0.7, 0.6, 0.7], [26.0, 27.0, 25.0, 26.0])
EWC = fake_results([0.0] * 29 + [1.0] * 11, [0.1, 0.2, 0.1, 0.2, 0.1, 0.25], [20.1, 21.0, 19.1, 20.0])


def test_report_shows_intervals_paired_differences_and_the_aggregate(tmp_path):
    report = write_report(tmp_path, {"base": BASE, "lora": LORA, "ewc_lora": EWC}, resamples=500)
    text = report.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| counting_qa |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:4] == ["counting_qa", "accuracy (length-normalised)", "2", "40"]
    assert cells[4].startswith("0.250 [") and cells[5].startswith("0.875 [")
    assert cells[7].startswith("+0.625 [") and "CI includes 0" not in cells[7], "a large paired gain is not ≈ 0"
    assert cells[8].startswith("+0.025 [") and cells[8].endswith("≈ 0 (CI includes 0)"), "one more right of 40"
    plan = next(line for line in text.splitlines() if line.startswith("| plan_generation_vanilla_seen | Rouge-L"))
    assert "| 6 of 50 |" in plan, "a capped task says so"
    assert "## Zero-shot (no demonstrations)" in text and "| counting_qa_zero_shot |" in text
    assert "## Embodied tasks (headline: few-shot)" in text and "mean of tasks" not in text
    assert "generation tasks at most 6 examples" in text and "multiple-choice tasks use every example" in text
    assert "| plan_generation_vanilla_seen | executable | 4 |" in text, "plans executed: those with a scene"
    ppl = next(line for line in text.splitlines() if line.startswith("| lora | 4 | 40 |"))
    assert "+" in ppl.split("|")[-2] and "CI includes 0" not in ppl, "perplexity up on every document"

    saved = json.loads((tmp_path / "results.json").read_text())
    stats = saved["statistics"]
    assert saved["labels"]["lora"]["tasks"]["counting_qa"]["value"] == 0.875
    aggregate = stats["aggregate"]["headline"]["labels"]
    # normalised change: counting (0.875 − 0.25)/(1 − 0.25) = 0.833, plans (0.65 − 0.15)/0.85 = 0.588
    assert aggregate["lora"]["estimate"] == pytest.approx((0.625 / 0.75 + 0.5 / 0.85) / 2)
    assert aggregate["lora"]["low"] > 0 and aggregate["ewc_lora"]["low"] <= 0 < aggregate["ewc_lora"]["high"]
    assert stats["perplexity"]["base"]["tokens"] == 40 and stats["perplexity"]["lora"]["change"]["low"] > 0
    assert saved["statistics_settings"]["resamples"] == 500
    for name in ("tasks.png", "perplexity.png"):
        assert (tmp_path / name).stat().st_size > 1000
    again = write_report(tmp_path / "again", {"base": BASE, "lora": LORA, "ewc_lora": EWC}, resamples=500)
    assert again.read_text() == text, "seeded: the same report twice"


def test_differences_on_other_examples_are_marked_unpaired(tmp_path):
    other = fake_results([1.0] * 40, [0.1] * 6, [20.0] * 4, ids=[f"d{i}" for i in range(40)])
    text = write_report(tmp_path, {"base": BASE, "other": other}, resamples=200).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| counting_qa |"))
    assert "(unpaired: different examples)" in row
    assert "some task was not evaluated on the same examples" in text


def test_the_report_says_in_what_precision_the_models_ran_and_warns_when_they_differ(tmp_path):
    same = {label: {**r, "dtype": "bfloat16"} for label, r in {"base": BASE, "lora": LORA}.items()}
    assert "Every model evaluated in bfloat16." in write_report(tmp_path / "same", same, resamples=50).read_text()
    mixed = {"base": {**BASE, "dtype": "float32"}, "lora": {**LORA, "dtype": "bfloat16", "quantization": "4bit"}}
    text = write_report(tmp_path / "mixed", mixed, resamples=50).read_text()
    assert "**Models evaluated in different precisions** (base: float32, lora: bfloat16 4bit)" in text
    assert "in different precisions" not in write_report(tmp_path / "none", {"base": BASE}, resamples=50).read_text()


def test_fast_dtype_is_bfloat16_only_where_the_device_computes_it_natively(monkeypatch):
    import e2wm.models as models

    monkeypatch.setattr(models, "native_bfloat16", lambda device: device == "cpu")
    assert models.fast_dtype("fast", "cpu") == "bfloat16"
    assert models.fast_dtype("fast", "cuda:1") == "float32"
    assert models.fast_dtype("float16", "cpu") == "float16"  # an explicit dtype is kept
    monkeypatch.undo()
    assert models.native_bfloat16("meta") is False


def test_results_without_per_example_scores_are_refused(tmp_path):
    old = json.loads(json.dumps(BASE))
    del old["tasks"]["counting_qa"]["per_example"]
    with pytest.raises(ReportError, match=r"base/counting_qa has no per-example scores.*evaluate again"):
        write_report(tmp_path, {"base": old, "lora": LORA})


def test_results_go_into_the_model_card_as_model_index_and_intervals(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# my adapter\n")
    heldout = ("/data/heldout.jsonl", "Python documentation, held-out documents")
    update_model_card(tmp_path, LORA, "e2wm/experiences", "my-adapter", base=BASE, resamples=200)
    update_model_card(tmp_path, LORA, "e2wm/experiences", "my-adapter", base=BASE, resamples=200,  # replaces
                      perplexity_source=heldout)  # fmt: skip
    card = (tmp_path / "README.md").read_text()
    assert "model-index:" in card and "name: my-adapter" in card and "counting_qa" in card and "# my adapter" in card
    assert card.count("## Evaluation (e2wm)") == 1
    assert "| counting_qa | accuracy (length-normalised) | 2 | 40 | 0.875 [" in card and "+0.625 [" in card
    from huggingface_hub import ModelCard

    data = ModelCard(card).data
    assert len(data.eval_results) == 4 and data.license == "apache-2.0"
    values = {r.metric_name: r.metric_value for r in data.eval_results}
    assert values["accuracy (length-normalised), 2-shot"] == 0.875, "model-index holds the measured value only"
    assert values["accuracy (length-normalised), 0-shot"] == 0.5, "zero-shot stays apart from few-shot"
    assert all(isinstance(v, float) for v in values.values())
    datasets = {r.metric_type: (r.dataset_type, r.dataset_name) for r in data.eval_results}
    assert datasets["perplexity"] == heldout, "perplexity names the general text it was measured on, not the corpus"
    assert datasets["accuracy_normalised"][0] == "e2wm/experiences"


def test_a_local_corpus_is_named_by_its_path_in_the_model_index_never_as_a_hub_id(tmp_path):
    from huggingface_hub import ModelCard

    corpus = tmp_path / "runs" / "corpus"
    corpus.mkdir(parents=True)
    update_model_card(tmp_path, LORA, str(corpus), "my-adapter", base=BASE, resamples=200)
    data = ModelCard((tmp_path / "README.md").read_text()).data
    assert {r.dataset_type for r in data.eval_results} == {str(corpus.resolve())}
    assert "perplexity" not in {r.metric_type for r in data.eval_results}  # its text source was not given


def test_eai_records_become_per_example_success_on_the_tasks_eai_scores():
    records = [
        {"id": "27_2", "activity_seen": True, "eai": {"scored": True, "success": True}, "e2wm": {"success": True}},
        {"id": "11_1", "activity_seen": True, "eai": {"scored": False, "success": False}},  # EAI leaves it out
        {"id": "3_1", "activity_seen": False, "eai": {"scored": True, "success": False}, "e2wm": {"success": True}},
    ]
    assert suite._eai_per_example({"predictions": records}) == {
        "id": ["27_2", "3_1"],
        "score": [1.0, 0.0],
        "seen_activities": [1.0, None],
        "unseen_activities": [None, 0.0],
        "e2wm_success": [1.0, 1.0],
    }


def _eai_results(successes, seen):
    ids = [f"{i}_1" for i in range(len(successes))]
    per = suite._eai_per_example({"predictions": [
        {"id": i, "activity_seen": flag, "eai": {"scored": True, "success": bool(s)}, "e2wm": {"success": bool(s)}}
        for i, s, flag in zip(ids, successes, seen, strict=True)
    ]})  # fmt: skip
    task = {"metric": "eai_success_rate", "value": sum(successes) / len(successes), "n": len(successes),
            "settings": {"kind": "eai_action_sequencing"}, "extra": {"verdicts_differ": 2.0}, "per_example": per}  # fmt: skip
    return {"label": "x", "tasks": {"eai_action_sequencing_e2wm": task}}


def test_the_report_separates_eai_tasks_of_seen_and_unseen_activities(tmp_path):
    seen = [True] * 12 + [False] * 8
    base = _eai_results([0] * 20, seen)
    tuned = _eai_results([1] * 12 + [0] * 8, seen)  # gains on the activities it trained on, none on the others
    text = write_report(tmp_path, {"base": base, "lora": tuned}, resamples=200).read_text()
    assert "## EAI action sequencing" in text
    seen_row = next(line for line in text.splitlines() if "activities seen in training" in line)
    unseen_row = next(line for line in text.splitlines() if "activities not seen in training" in line)
    assert "| 12 |" in seen_row and "1.000 [1.000, 1.000]" in seen_row and "+1.000" in seen_row
    assert "| 8 |" in unseen_row and "≈ 0 (CI includes 0)" in unseen_row
    assert "verdicts differ (count) |  | 2 | 2 |" in text
