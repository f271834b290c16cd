"""The report: base vs adapters at a glance (a table, the relative change, plots), and model-index
results for the adapters' model cards.

``write_report(OUT, {"base": results, "lora": results, "ewc_lora": results})`` writes
``OUT/results.json``, ``OUT/report.md``, ``OUT/tasks.png`` (per-task bars) and ``OUT/perplexity.png``
(perplexity retention). Higher is better for every task metric; for perplexity lower is better, and
the report shows how far each adapter moved from the base.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from e2wm.utils import atomic_write_text

__all__ = ["card_eval_results", "update_model_card", "write_report"]

_PRETTY = {
    "accuracy_calibrated": "accuracy (calibrated)",
    "accuracy_normalised": "accuracy (length-normalised)",
    "rouge_l": "Rouge-L",
    "path_score": "path score",
    "exact_match": "exact match",
    "perplexity": "perplexity e^NLL (lower is better)",
}


def _relative(value: float, base: float) -> str:
    if base == 0:
        return "n/a"
    return f"{(value - base) / abs(base) * 100:+.1f}%"


def write_report(
    out: str | Path, results: dict[str, dict[str, Any]], title: str = "e2wm evaluation", notes: str = ""
) -> Path:
    """Write the combined results, the markdown report and the plots; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(results)
    base = labels[0]
    atomic_write_text(out / "results.json", json.dumps({"labels": results}, indent=1))
    tasks = [t for t in results[base]["tasks"] if t != "perplexity"]
    lines = [f"# {title}", ""]
    if notes:
        lines += [notes, ""]
    header = ["task", "metric", "n", *labels] + [f"{label} vs {base}" for label in labels[1:]]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in tasks:
        row = results[base]["tasks"][task]
        values = [results[label]["tasks"].get(task, {}).get("value") for label in labels]
        cells = [task, _PRETTY.get(row["metric"], row["metric"]), str(row["n"])]
        cells += [f"{v:.3f}" if v is not None else "—" for v in values]
        cells += [_relative(v, values[0]) if v is not None and values[0] is not None else "—" for v in values[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    if tasks:
        means = [sum(results[label]["tasks"][t]["value"] for t in tasks) / len(tasks) for label in labels]
        lines.append(
            "| **mean of tasks** | | | "
            + " | ".join(f"**{m:.3f}**" for m in means)
            + " | "
            + " | ".join(_relative(m, means[0]) for m in means[1:])
            + " |"
        )
    extras = [(t, k) for t in tasks for k in results[base]["tasks"][t].get("extra", {}) if k.startswith("plan_")]
    if extras:
        lines += ["", "Plans executed in the world (fraction of generated plans):", ""]
        lines += ["| task | measure | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
        for task, key in extras:
            if key == "plans_executed":
                continue
            cells = [f"{results[label]['tasks'][task].get('extra', {}).get(key, float('nan')):.3f}" for label in labels]
            lines.append(f"| {task} | {key.replace('plan_', '')} | " + " | ".join(cells) + " |")
    if all("perplexity" in results[label]["tasks"] for label in labels):
        lines += ["", "Perplexity on held-out general text (token-weighted; lower is better):", ""]
        lines += ["| model | e^NLL | 2^NLL (as E2WM reported) | change vs base |", "|---|---|---|---|"]
        base_ppl = results[base]["tasks"]["perplexity"]["extra"]["perplexity_e"]
        for label in labels:
            extra = results[label]["tasks"]["perplexity"]["extra"]
            lines.append(
                f"| {label} | {extra['perplexity_e']:.3f} | {extra['perplexity_2']:.3f} | {_relative(extra['perplexity_e'], base_ppl)} |"
            )
    lines += ["", "![per-task results](tasks.png)", ""]
    if all("perplexity" in results[label]["tasks"] for label in labels):
        lines += ["![perplexity retention](perplexity.png)", ""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines))
    _plots(out, results, tasks)
    return report


def _plots(out: Path, results: dict[str, dict[str, Any]], tasks: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    colours = ["#9e9e9e", "#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    if tasks:
        fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(tasks) + 2), 4))
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            values = [results[label]["tasks"].get(t, {}).get("value", 0.0) for t in tasks]
            ax.bar(
                [x + i * width for x in range(len(tasks))], values, width, label=label, color=colours[i % len(colours)]
            )
        ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(tasks))])
        ax.set_xticklabels([t.replace("_", "\n", 2) for t in tasks], fontsize=7)
        ax.set_ylabel("score (higher is better)")
        ax.set_ylim(0, 1)
        ax.set_title("Embodied tasks")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "tasks.png", dpi=120)
        plt.close(fig)
    if all("perplexity" in results[label]["tasks"] for label in labels):
        values = [results[label]["tasks"]["perplexity"]["extra"]["perplexity_e"] for label in labels]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(labels, values, color=[colours[i % len(colours)] for i in range(len(labels))])
        for i, value in enumerate(values):
            ax.text(
                i,
                value,
                f"{value:.2f}\n({(value - values[0]) / values[0] * 100:+.1f}%)",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylabel("perplexity e^NLL (lower is better)")
        ax.set_title("General text: perplexity retention")
        ax.set_ylim(0, max(values) * 1.25)
        fig.tight_layout()
        fig.savefig(out / "perplexity.png", dpi=120)
        plt.close(fig)


def card_eval_results(results: dict[str, Any], dataset_id: str, dataset_name: str = "e2wm experiences") -> list[Any]:
    """``huggingface_hub.EvalResult`` entries (model-index) for one label's results."""
    from huggingface_hub import EvalResult

    entries = []
    for task, result in results["tasks"].items():
        metric = result["metric"]
        entries.append(
            EvalResult(
                task_type="text-generation",
                dataset_type=dataset_id,
                dataset_name=dataset_name,
                dataset_config=None if task == "perplexity" else task,
                metric_type=metric,
                metric_name=_PRETTY.get(metric, metric),
                metric_value=round(float(result["value"]), 4),
                task_name=task,
            )
        )
    return entries


def update_model_card(folder: str | Path, results: dict[str, Any], dataset_id: str, model_name: str) -> None:
    """Add the results to the model card (README.md) of an adapter folder as ``model-index`` entries."""
    from huggingface_hub import ModelCard, ModelCardData

    path = Path(folder) / "README.md"
    card = ModelCard(path.read_text(encoding="utf-8")) if path.exists() else ModelCard("---\n---\n")
    data = card.data if isinstance(card.data, ModelCardData) else ModelCardData(**card.data.to_dict())
    data.model_name = data.model_name or model_name
    data.eval_results = card_eval_results(results, dataset_id)
    card.data = data
    atomic_write_text(path, str(card))
