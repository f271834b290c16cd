"""Tasks: episodes (and their scenes) turned into trl prompt/completion examples, and the corpus.

Training tasks: ``plan_generation``, ``activity_recognition``, ``counting``, ``object_path_tracking``.
Evaluation formats: housework QA (and its negation), activity inference and recognition QA, counting
QA, object location QA, and plan generation on seen / unseen activities, vanilla / confusing.
``e2wm.tasks.babi`` reads the original bAbI text format. ``e2wm.tasks.corpus.build_corpus`` writes
the ``e2wm/experiences`` corpus.
"""

from e2wm.tasks.common import PAPER_WEIGHTS, Example, TaskConfig

__all__ = ["PAPER_WEIGHTS", "Example", "TaskConfig"]
