"""The learning–forgetting frontier's report: points, intervals, the Pareto front, the best setting in a budget.

Each trained point (a method and a setting: plain LoRA, EWC-LoRA at λ, L2 at λ, OSF, replay at a ratio) is
placed at

* x = its perplexity change against the base on the held-out general text, in % (lower: less forgetting), with
  the paired 95% interval (documents resampled);
* y = its embodied gain against the base: the aggregate of the headline (few-shot) tasks, the mean over tasks of
  the normalised change (``e2wm.evaluation.stats``), with its joint 95% interval; and, per task, the paired
  difference of the task's score.

A point is on the **Pareto front** when no other point has both a lower perplexity change and a higher gain
(on the estimates; ties count as dominated only when strictly worse in one and not better in the other).
For a perplexity budget (e.g. +2%), the **best setting** is the point of highest gain whose perplexity
change is within the budget; the report also names the best whose whole interval is within it (the
conservative choice), and says so plainly when no point qualifies.

``write_frontier_report(OUT, EVAL, points, budget)`` reads ``EVAL/<label>/results.json`` for the base and every
point and writes ``OUT/report.md``, ``OUT/frontier.json``, ``OUT/frontier.png`` and ``OUT/frontier.svg``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from e2wm.evaluation.report import _interval, _signed, report_statistics
from e2wm.evaluation.stats import CONFIDENCE, RESAMPLES
from e2wm.utils import atomic_write_text

__all__ = ["pareto_front", "write_frontier_report"]

_COLOURS = {"lora": "#4c72b0", "ewc": "#dd8452", "l2": "#55a868", "osf": "#c44e52", "replay": "#8172b3"}
_MARKERS = {"lora": "o", "ewc": "s", "l2": "^", "osf": "D", "replay": "v"}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point dominates (x lower is better, y higher is better), sorted by x."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any((ox <= x and oy >= y) and (ox < x or oy > y) for j, (ox, oy) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _load(folder: Path, label: str) -> dict[str, Any]:
    path = folder / label / "results.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(
            f"{path}: the results of {label!r} are missing or unreadable ({err}); evaluate it first"
        ) from None
    return data


def frontier_statistics(
    eval_folder: str | Path, points: Sequence[Mapping[str, Any]], resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """x, y and per-task gains with intervals for every point (``points``: dicts with ``label``, ``method``,
    ``setting``), from the evaluations in ``eval_folder`` (``base`` first)."""
    folder = Path(eval_folder)
    results = {"base": _load(folder, "base")} | {p["label"]: _load(folder, p["label"]) for p in points}
    stats = report_statistics(results, resamples, seed)
    headline = stats["aggregate"].get("headline", {})
    zero_shot = stats["aggregate"].get("zero_shot", {})  # the same tasks without demonstrations, when evaluated
    tasks = list(headline.get("tasks", []))
    rows = []
    for point in points:
        label = point["label"]
        change = stats["perplexity"].get(label, {}).get("change")
        gain = headline.get("labels", {}).get(label)
        gain_zero_shot = zero_shot.get("labels", {}).get(label)
        per_task = {task: stats["tasks"][task]["labels"].get(label, {}).get("difference") for task in tasks}
        rows.append(
            {**point, "perplexity_change": change, "gain": gain, "gain_zero_shot": gain_zero_shot, "tasks": per_task}
        )
    base_ppl = stats["perplexity"].get("base", {})
    return {
        "rows": rows,
        "tasks": tasks,
        "metrics": {task: stats["tasks"][task]["metric"] for task in tasks},
        "n": {task: stats["tasks"][task]["n"] for task in tasks},
        "shots": {task: stats["tasks"][task].get("shots") for task in tasks},
        "base_perplexity": base_ppl.get("perplexity"),
        "tokens": base_ppl.get("tokens"),
        "documents": base_ppl.get("documents"),
        "settings": {"resamples": resamples, "seed": seed, "confidence": CONFIDENCE},
    }


def _usable(row: Mapping[str, Any]) -> bool:
    return row["perplexity_change"] is not None and row["gain"] is not None


def best_within(
    rows: Sequence[Mapping[str, Any]], budget: float, conservative: bool = False
) -> Mapping[str, Any] | None:
    """The row of highest gain whose perplexity change (its estimate, or with ``conservative`` its upper bound) is
    at most ``budget`` percent."""
    key = "high" if conservative else "estimate"
    within = [r for r in rows if _usable(r) and r["perplexity_change"][key] * 100 <= budget]
    return max(within, key=lambda r: r["gain"]["estimate"], default=None)


def write_frontier_report(
    out: str | Path,
    eval_folder: str | Path,
    points: Sequence[Mapping[str, Any]],
    budget: float = 2.0,
    title: str = "e2wm frontier",
    notes: str = "",
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Path:
    """Write the frontier's report, data and plots into ``out``; returns the report's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stats = frontier_statistics(eval_folder, points, resamples, seed)
    rows = stats["rows"]
    usable = [r for r in rows if _usable(r)]
    front = {
        usable[i]["label"]
        for i in pareto_front([(r["perplexity_change"]["estimate"], r["gain"]["estimate"]) for r in usable])
    }
    best, safe = best_within(rows, budget), best_within(rows, budget, conservative=True)
    atomic_write_text(
        out / "frontier.json",
        json.dumps({**stats, "pareto_front": sorted(front), "budget": budget,
                    "best": best and best["label"], "best_conservative": safe and safe["label"]}, indent=1),
    )  # fmt: skip
    lines = [f"# {title}", ""]
    if notes:
        lines += [notes, ""]
    tasks = stats["tasks"]
    base_ppl = stats["base_perplexity"]
    lines += [
        "Learning (y): the embodied gain against the base, the mean over the few-shot tasks of the normalised change "
        f"({len(tasks)} tasks: {', '.join(tasks)}). Forgetting (x): the perplexity change against the base on "
        f"held-out general text ({stats['documents']} documents, {stats['tokens']} tokens; base e^NLL "
        f"{_interval(base_ppl, 2) if base_ppl else '—'}). Both with paired 95% intervals; ★ = on the Pareto front "
        "(no other point forgets less and learns more).",
        "",
        "The zero-shot column is the same aggregate on the same tasks without demonstrations (not plotted): how much of "
        "a gain is the answer's format rather than knowledge.",
        "",
        "| method | setting | perplexity change | gain, few-shot (aggregate) | gain, zero-shot | Pareto |",
        "|---|---|---|---|---|---|",
    ]
    order = sorted(rows, key=lambda r: (list(_COLOURS).index(r["method"]), r["label"]))
    for row in order:
        zero = _signed(row["gain_zero_shot"]) if row.get("gain_zero_shot") else "—"
        lines.append(
            f"| {row['method']} | {row['setting']} | {_signed(row['perplexity_change'], 1, percent=True)} | "
            f"{_signed(row['gain'])} | {zero} | {'★' if row['label'] in front else ''} |"
        )
    lines += ["", f"## Within a perplexity budget of +{budget:g}%", ""]
    if best is None:
        lines.append(
            f"No point's perplexity change is within +{budget:g}% (estimate): every setting tried forgets more."
        )
    else:
        lines.append(
            f"Best by the estimate: **{best['method']} ({best['setting']})**, gain {_signed(best['gain'])}, "
            f"perplexity {_signed(best['perplexity_change'], 1, percent=True)}."
        )
        if best["gain"]["low"] <= 0:
            lines.append("Its gain's interval includes 0: within this budget no setting shows a gain the data support.")
        if safe is None:
            lines.append(f"No point's whole perplexity interval is within +{budget:g}%.")
        elif safe["label"] != best["label"]:
            lines.append(
                f"Best whose whole perplexity interval is within the budget (conservative): {safe['method']} "
                f"({safe['setting']}), gain {_signed(safe['gain'])}."
            )
    lines += ["", "## Per task (few-shot score minus the base's, paired)", ""]
    header = ["method", "setting"] + [f"{t} (n={stats['n'][t]}, k={stats['shots'][t]})" for t in tasks]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in order:
        lines.append(
            "| " + " | ".join([row["method"], row["setting"], *(_signed(row["tasks"][t]) for t in tasks)]) + " |"
        )
    lines += [
        "",
        f"Intervals: 95% percentile bootstrap, {resamples} resamples (seed {seed}), the same resampled examples and "
        "documents for every point (paired against the base). See docs/evaluation.md, 'Statistics', and "
        "e2wm/frontier.py for how the points are trained.",
        "",
        "![learning-forgetting frontier](frontier.png)",
        "",
    ]
    report = out / "report.md"
    atomic_write_text(report, "\n".join(lines))
    _plot(out, stats, front, budget)
    return report


def _plot(out: Path, stats: Mapping[str, Any], front: set[str], budget: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in stats["rows"] if _usable(r)]
    panels: list[tuple[str, str | None]] = [("aggregate gain (normalised change)", None)]
    panels += [(f"{t}\n{stats['metrics'][t]} difference", t) for t in stats["tasks"]]
    columns = min(3, len(panels))
    lines = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(4.6 * columns, 3.8 * lines), squeeze=False)
    for ax, (name, task) in zip(axes.flat, panels, strict=False):
        shown: set[str] = set()
        for row in rows:
            y = row["gain"] if task is None else row["tasks"].get(task)
            if y is None:
                continue
            x = row["perplexity_change"]
            method = row["method"]
            ax.errorbar(
                x["estimate"] * 100, y["estimate"],
                xerr=[[(x["estimate"] - x["low"]) * 100], [(x["high"] - x["estimate"]) * 100]],
                yerr=[[y["estimate"] - y["low"]], [y["high"] - y["estimate"]]],
                fmt=_MARKERS[method], color=_COLOURS[method], ecolor=_COLOURS[method], alpha=0.85, capsize=2,
                markersize=7 if row["label"] in front else 5, label=method if method not in shown else None,
            )  # fmt: skip
            shown.add(method)
        points = [
            (r["perplexity_change"]["estimate"] * 100, (r["gain"] if task is None else r["tasks"][task])["estimate"])
            for r in rows
            if (r["gain"] if task is None else r["tasks"].get(task)) is not None
        ]
        if points:
            idx = pareto_front(points)
            ax.plot([points[i][0] for i in idx], [points[i][1] for i in idx], "k--", linewidth=1, label="Pareto front")
        ax.axhline(0, color="#999999", linewidth=0.8)
        ax.axvline(budget, color="#c44e52", linewidth=0.8, linestyle=":", label=f"budget +{budget:g}%")
        ax.set_xlabel("perplexity change vs base (%)  ← forgets less")
        ax.set_ylabel("gain vs base (few-shot)")
        ax.set_title(name, fontsize=9)
        if task is None:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("Learning vs forgetting: every point with its 95% intervals")
    fig.tight_layout()
    fig.savefig(out / "frontier.png", dpi=120)
    fig.savefig(out / "frontier.svg")
    plt.close(fig)
