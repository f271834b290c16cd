"""Monte Carlo Tree Search over macro actions, with E2WM's reward shaping.

Selection is PUCT with the exploration rate of AlphaZero and Watch-And-Help,
``c(N) = log((N + c_base + 1) / c_base) + c_init``, and the score of a child
``Q + c(N) · P · √N / (1 + n)`` (uniform priors P over the macros of a node). Each primitive step
earns the paper's shaped reward: +2 per goal unit newly reached, −1.5 per unit undone, −0.1 per step,
+5 when the goal holds; returns are discounted by ``discount`` per primitive step. Rollouts play
random macros (for one randomly chosen unsatisfied fact at a time) up to ``rollout_depth`` steps.

After ``simulations`` simulations the most visited macro is executed for real, its subtree kept, and
the search goes on until the goal holds, no macro applies, or ``max_steps`` lines were planned. The
plan is then verified by re-executing it from the initial graph (:func:`verify_plan`).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from e2wm.experience.goals import Goal
from e2wm.experience.macros import Macro, propose_macros
from e2wm.world import ScriptLine, World

__all__ = ["MCTSConfig", "PlanResult", "plan", "verify_plan"]


@dataclass(frozen=True)
class MCTSConfig:
    """Search budget and reward shaping (defaults: the paper's shaping, a budget for 2 CPU cores)."""

    simulations: int = 48  # per decision
    max_steps: int = 60  # primitive lines in a plan
    rollout_depth: int = 25  # primitive steps per rollout (the paper's 25)
    discount: float = 0.99
    c_init: float = 1.25
    c_base: float = 19652.0
    reward_reached: float = 2.0
    reward_undone: float = -1.5
    reward_step: float = -0.1
    reward_done: float = 5.0

    def __post_init__(self) -> None:
        for name in ("simulations", "max_steps", "rollout_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"MCTSConfig.{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.discount <= 1:
            raise ValueError(f"MCTSConfig.discount must be in (0, 1], got {self.discount}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Node:
    macro: Macro = ()
    reward: float = 0.0  # discounted shaped reward of executing ``macro`` from the parent
    steps: int = 0
    done: bool = False
    visits: int = 0
    value: float = 0.0
    children: list[_Node] | None = None  # None: not expanded yet

    def q(self) -> float:
        return self.value / self.visits if self.visits else 0.0


@dataclass
class PlanResult:
    """A plan (script lines), whether the goal was reached, and search statistics."""

    lines: list[ScriptLine]
    reached: bool
    failure: str | None = None
    simulations: int = 0
    decisions: int = 0
    stats: dict[str, Any] = field(default_factory=dict)


class _Search:
    def __init__(self, world: World, character: int, goal: Goal, config: MCTSConfig, rng: random.Random):
        self.world, self.char, self.goal, self.config, self.rng = world, character, goal, config, rng

    def units(self) -> list[int]:
        return [fact.units(self.world)[0] for fact in self.goal.facts]

    def run_macro(self, macro: Macro) -> tuple[float, int, bool]:
        """Execute a macro; its discounted shaped reward, its length, and whether the goal now holds."""
        cfg, total, scale = self.config, 0.0, 1.0
        before = self.units()
        for line in macro:
            result = self.world.step(line, self.char, diff=False)
            if not result.success:  # macros are checked when proposed; this is a bug, not a state
                raise RuntimeError(f"macro line failed during search: {line}: {result.reason}")
            after = self.units()
            gained = sum(max(a - b, 0) for a, b in zip(after, before, strict=True))
            lost = sum(max(b - a, 0) for a, b in zip(after, before, strict=True))
            reward = cfg.reward_reached * gained + cfg.reward_undone * lost + cfg.reward_step
            done = self.goal.satisfied(self.world)
            if done:
                reward += cfg.reward_done
            total += scale * reward
            scale *= cfg.discount
            before = after
            if done:
                return total, len(macro), True
        return total, len(macro), False

    def expand(self, node: _Node) -> None:
        node.children = [_Node(macro) for macro in propose_macros(self.world, self.char, self.goal)]

    def rollout(self) -> float:
        cfg, total, scale, steps = self.config, 0.0, 1.0, 0
        while steps < cfg.rollout_depth:
            macros = propose_macros(self.world, self.char, self.goal, self.rng, limit_facts=1)
            if not macros:
                break
            reward, length, done = self.run_macro(self.rng.choice(macros))
            total += scale * reward
            scale *= cfg.discount**length
            steps += length
            if done:
                break
        return total

    def select(self, node: _Node) -> _Node:
        assert node.children
        cfg = self.config
        c = math.log((node.visits + cfg.c_base + 1) / cfg.c_base) + cfg.c_init
        prior = 1.0 / len(node.children)
        sqrt_n = math.sqrt(max(node.visits, 1))
        return max(node.children, key=lambda ch: ch.q() + c * prior * sqrt_n / (1 + ch.visits))

    def simulate(self, root: _Node) -> None:
        snap = self.world.snapshot()
        path, node = [root], root
        while node.children and not node.done:
            child = self.select(node)
            reward, steps, done = self.run_macro(child.macro)
            child.reward, child.steps, child.done = reward, steps, done
            path.append(child)
            node = child
        tail = 0.0
        if not node.done:
            if node.children is None:
                self.expand(node)
            tail = self.rollout()
        self.world.restore(snap)
        # Back up discounted returns: each node's value is the return from its parent onward.
        value = tail
        for child in reversed(path[1:]):
            value = child.reward + (self.config.discount**child.steps) * value
            child.visits += 1
            child.value += value
        root.visits += 1


def plan(
    world: World,
    goal: Goal,
    character: int | None = None,
    config: MCTSConfig | None = None,
    seed: int = 0,
) -> PlanResult:
    """Plan toward ``goal`` from the world's current state; the world is left unchanged."""
    config = config or MCTSConfig()
    char = world.character() if character is None else character
    rng = random.Random(seed)
    search = _Search(world, char, goal, config, rng)
    start = world.snapshot()
    lines: list[ScriptLine] = []
    chosen: list[Macro] = []
    root = _Node()
    simulations = decisions = 0
    failure: str | None = None
    try:
        while not goal.satisfied(world):
            if len(lines) >= config.max_steps:
                failure = f"no plan within {config.max_steps} steps"
                break
            if root.children is None:
                search.expand(root)
            assert root.children is not None
            if not root.children:
                failure = "no action leads toward the unsatisfied facts: " + "; ".join(
                    fact.describe(world) for fact in goal.unsatisfied(world)
                )
                break
            if len(root.children) > 1:
                for _ in range(config.simulations):
                    search.simulate(root)
                simulations += config.simulations
            best = max(root.children, key=lambda ch: (ch.visits, ch.q()))
            search.run_macro(best.macro)
            lines.extend(best.macro)
            chosen.append(best.macro)
            decisions += 1
            root = best
            if len(chosen) >= 4 and chosen[-1] == chosen[-3] and chosen[-2] == chosen[-4]:
                failure = "the search cycles between " + " and ".join(
                    " ".join(str(line) for line in macro) for macro in chosen[-2:]
                )
                break
    finally:
        reached = goal.satisfied(world)
        world.restore(start)
    return PlanResult(lines, reached, None if reached else failure, simulations, decisions)


def verify_plan(
    graph: dict[str, Any] | World, lines: list[ScriptLine], goal: Goal, character: int | None = None
) -> str | None:
    """Re-execute a plan from the initial graph: None when every line runs and the goal holds,
    else what went wrong."""
    world = World.from_dict(graph) if isinstance(graph, dict) else graph.copy()
    for number, line in enumerate(lines, start=1):
        result = world.step(line, character)
        if not result.success:
            return f"line {number} ({line}) failed on re-execution: {result.reason}"
    if not goal.satisfied(world):
        return "the plan executes but the goal does not hold: " + "; ".join(
            f.describe(world) for f in goal.unsatisfied(world)
        )
    return None
