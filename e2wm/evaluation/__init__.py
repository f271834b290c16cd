"""The evaluation suite: multiple choice by log-likelihood, generation (Rouge-L, room paths), plans
executed in the world, perplexity on general text, and a report with plots."""

from e2wm.evaluation.perplexity import Perplexity, general_text, perplexity
from e2wm.evaluation.scoring import choose, score_continuations
from e2wm.evaluation.tasks import EvalTask, tasks_from_corpus, tasks_from_files

__all__ = [
    "EvalTask",
    "Perplexity",
    "choose",
    "general_text",
    "perplexity",
    "score_continuations",
    "tasks_from_corpus",
    "tasks_from_files",
]
