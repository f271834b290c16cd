"""The evaluation suite resumes per task; the report and the model card show the results."""

from __future__ import annotations

import json

import pytest

import e2wm.evaluation.suite as suite
from e2wm.evaluation.report import update_model_card, write_report
from e2wm.evaluation.tasks import tasks_from_files
from tests.tiny import sample_documents, tiny_llama, tiny_tokenizer


@pytest.fixture(scope="module")
def model_and_tokenizer():
    tok = tiny_tokenizer()
    return tiny_llama(tok, seed=4), tok


def task_files(tmp_path):
    mc = tmp_path / "counting_qa.json"
    mc.write_text(
        "\n".join(
            json.dumps(
                {
                    "input": f"Alice puts {k} cups on the table. How many?\nAnswer:",
                    "answer": str(k),
                    "answer_list": ["0", "1", "2", "3", "4"],
                }
            )
            for k in range(5)
        )
    )
    gen = tmp_path / "plan_generation_vanilla_seen.json"
    gen.write_text(
        "\n".join(json.dumps({"input": "Q: How to drink?\nA:", "ref": "Walk to kitchen. Grab cup."}) for _ in range(3))
    )
    return [mc, gen]


def test_evaluation_writes_each_task_and_resumes(model_and_tokenizer, tmp_path, monkeypatch):
    model, tok = model_and_tokenizer
    tasks = tasks_from_files(task_files(tmp_path))
    docs = sample_documents(5, seed=1)
    first = suite.evaluate_model(model, tok, tasks, tmp_path / "out", "base", perplexity_documents=docs, progress=False)
    assert set(first["tasks"]) == {"counting_qa", "plan_generation_vanilla_seen", "perplexity"}
    assert first["tasks"]["counting_qa"]["n"] == 5 and 0 <= first["tasks"]["counting_qa"]["value"] <= 1
    assert first["tasks"]["perplexity"]["extra"]["perplexity_2"] < first["tasks"]["perplexity"]["extra"]["perplexity_e"]
    saved = json.loads((tmp_path / "out" / "base" / "counting_qa.json").read_text())
    assert len(saved["predictions"]) == 5
    calls = []
    original = suite.run_task
    monkeypatch.setattr(suite, "run_task", lambda *a, **k: calls.append(a[2].name) or original(*a, **k))
    (tmp_path / "out" / "base" / "plan_generation_vanilla_seen.json").unlink()  # as if killed during this task
    started = []
    second = suite.evaluate_model(
        model, tok, tasks, tmp_path / "out", "base", perplexity_documents=docs, progress=False, on_task=started.append
    )
    assert calls == ["plan_generation_vanilla_seen"], "finished tasks are not run again"
    assert started == ["plan_generation_vanilla_seen"], "the caller hears of the tasks that run"
    assert second["tasks"]["counting_qa"] == first["tasks"]["counting_qa"]


def fake_results(scale):
    return {
        "label": "x",
        "tasks": {
            "counting_qa": {"metric": "accuracy_normalised", "value": 0.2 * scale, "n": 10, "settings": {}, "extra": {}},
            "plan_generation_vanilla_seen": {
                "metric": "rouge_l", "value": 0.3 * scale, "n": 10, "settings": {},
                "extra": {"plan_executable": 0.1 * scale, "plan_reached": 0.05 * scale, "plans_executed": 10.0},
            },
            "perplexity": {"metric": "perplexity", "value": 7.0 + scale, "n": 5, "settings": {},
                           "extra": {"nll": 2.0, "perplexity_e": 7.0 + scale, "perplexity_2": 4.0 + scale}},
        },
    }  # fmt: skip


def test_report_table_plots_and_relative_change(tmp_path):
    results = {"base": fake_results(1.0), "lora": fake_results(2.0), "ewc_lora": fake_results(1.5)}
    report = write_report(tmp_path, results)
    text = report.read_text()
    assert "| counting_qa | accuracy (length-normalised) | 10 | 0.200 | 0.400 | 0.300 | +100.0% | +50.0% |" in text
    assert "| ewc_lora | 8.500 | 5.500 | +6.2% |" in text
    assert "plan_reached" not in text and "| plan_generation_vanilla_seen | reached |" in text
    for name in ("tasks.png", "perplexity.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 1000 or name == "results.json"
    assert json.loads((tmp_path / "results.json").read_text())["labels"]["lora"]["tasks"]["counting_qa"]["value"] == 0.4


def test_results_go_into_the_model_card_as_model_index(tmp_path):
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# my adapter\n")
    update_model_card(tmp_path, fake_results(1.0), "e2wm/experiences", "my-adapter")
    card = (tmp_path / "README.md").read_text()
    assert "model-index:" in card and "name: my-adapter" in card and "counting_qa" in card and "# my adapter" in card
    from huggingface_hub import ModelCard

    data = ModelCard(card).data
    assert len(data.eval_results) == 3 and data.license == "apache-2.0"
