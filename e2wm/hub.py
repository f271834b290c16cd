"""Push and pull e2wm's artifacts (corpus, Fisher, adapter) to and from the Hugging Face Hub.

Thin wrappers over ``huggingface_hub``: the repo is created when missing, and a re-push replaces
the files it manages (stale shards of an older corpus are deleted in the same commit). Tokens come
from ``huggingface_hub``'s usual places (``HF_TOKEN``, ``hf auth login``) and are never printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["push_folder"]


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload with e2wm",
    delete_patterns: Sequence[str] | None = None,
) -> str:
    """Upload ``folder`` to ``repo_id`` (created if needed) in one commit; returns the commit URL.

    ``delete_patterns`` removes matching remote files that the folder no longer has, so pushing a
    rebuilt artifact updates the repo in place.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"nothing to push: {folder} is not a folder")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=commit_message,
        delete_patterns=list(delete_patterns) if delete_patterns else None,
    )
    return str(getattr(info, "commit_url", info))
