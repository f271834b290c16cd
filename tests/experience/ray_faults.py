"""Faults injected into Ray workers by tests/experience/test_ray.py (a ``worker_process_setup_hook``).

A file ``<kind>-<index>.<fault>`` in ``$E2WM_TEST_RAY_FAULTS`` makes the worker that reaches that
episode ``kill`` its own process (as the kernel's OOM killer would) or ``raise``. Each fault fires
once: the worker claims its file by renaming it to ``....fired`` first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class InjectedFault(RuntimeError):
    pass


def install() -> None:
    import e2wm.experience.collect as collect

    folder = Path(os.environ["E2WM_TEST_RAY_FAULTS"])
    for name in ("_plan_episode", "_exploration_episode"):
        original = getattr(collect, name)
        kind = name.split("_")[1]
        setattr(collect, name, _faulty(original, kind, folder))


def _faulty(original: Any, kind: str, folder: Path) -> Any:
    def episode(scenes: Any, store: Any, index: int) -> Any:
        for fault in ("kill", "raise"):
            path = folder / f"{kind}-{index}.{fault}"
            try:
                path.rename(path.with_name(path.name + ".fired"))
            except FileNotFoundError:
                continue
            if fault == "kill":
                os._exit(1)
            raise InjectedFault(f"injected fault in {kind} {index}")
        return original(scenes, store, index)

    return episode
