"""Render the model cards from the Jinja templates shipped inside the package (``e2wm/model_cards/``).

The templates are package data, so a wheel (``pip install e2wm``) carries them; the repository's top-level
``model_cards/`` is a link to the same folder, the place a reader finds them. ``$E2WM_MODEL_CARDS``, a
folder, is searched first when set (to try a changed template without reinstalling). A template that is
found nowhere raises ``FileNotFoundError`` naming the places searched. Rendering uses a sandboxed Jinja
environment with ``StrictUndefined``: a missing variable is an error, not an empty string on the Hub.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["render_card", "template_text"]


def template_text(name: str) -> str:
    """The text of the template ``name`` (e.g. ``fisher_card.md.jinja``), from the first place that has it."""
    override = os.environ.get("E2WM_MODEL_CARDS")
    if override and (Path(override) / name).is_file():
        return (Path(override) / name).read_text(encoding="utf-8")
    packaged = resources.files("e2wm").joinpath("model_cards").joinpath(name)
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    places = ([f"{override}/{name}"] if override else []) + [f"e2wm/model_cards/{name} (package data)"]
    raise FileNotFoundError(f"model card template {name!r} not found (looked in {', '.join(places)})")


def render_card(name: str, **context: Any) -> str:
    """Render the template ``name`` with ``context``."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True)
    return env.from_string(template_text(name)).render(**context)
