"""Render the model cards from the Jinja templates in the repository's top-level ``model_cards/`` folder.

The templates are kept in one place, ``model_cards/`` beside the ``e2wm`` package (see ARCHITECTURE.md),
and found in this order:

1. ``$E2WM_MODEL_CARDS``, a folder, when set (to try a changed template without reinstalling);
2. ``<repository>/model_cards``: a checkout, or an editable install (``pip install -e .``, what the
   README and CI use), where this file is ``<repository>/e2wm/_model_cards.py``;
3. ``e2wm/model_cards`` inside the installed package (``importlib.resources``), for a wheel that ships
   the templates as package data.

A template that is found nowhere raises ``FileNotFoundError`` naming the places searched. Rendering
uses a sandboxed Jinja environment with ``StrictUndefined``: a missing variable is an error, not an
empty string on the Hub.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["render_card", "template_text"]

_REPO_FOLDER = Path(__file__).resolve().parent.parent / "model_cards"


def template_text(name: str) -> str:
    """The text of the template ``name`` (e.g. ``fisher_card.md.jinja``), from the first place that has it."""
    searched = []
    if os.environ.get("E2WM_MODEL_CARDS"):
        searched.append(Path(os.environ["E2WM_MODEL_CARDS"]) / name)
    searched.append(_REPO_FOLDER / name)
    for path in searched:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    packaged = resources.files("e2wm").joinpath("model_cards").joinpath(name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    places = ", ".join(str(p) for p in searched)
    raise FileNotFoundError(f"model card template {name!r} not found (looked in {places} and e2wm/model_cards)")


def render_card(name: str, **context: Any) -> str:
    """Render the template ``name`` with ``context``."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    return env.from_string(template_text(name)).render(**context)
