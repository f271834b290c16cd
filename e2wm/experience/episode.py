"""The ``Episode``: one record for a planned episode (MCTS toward a goal) or an exploration.

Stored as one parquet row (see :data:`EPISODE_SCHEMA`); structured fields that vary in shape (the
goal, per-step diffs, object tracks, settings) are JSON strings. Scenes are not stored in the row:
``scene_id`` is the content hash of the scene graph, which is stored once under
``scenes/<scene_id>.json.gz`` beside the episodes.

Fields:

* ``episode_id``: unique and deterministic (``plan-robothow-s0-000012``);
* ``kind``: ``"plan"`` or ``"exploration"``;
* ``scene_id``, ``scene_source`` (``generated`` / ``robothow`` / ``folder``), ``scene_name``;
* ``activity`` and ``goal`` (:meth:`Goal.to_dict` as JSON; empty for explorations);
* ``characters``: the acting characters' node ids;
* ``actions``: script lines (``<charN>`` prefixed when several characters act), ``sentences``;
* ``step_success`` and ``step_diffs`` (one :meth:`Diff.to_dict` JSON per step);
* ``tracks``: JSON ``{object id: [{"step", "relation", "support", "room"}, ...]}`` (explorations);
* ``success`` (plans: verified by re-execution; explorations: every step executed) and ``failure``;
* ``human_program``: the RobotHow program's lines (RobotHow plans only);
* ``seed`` and ``settings`` (the collector settings, JSON).

Wall-clock times and process ids are never stored (rows are identical across runs and ``--num-proc``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa

__all__ = ["EPISODE_SCHEMA", "Episode"]

EPISODE_SCHEMA = pa.schema(
    [
        ("episode_id", pa.string()),
        ("kind", pa.string()),
        ("scene_id", pa.string()),
        ("scene_source", pa.string()),
        ("scene_name", pa.string()),
        ("activity", pa.string()),
        ("goal", pa.string()),
        ("characters", pa.list_(pa.int64())),
        ("actions", pa.list_(pa.string())),
        ("sentences", pa.list_(pa.string())),
        ("step_success", pa.list_(pa.bool_())),
        ("step_diffs", pa.list_(pa.string())),
        ("tracks", pa.string()),
        ("success", pa.bool_()),
        ("failure", pa.string()),
        ("human_program", pa.list_(pa.string())),
        ("seed", pa.int64()),
        ("settings", pa.string()),
    ]
)


@dataclass
class Episode:
    """One collected experience (see the module docstring for the fields)."""

    episode_id: str
    kind: str
    scene_id: str
    scene_source: str
    scene_name: str
    activity: str = ""
    goal: dict[str, Any] | None = None
    characters: list[int] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    step_success: list[bool] = field(default_factory=list)
    step_diffs: list[dict[str, Any]] = field(default_factory=list)
    tracks: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    success: bool = False
    failure: str | None = None
    human_program: list[str] = field(default_factory=list)
    seed: int = 0
    settings: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["goal"] = json.dumps(self.goal, sort_keys=True) if self.goal is not None else ""
        row["step_diffs"] = [json.dumps(d, separators=(",", ":")) for d in self.step_diffs]
        row["tracks"] = json.dumps({str(k): v for k, v in sorted(self.tracks.items())}, separators=(",", ":"))
        row["settings"] = json.dumps(self.settings, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Episode:
        data = dict(row)
        data["goal"] = json.loads(data["goal"]) if data.get("goal") else None
        data["step_diffs"] = [json.loads(d) for d in data.get("step_diffs") or []]
        data["tracks"] = {int(k): v for k, v in json.loads(data.get("tracks") or "{}").items()}
        data["settings"] = json.loads(data.get("settings") or "{}")
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})
