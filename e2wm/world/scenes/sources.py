"""Scenes as data: folders of VirtualHome graphs (e.g. dumps from the Unity simulator) and content ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from e2wm.world.graph import GraphFormatError, parse_graph, read_graph_json

__all__ = ["graph_files", "iter_scene_folder", "scene_id"]


def scene_id(graph: dict[str, Any]) -> str:
    """A content id for a graph: the first 16 hex digits of the sha256 of its canonical JSON.

    Node order, edge order and duplicate edges do not change it; any change of a node or edge does.
    """
    nodes = sorted(graph.get("nodes", []), key=lambda n: n["id"])
    edges = sorted({(e["from_id"], str(e["relation_type"]).upper(), e["to_id"]) for e in graph.get("edges", [])})
    payload = json.dumps([nodes, edges], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def graph_files(path: str | Path) -> list[Path]:
    """The ``*.json`` graph files of a folder (sorted, recursive), or the file itself.

    A broken symbolic link named ``*.json`` is listed too (never skipped in silence): reading it raises a
    ``GraphFormatError`` that names the link and where it points, so a scene set never loses a scene unseen.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        if path.is_symlink():
            return [path]  # a broken link: read_graph_json says so
        raise GraphFormatError("no such file or folder", source=str(path))
    files = sorted(
        p
        for p in path.rglob("*.json")
        if (p.is_file() or (p.is_symlink() and not p.exists())) and p.name != "scenes.json"
    )
    if not files:
        raise GraphFormatError("the folder holds no .json graph files", source=str(path))
    return files


def iter_scene_folder(path: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Each graph file of a folder with its validated graph dict (errors name the file and position)."""
    for file in graph_files(path):
        data = read_graph_json(file)
        parse_graph(data, source=str(file))
        yield file, data
