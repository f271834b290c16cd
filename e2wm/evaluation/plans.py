"""Generated plans executed in the world (beyond the paper, which only compared strings).

A plan written as sentences ("Walk to kitchen. Grab cup. Put cup on table.") is parsed back into
script lines with the sentence templates E2WM writes plans with, grounded in the scene it was asked
about (names bound to nodes by backtracking) and executed. The plan is *executable* when every
sentence parses and runs, and *reaches the goal* when, in addition, the episode's goal holds at the end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from e2wm.experience.goals import Goal
from e2wm.experience.sentences import SENTENCE_TEMPLATES
from e2wm.world import ScriptLine, World

__all__ = ["PlanExecution", "execute_plan", "parse_sentence"]


def _pattern(template: str) -> re.Pattern[str]:
    regex = re.escape(template).replace(r"\{0\}", "(?P<a>.+?)").replace(r"\{1\}", "(?P<b>.+?)")
    return re.compile(f"^{regex}$", re.IGNORECASE)


# Most specific templates first, so "Put cup on table" is PutBack, not a two-word "Put on".
_PATTERNS = sorted(
    ((verb, _pattern(template), template) for verb, template in SENTENCE_TEMPLATES.items()),
    key=lambda item: (-item[2].count("{"), -len(item[2].replace("{0}", "").replace("{1}", ""))),
)


def parse_sentence(sentence: str) -> tuple[str, list[str]] | None:
    """``"Put cup on kitchen table"`` → ``("PutBack", ["cup", "kitchen table"])``; None if no template fits."""
    text = sentence.strip().rstrip(".").strip()
    for verb, pattern, _ in _PATTERNS:
        match = pattern.match(text)
        if match:
            return verb, [match.group(g).strip() for g in ("a", "b") if g in match.groupdict() and match.group(g)]
    return None


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=\.)\s+|\n+", text.strip()) if s.strip().strip(".")]


@dataclass(frozen=True)
class PlanExecution:
    executable: bool
    reached: bool
    lines: int  # lines executed (of the best grounding found)
    reason: str | None = None


def execute_plan(
    text: str, graph: dict[str, Any] | World, goal: Goal | None = None, budget: int = 2000
) -> PlanExecution:
    """Parse a generated plan, ground it in the scene and execute it.

    Names are bound to nodes of that class by backtracking, as VirtualHome's own script solver does:
    the goal's nodes are tried first, then the others by id, and the first grounding that executes
    every line and reaches the goal wins (else the first that executes, else the longest prefix).
    ``budget`` bounds the number of steps tried.
    """
    world = World.from_dict(graph) if isinstance(graph, dict) else graph.copy()
    by_name: dict[str, list[int]] = {}
    for node in world.nodes.values():
        by_name.setdefault(node.class_name.replace("_", " ").lower(), []).append(node.id)
    preferred = goal.node_ids() if goal is not None else set()
    character = goal.character if goal is not None and goal.character is not None else world.character()
    sentences = _sentences(text)
    if not sentences:
        return PlanExecution(False, False, 0, "the plan is empty")
    steps: list[tuple[str, list[list[int]], str]] = []
    for sentence in sentences:
        parsed = parse_sentence(sentence)
        if parsed is None:
            return PlanExecution(False, False, 0, f"cannot parse {sentence!r}")
        verb, names = parsed
        options = [sorted(by_name.get(name.lower(), []), key=lambda n: (n not in preferred, n)) for name in names]
        missing = [name for name, ids in zip(names, options, strict=True) if not ids]
        if missing:
            return PlanExecution(False, False, 0, f"no {missing[0]!r} in the scene ({sentence!r})")
        steps.append((verb, options, sentence))

    tries = [0]
    best: dict[str, Any] = {"depth": -1, "reason": None, "executable": False}

    def search(index: int) -> bool:
        if index == len(steps):
            reached = goal.satisfied(world) if goal is not None else False
            if not best["executable"]:
                best.update(depth=index, executable=True, reason=None)
            return reached or goal is None
        verb, options, sentence = steps[index]
        for ids in _combinations(options):
            if tries[0] >= budget:
                return False
            tries[0] += 1
            line = ScriptLine.make(verb, *((world.nodes[i].class_name, i) for i in ids))
            snapshot = world.snapshot()
            result = world.step(line, character, diff=False)
            if result.success:
                if search(index + 1):
                    return True
                world.restore(snapshot)
            elif index > best["depth"] and not best["executable"]:
                best.update(depth=index, reason=f"{sentence!r} does not execute: {result.reason}")
        return False

    if search(0):
        return PlanExecution(True, goal is not None, len(steps))
    if best["executable"]:
        return PlanExecution(True, False, len(steps))
    return PlanExecution(False, False, max(best["depth"], 0), best["reason"] or "the grounding budget ran out")


def _combinations(candidates: list[list[int]]) -> list[tuple[int, ...]]:
    combos: list[tuple[int, ...]] = [()]
    for ids in candidates:
        combos = [(*combo, i) for combo in combos for i in ids]
        if len(combos) > 64:  # keep grounding cheap: the first 64 assignments
            combos = combos[:64]
    return combos
