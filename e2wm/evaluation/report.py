"""The report: base vs adapters with 95% intervals, paired differences, one defined aggregate, plots, and
model-index results for the adapters' model cards.

``write_report(OUT, {"base": results, "lora": results, "ewc_lora": results})`` (the first label is the
base) writes ``OUT/results.json`` (every label's results and the intervals), ``OUT/report.md``,
``OUT/tasks.png`` (per-task scores with error bars) and ``OUT/perplexity.png``. The statistics are those
of :mod:`e2wm.evaluation.stats`:

* every score with its n and a 95% percentile-bootstrap interval over its examples;
* every difference against the base paired on the same examples (marked "≈ 0 (CI includes 0)" when its
  interval contains 0; unpaired, and said so, when the examples differ);
* no raw average of unlike metrics: the aggregate is the mean over the headline (few-shot) tasks of the
  normalised change against the base, with a joint interval;
* perplexity with its interval, the documents and held-out tokens, and its relative change against the
  base with a paired interval.

The headline is the few-shot evaluation (demonstrations from training data); the zero-shot evaluation
is a second table. Caps on the number of examples are stated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from e2wm.evaluation.stats import (
    CONFIDENCE,
    RESAMPLES,
    Interval,
    aggregate_interval,
    difference_interval,
    mean_interval,
    perplexity_change_interval,
    perplexity_interval,
)
from e2wm.utils import atomic_write_text

__all__ = [
    "ReportError",
    "card_eval_results",
    "report_statistics",
    "summary_lines",
    "update_model_card",
    "write_report",
]

_PRETTY = {
    "accuracy_calibrated": "accuracy (calibrated)",
    "accuracy_normalised": "accuracy (length-normalised)",
    "rouge_l": "Rouge-L",
    "path_score": "path score",
    "exact_match": "exact match",
    "eai_success_rate": "EAI success rate",
    "perplexity": "perplexity e^NLL (lower is better)",
}
_PLAN_MEASURES = (("plan_executable", "executable"), ("plan_reached", "reaches the goal"))
_EAI_MEASURES = (
    ("score", "EAI success, all tasks"),
    ("seen_activities", "EAI success, activities seen in training"),
    ("unseen_activities", "EAI success, activities not seen in training"),
    ("e2wm_success", "the same plans in e2wm's world (EAI's goal check)"),
)


class ReportError(ValueError):
    """Results cannot be reported with intervals (the message names the label, the task and the fix)."""


# ---------------------------------------------------------------------------------------------- statistics
def _per_example(results: Mapping[str, Any], label: str, task: str) -> dict[str, list[Any]]:
    per = results[label]["tasks"][task].get("per_example")
    if not per or "score" not in per:
        raise ReportError(
            f"{label}/{task} has no per-example scores (written by an e2wm that did not store them): "
            "evaluate again with `e2wm eval` (it recomputes such results)"
        )
    return per


def _aligned(
    base: Mapping[str, list[Any]], other: Mapping[str, list[Any]], key: str
) -> tuple[list[float], list[float]] | None:
    """Both models' values of ``key`` on the same examples, in the base's order (None if the examples differ);
    examples where either has no value (a plan without a scene) are left out."""
    if sorted(map(str, base["id"])) != sorted(map(str, other["id"])) or len(set(map(str, base["id"]))) != len(
        base["id"]
    ):
        return None
    theirs = dict(zip(map(str, other["id"]), other[key], strict=True))
    pairs = [(v, theirs[str(i)]) for i, v in zip(base["id"], base[key], strict=True)]
    pairs = [(b, o) for b, o in pairs if b is not None and o is not None]
    return [o for _, o in pairs], [b for b, _ in pairs]


def _values(per: Mapping[str, list[Any]], key: str) -> list[float]:
    return [v for v in per.get(key, []) if v is not None]


def _measure(
    results: Mapping[str, Any], labels: list[str], task: str, key: str, stream: str, resamples: int, seed: int
) -> dict[str, dict[str, Any]] | None:
    """Score and difference intervals of every label on one measure of one task."""
    base = labels[0]
    base_per = _per_example(results, base, task)
    if not _values(base_per, key):
        return None
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        if task not in results[label]["tasks"]:
            continue
        per = _per_example(results, label, task)
        values = _values(per, key)
        if not values:
            continue
        entry: dict[str, Any] = {"score": mean_interval(values, stream, resamples, seed).to_dict(), "difference": None}
        if label != base:
            pair = _aligned(base_per, per, key)
            if pair is not None and pair[0]:
                diff = difference_interval(pair[0], pair[1], stream, resamples, seed)
            else:
                diff = difference_interval(values, _values(base_per, key), stream, resamples, seed, paired=False)
            entry["difference"] = diff.to_dict()
        out[label] = entry
    return out


def report_statistics(
    results: Mapping[str, Mapping[str, Any]], resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """Every interval the report shows (see the module docstring), as plain data."""
    labels = list(results)
    base = labels[0]
    tasks = [t for t in results[base]["tasks"] if t != "perplexity"]
    stats: dict[str, Any] = {"tasks": {}, "plans": {}, "eai": {}, "aggregate": {}, "perplexity": {}}
    for task in tasks:
        row = results[base]["tasks"][task]
        settings = row.get("settings", {})
        stats["tasks"][task] = {
            "metric": row["metric"],
            "headline": settings.get("headline", True),
            "shots": settings.get("shots"),
            "cap": settings.get("cap"),
            "available": settings.get("available"),
            "n": row["n"],
            "labels": _measure(results, labels, task, "score", task, resamples, seed) or {},
        }
        for key, _ in _PLAN_MEASURES:
            measured = _measure(results, labels, task, key, f"{task}/{key}", resamples, seed)
            if measured:
                stats["plans"].setdefault(task, {})[key] = measured
        if row["metric"] == "eai_success_rate":
            for key, _ in _EAI_MEASURES:
                measured = _measure(results, labels, task, key, f"{task}/{key}", resamples, seed)
                if measured:
                    stats["eai"].setdefault(task, {})[key] = measured
    for group, headline in (("headline", True), ("zero_shot", False)):
        members = [t for t in tasks if stats["tasks"][t]["headline"] == headline]
        if not members:
            continue
        stats["aggregate"][group] = {"tasks": members, "labels": {}}
        for label in labels[1:]:
            pairs = {}
            for task in members:
                if task in results[label]["tasks"]:
                    pair = _aligned(_per_example(results, base, task), _per_example(results, label, task), "score")
                    if pair is not None:
                        pairs[task] = pair
            if len(pairs) == len(members):
                interval = aggregate_interval(pairs, resamples, seed)
                stats["aggregate"][group]["labels"][label] = interval.to_dict()
            else:
                stats["aggregate"][group]["labels"][label] = None  # some task was not evaluated on the same examples
    if all("perplexity" in results[label]["tasks"] for label in labels):
        documents = {label: _documents(results, label) for label in labels}
        for label in labels:
            entry: dict[str, Any] = {
                "perplexity": perplexity_interval(documents[label], "perplexity", resamples, seed).to_dict(),
                "documents": len(documents[label]),
                "tokens": int(sum(t for _, t in documents[label])),
                "change": None,
            }
            if label != base and len(documents[label]) == len(documents[base]):
                entry["change"] = perplexity_change_interval(
                    documents[label], documents[base], "perplexity", resamples, seed
                ).to_dict()
            stats["perplexity"][label] = entry
    return stats


def _documents(results: Mapping[str, Any], label: str) -> list[tuple[float, int]]:
    per = results[label]["tasks"]["perplexity"].get("per_document")
    if not per:
        raise ReportError(
            f"{label}/perplexity has no per-document NLL (written by an e2wm that did not store it): "
            "evaluate again with `e2wm eval` (it recomputes such results)"
        )
    return list(zip(per["nll"], per["tokens"], strict=True))


# ---------------------------------------------------------------------------------------------- formatting
def _interval(entry: Mapping[str, Any] | None, digits: int = 3) -> str:
    if entry is None:
        return "—"
    return f"{entry['estimate']:.{digits}f} [{entry['low']:.{digits}f}, {entry['high']:.{digits}f}]"


def _signed(entry: Mapping[str, Any] | None, digits: int = 3, percent: bool = False) -> str:
    if entry is None:
        return "—"
    scale, unit = (100.0, "%") if percent else (1.0, "")
    text = (
        f"{entry['estimate'] * scale:+.{digits}f}{unit} "
        f"[{entry['low'] * scale:+.{digits}f}{unit}, {entry['high'] * scale:+.{digits}f}{unit}]"
    )
    if not entry.get("paired", True):
        text += " (unpaired: different examples)"
    if Interval(**entry).includes(0.0):
        text += " ≈ 0 (CI includes 0)"
    return text


def _n(task_stats: Mapping[str, Any]) -> str:
    cap, available, n = task_stats.get("cap"), task_stats.get("available"), task_stats["n"]
    if cap is not None and available is not None and available > n:
        return f"{n} of {available}"
    return str(n)


def _task_table(stats: Mapping[str, Any], labels: list[str], tasks: list[str]) -> list[str]:
    base = labels[0]
    header = ["task", "metric", "k", "n", *labels] + [f"{label} − {base}" for label in labels[1:]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in tasks:
        entry = stats["tasks"][task]
        shots = entry.get("shots")
        cells = [task, _PRETTY.get(entry["metric"], entry["metric"]), "—" if shots is None else str(shots), _n(entry)]
        per_label = entry["labels"]
        cells += [_interval(per_label.get(label, {}).get("score")) for label in labels]
        cells += [_signed(per_label.get(label, {}).get("difference")) for label in labels[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _aggregate_lines(stats: Mapping[str, Any], labels: list[str], group: str) -> list[str]:
    entry = stats["aggregate"].get(group)
    if not entry or len(labels) < 2:
        return []
    lines = [
        "",
        f"Aggregate over the {len(entry['tasks'])} tasks above: the mean of the normalised change against "
        f"{labels[0]} (0 = no change, +1 = every task at the ceiling, −1 = every task at 0; defined below):",
        "",
        "| " + " | ".join(labels[1:]) + " |",
        "|" + "---|" * (len(labels) - 1),
        "| " + " | ".join(_signed(entry["labels"].get(label)) for label in labels[1:]) + " |",
    ]
    if any(entry["labels"].get(label) is None for label in labels[1:]):
        lines += ["", "— : some task was not evaluated on the same examples as the base, so no paired aggregate."]
    return lines


def _caps(results: Mapping[str, Any], base: str, tasks: list[str]) -> str:
    by_kind: dict[str, set[Any]] = {}
    for task in tasks:
        settings = results[base]["tasks"][task].get("settings", {})
        kind = "multiple-choice" if settings.get("kind") == "multiple_choice" else "generation"
        by_kind.setdefault(kind, set()).add(settings.get("cap"))
    parts = []
    for kind in ("multiple-choice", "generation"):
        caps = by_kind.get(kind)
        if not caps:
            continue
        if caps == {None}:
            parts.append(f"{kind} tasks use every example of their split (no cap)")
        else:
            shown = ", ".join(str(c) for c in sorted(c for c in caps if c is not None))
            parts.append(f"{kind} tasks at most {shown} examples each (the first of the split; 'n of N' when capped)")
    return "Examples: " + "; ".join(parts) + "." if parts else ""


def _precision(results: Mapping[str, Any]) -> str:
    """What dtype (and quantization) each model was evaluated in: one line, a warning when they differ."""
    runs = {
        label: " ".join(str(x) for x in (r.get("dtype"), r.get("quantization")) if x) for label, r in results.items()
    }
    kinds = set(runs.values()) - {""}
    if not kinds:
        return ""
    if len(set(runs.values())) == 1:
        return f"Every model evaluated in {kinds.pop()}."
    shown = ", ".join(f"{label}: {kind or 'unrecorded'}" for label, kind in runs.items())
    return f"**Models evaluated in different precisions** ({shown}): their differences mix precision with training."


def _method(resamples: int, seed: int) -> str:
    return (
        f"Intervals: 95% percentile bootstrap, {resamples} resamples of the examples (seed {seed}); the same "
        "resampled examples for every model, so differences against the base are paired. The aggregate is the "
        "mean over tasks of the normalised change c = (s − b)/(1 − b) if s > b, (s − b)/b if s < b, 0 if equal "
        "(s the model's score, b the base's; Marx & Cummings 2007), bootstrapped over every task's examples "
        "jointly. Perplexity intervals resample documents (token-weighted NLL per resample). "
        "See docs/evaluation.md, 'Statistics'."
    )


def write_report(
    out: str | Path,
    results: dict[str, dict[str, Any]],
    title: str = "e2wm evaluation",
    notes: str = "",
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Path:
    """Write the combined results with their intervals, the markdown report and the plots; returns the
    report's path. ``results``: label -> one label's ``results.json`` (the first label is the base)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = list(results)
    base = labels[0]
    stats = report_statistics(results, resamples, seed)
    settings = {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE, "base": base}
    atomic_write_text(
        out / "results.json",
        json.dumps({"labels": results, "statistics": stats, "statistics_settings": settings}, indent=1),
    )
    tasks = list(stats["tasks"])
    headline = [t for t in tasks if stats["tasks"][t]["headline"]]
    zero_shot = [t for t in tasks if not stats["tasks"][t]["headline"]]
    lines = [f"# {title}", ""]
    if notes:
        lines += [notes, ""]
    if headline:
        few = any(stats["tasks"][t].get("shots") for t in headline)
        lines += [
            "## Embodied tasks" + (" (headline: few-shot)" if few else ""),
            "",
            "Score [95% interval] per model; differences against the base, paired on the same examples. "
            + (
                "Prompts carry k demonstrations from the corpus's training split, the same for every model; "
                "the zero-shot evaluation follows."
                if few
                else ""
            ),
            "",
        ]
        lines += _task_table(stats, labels, headline) + _aggregate_lines(stats, labels, "headline")
    if zero_shot:
        lines += ["", "## Zero-shot (no demonstrations)", ""]
        lines += _task_table(stats, labels, zero_shot) + _aggregate_lines(stats, labels, "zero_shot")
    caps = _caps(results, base, tasks)
    if caps:
        lines += ["", caps]
    precision = _precision(results)
    if precision:
        lines += ["", precision]
    if stats["plans"]:
        lines += [
            "",
            "## Plans executed in the world",
            "",
            "Fraction of generated plans (of those whose scene is known):",
            "",
        ]
        header = ["task", "measure", "n", *labels] + [f"{label} − {base}" for label in labels[1:]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for task, measures in stats["plans"].items():
            for key, name in _PLAN_MEASURES:
                if key not in measures:
                    continue
                entry = measures[key]
                n = entry[base]["score"]["n"]
                cells = [task, name, str(n)] + [_interval(entry.get(label, {}).get("score")) for label in labels]
                cells += [_signed(entry.get(label, {}).get("difference")) for label in labels[1:]]
                lines.append("| " + " | ".join(cells) + " |")
    if stats["eai"]:
        lines += [
            "",
            "## EAI action sequencing (Embodied Agent Interface, scored by EAI's own evaluator)",
            "",
            "Success rate on the tasks EAI scores, split by whether the task's activity had programs in the training "
            "corpus (the EAI programs themselves are held out of it), and the same plans executed in e2wm's world:",
            "",
        ]
        header = ["task", "measure", "n", *labels] + [f"{label} − {base}" for label in labels[1:]]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for task, measures in stats["eai"].items():
            for key, name in _EAI_MEASURES:
                if key not in measures:
                    continue
                entry = measures[key]
                cells = [task, name, str(entry[base]["score"]["n"])]
                cells += [_interval(entry.get(label, {}).get("score")) for label in labels]
                cells += [_signed(entry.get(label, {}).get("difference")) for label in labels[1:]]
                lines.append("| " + " | ".join(cells) + " |")
            differ = [
                str(int(results[label]["tasks"][task].get("extra", {}).get("verdicts_differ", 0)))
                if task in results[label]["tasks"]
                else "—"
                for label in labels
            ]
            cells = [
                task,
                "plans where EAI's and e2wm's verdicts differ (count)",
                "",
                *differ,
                *[""] * (len(labels) - 1),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if stats["perplexity"]:
        lines += [
            "",
            "## Perplexity on held-out general text",
            "",
            "Token-weighted e^NLL (lower is better) [95% interval, documents resampled]; 2^NLL is what E2WM reported.",
            "",
            "| model | documents | tokens | e^NLL | 2^NLL | change vs base |",
            "|---|---|---|---|---|---|",
        ]
        for label in labels:
            entry = stats["perplexity"][label]
            extra = results[label]["tasks"]["perplexity"]["extra"]
            change = "reference" if label == base else _signed(entry["change"], digits=1, percent=True)
            lines.append(
                f"| {label} | {entry['documents']} | {entry['tokens']} | {_interval(entry['perplexity'], 2)} | "
                f"{extra['perplexity_2']:.2f} | {change} |"
            )
    lines += ["", _method(resamples, seed), ""]
    if tasks:
        lines += ["![per-task results](tasks.png)", ""]
    if stats["perplexity"]:
        lines += ["![perplexity retention](perplexity.png)", ""]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines))
    _plots(out, stats, labels, headline, zero_shot)
    return report


def _tick(task: str, n: int) -> str:
    name = task.removesuffix("_zero_shot").replace("_", "\n", 2)
    return f"{name}\nn={n}"


def _plots(out: Path, stats: Mapping[str, Any], labels: list[str], headline: list[str], zero_shot: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = ["#9e9e9e", "#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    panels = [(tasks, name) for tasks, name in ((headline, "few-shot (headline)"), (zero_shot, "zero-shot")) if tasks]
    if panels:
        width_tasks = max(len(tasks) for tasks, _ in panels)
        fig, axes = plt.subplots(
            len(panels), 1, figsize=(max(6, 1.1 * width_tasks + 2), 4 * len(panels)), squeeze=False
        )
        width = 0.8 / len(labels)
        for ax, (tasks, name) in zip(axes[:, 0], panels, strict=True):
            for i, label in enumerate(labels):
                entries = [stats["tasks"][t]["labels"].get(label, {}).get("score") for t in tasks]
                values = [e["estimate"] if e else 0.0 for e in entries]
                errors = [
                    [e["estimate"] - e["low"] if e else 0.0 for e in entries],
                    [e["high"] - e["estimate"] if e else 0.0 for e in entries],
                ]
                ax.bar(
                    [x + i * width for x in range(len(tasks))], values, width, yerr=errors, capsize=3, label=label,
                    color=colours[i % len(colours)],
                )  # fmt: skip
            ax.set_xticks([x + width * (len(labels) - 1) / 2 for x in range(len(tasks))])
            ax.set_xticklabels([_tick(t, stats["tasks"][t]["n"]) for t in tasks], fontsize=7)
            ax.set_ylabel("score (higher is better)")
            ax.set_ylim(0, 1.05)
            ax.set_title(f"Embodied tasks, {name}: score with 95% interval")
            ax.legend()
        fig.tight_layout()
        fig.savefig(out / "tasks.png", dpi=120)
        plt.close(fig)
    if stats["perplexity"]:
        entries = [stats["perplexity"][label]["perplexity"] for label in labels]
        values = [e["estimate"] for e in entries]
        errors = [[e["estimate"] - e["low"] for e in entries], [e["high"] - e["estimate"] for e in entries]]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.bar(labels, values, yerr=errors, capsize=4, color=[colours[i % len(colours)] for i in range(len(labels))])
        for i, label in enumerate(labels):
            change = stats["perplexity"][label]["change"]
            text = f"{values[i]:.2f}" + (f"\n({change['estimate'] * 100:+.1f}%)" if change else "")
            ax.text(i, entries[i]["high"], text, ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("perplexity e^NLL (lower is better)")
        ax.set_title("General text: perplexity with 95% interval")
        ax.set_ylim(0, max(e["high"] for e in entries) * 1.3)
        fig.tight_layout()
        fig.savefig(out / "perplexity.png", dpi=120)
        plt.close(fig)


def summary_lines(summary: Mapping[str, Any], resamples: int = RESAMPLES, seed: int = 0) -> list[str]:
    """One line per result of one label (``results.json``'s content), each score with its 95% interval and n:
    what ``e2wm eval`` prints."""
    stats = report_statistics({summary.get("label", "model"): summary}, resamples, seed)
    lines = []
    for task, entry in stats["tasks"].items():
        mine: dict[str, Any] = next(iter(entry["labels"].values()), {})
        score = mine.get("score")
        shots = "" if entry.get("shots") is None else f", {entry['shots']}-shot"
        lines.append(f"  {task:38s} {entry['metric']:20s} {_interval(score, 4):28s} (n={_n(entry)}{shots})")
    for entry in stats["perplexity"].values():
        ppl = _interval(entry["perplexity"], 3)
        lines.append(
            f"  {'perplexity':38s} {'e^NLL':20s} {ppl:28s} (n={entry['documents']} documents, {entry['tokens']} tokens)"
        )
    return lines


# ---------------------------------------------------------------------------------------------- model cards
def _dataset_reference(source: str) -> str:
    """What a model-index ``dataset.type`` says about a dataset: its Hub id, or the absolute path of a local one
    (never a string that could pass for a Hub id it is not)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(source).expanduser()
    if not path.exists() and source.count("/") == 1:
        try:
            validate_repo_id(source)
            return source
        except HFValidationError:
            pass
    return str(path.resolve())


def card_eval_results(
    results: dict[str, Any],
    dataset_id: str,
    dataset_name: str = "e2wm experiences",
    perplexity_source: tuple[str, str] | None = None,
) -> list[Any]:
    """``huggingface_hub.EvalResult`` entries (model-index) for one label's results: the measured values
    only (the intervals go in the card's text). ``dataset_id``: the corpus (a Hub id, or a local folder, named
    by its absolute path); ``perplexity_source``: (id or path, description) of the general text the perplexity
    was measured on (without it the perplexity is not put in the model-index: it is not the corpus)."""
    from huggingface_hub import EvalResult

    entries = []
    for task, result in results["tasks"].items():
        if task == "perplexity":
            if perplexity_source is None:
                continue
            source, description = perplexity_source
            entries.append(
                EvalResult(
                    task_type="text-generation", dataset_type=_dataset_reference(source), dataset_name=description,
                    metric_type="perplexity", metric_name=_PRETTY["perplexity"],
                    metric_value=round(float(result["value"]), 4), task_name="perplexity",
                )
            )  # fmt: skip
            continue
        metric = result["metric"]
        settings = result.get("settings", {})
        config = settings.get("config", task)
        name = _PRETTY.get(metric, metric)
        if settings.get("shots") is not None:  # few-shot and zero-shot results of one config stay apart
            name = f"{name}, {settings['shots']}-shot"
        entries.append(
            EvalResult(
                task_type="text-generation",
                dataset_type=_dataset_reference(dataset_id),
                dataset_name=dataset_name,
                dataset_config=config,
                metric_type=metric,
                metric_name=name,
                metric_value=round(float(result["value"]), 4),
                task_name=task,
            )
        )
    return entries


_CARD_START, _CARD_END = "<!-- e2wm evaluation -->", "<!-- /e2wm evaluation -->"


def _card_section(results: dict[str, Any], base: dict[str, Any] | None, resamples: int, seed: int) -> str:
    labels = {"base": base, "model": results} if base is not None else {"model": results}
    stats = report_statistics(labels, resamples, seed)
    lines = [_CARD_START, "## Evaluation (e2wm)", ""]
    diff = base is not None
    lines += ["| task | metric | k | n | score [95% CI] |" + (" vs base [paired 95% CI] |" if diff else "")]
    lines += ["|---|---|---|---|---|" + ("---|" if diff else "")]
    for task, entry in stats["tasks"].items():
        mine = entry["labels"].get("model", {})
        shots = "—" if entry.get("shots") is None else str(entry["shots"])
        cells = [task, _PRETTY.get(entry["metric"], entry["metric"]), shots, _n(entry), _interval(mine.get("score"))]
        if diff:
            cells.append(_signed(mine.get("difference")))
        lines.append("| " + " | ".join(cells) + " |")
    if "model" in stats["perplexity"]:
        entry = stats["perplexity"]["model"]
        line = f"Perplexity on held-out general text: {_interval(entry['perplexity'], 2)} ({entry['tokens']} tokens in {entry['documents']} documents)"
        if entry.get("change"):
            line += f", {_signed(entry['change'], digits=1, percent=True)} vs base"
        lines += ["", line + "."]
    lines += ["", _method(resamples, seed), _CARD_END]
    return "\n".join(lines)


def update_model_card(
    folder: str | Path,
    results: dict[str, Any],
    dataset_id: str,
    model_name: str,
    base: dict[str, Any] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
    perplexity_source: tuple[str, str] | None = None,
) -> None:
    """Add the results to the model card (README.md) of an adapter folder: ``model-index`` entries (the
    measured values) and an evaluation section with n and 95% intervals (and, with the ``base`` model's
    results, the paired differences), replacing the section an earlier call wrote."""
    from huggingface_hub import ModelCard, ModelCardData

    path = Path(folder) / "README.md"
    card = ModelCard(path.read_text(encoding="utf-8") if path.exists() else "---\n{}\n---\n")
    data = card.data if isinstance(card.data, ModelCardData) else ModelCardData(**card.data.to_dict())
    data.model_name = data.model_name or model_name
    data.eval_results = card_eval_results(results, dataset_id, perplexity_source=perplexity_source)
    card.data = data
    text = card.text
    if _CARD_START in text and _CARD_END in text:
        text = text[: text.index(_CARD_START)].rstrip("\n") + text[text.index(_CARD_END) + len(_CARD_END) :]
    card.text = text.rstrip("\n") + "\n\n" + _card_section(results, base, resamples, seed) + "\n"
    atomic_write_text(path, str(card))
