"""Push e2wm's three artifacts (corpus, Fisher, adapter) to the Hugging Face Hub, each as what it is.

``push_artifact(kind, folder, repo_id)`` checks that ``folder`` really is that kind of artifact before
anything is uploaded (a corpus push replaces the remote dataset's shards, so an adapter folder pushed as a
corpus would delete them), uploads only the artifact's own files (never checkpoints, optimizer states,
RNG states or ``training_args.bin``, a pickle that can hold a token), and creates the repo when missing.
A re-push replaces the files the artifact manages (stale shards of an older corpus are deleted in the same
commit). Tokens come from ``huggingface_hub``'s usual places (``HF_TOKEN``, ``hf auth login``) only: e2wm
never takes one as an argument, prints one or writes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["ARTIFACTS", "ArtifactError", "check_artifact", "push_artifact", "push_folder"]


class ArtifactError(ValueError):
    """A folder is not the artifact it is pushed as, or a repo id is invalid (the message says what to fix)."""


#: kind -> (repo type, files that must exist, patterns uploaded, remote patterns a re-push replaces)
ARTIFACTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "corpus": (
        "dataset",
        ("README.md", "e2wm_corpus.json"),
        ("README.md", "e2wm_corpus.json", "*/*.parquet"),
        ("*.parquet", "README.md", "e2wm_corpus.json"),
    ),
    "fisher": ("model", ("fisher.safetensors", "fisher.json"), ("fisher.safetensors", "fisher.json", "README.md"), ()),
    "adapter": (
        "model",
        ("adapter_config.json", "adapter_model.safetensors"),
        (
            "adapter_config.json",
            "adapter_model.safetensors",
            "README.md",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "chat_template.jinja",
            "chat_template.json",
        ),
        (),
    ),
}
_WHAT = {
    "corpus": "a corpus folder written by `e2wm build`",
    "fisher": "a Fisher folder written by `e2wm fisher`",
    "adapter": "an adapter folder written by `e2wm train` (safetensors weights)",
}


def check_repo_id(repo_id: str) -> None:
    """Refuse what is not a Hub repo id (``name`` or ``namespace/name``), naming the id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ArtifactError(f"{repo_id!r} is not a valid Hub repo id ({err}); use namespace/name") from None


def check_artifact(kind: str, folder: str | Path) -> Path:
    """``folder`` if it is an artifact of ``kind`` (corpus, fisher, adapter); else ``ArtifactError``."""
    if kind not in ARTIFACTS:
        raise ArtifactError(f"unknown artifact kind {kind!r}; use one of {', '.join(ARTIFACTS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"nothing to push: {folder} is not a folder")
    missing = [name for name in ARTIFACTS[kind][1] if not (folder / name).is_file()]
    if missing:
        others = [k for k in ARTIFACTS if k != kind and all((folder / n).is_file() for n in ARTIFACTS[k][1])]
        hint = f"; it looks like {_WHAT[others[0]].split(' written')[0]}, so push it as `{others[0]}`" if others else ""
        raise ArtifactError(f"{folder} is not {_WHAT[kind]} (no {', '.join(missing)}){hint}")
    if kind == "fisher":
        from e2wm.ewc.artifact import read_fisher_metadata
        from e2wm.ewc.layers import FisherError

        try:
            read_fisher_metadata(folder)  # a readable e2wm Fisher, not only a file of that name
        except FisherError as err:
            raise ArtifactError(f"{err}; nothing was pushed") from None
    if kind == "adapter":
        _check_safetensors(folder / "adapter_model.safetensors")
    if kind == "corpus":
        shards = sorted(folder.glob("*/*.parquet"))
        if not shards:
            raise ArtifactError(f"{folder} is not {_WHAT[kind]} (no parquet shards)")
        _check_parquet(shards)
    return folder


def _check_safetensors(path: Path) -> None:
    """A damaged weights file is refused before it replaces a good one on the Hub (its header is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError) as err:
        raise ArtifactError(
            f"{path} is damaged or not a safetensors file ({' '.join(str(err).split())}); nothing was pushed: "
            "save the adapter again (e2wm train)"
        ) from None


def _check_parquet(shards: Sequence[Path]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    for shard in shards:
        try:
            pq.read_metadata(shard)
        except (pa.ArrowException, OSError) as err:
            raise ArtifactError(
                f"{shard} is damaged or not a parquet file ({' '.join(str(err).split())}); nothing was pushed: "
                "rebuild the corpus (e2wm build)"
            ) from None


def push_artifact(kind: str, folder: str | Path, repo_id: str, *, private: bool | None = None) -> str:
    """Upload the artifact ``folder`` of ``kind`` to ``repo_id`` in one commit; returns the commit URL."""
    check_repo_id(repo_id)
    folder = check_artifact(kind, folder)
    repo_type, _, allow, replace = ARTIFACTS[kind]
    return push_folder(
        folder,
        repo_id,
        repo_type=repo_type,
        private=private,
        commit_message=f"Upload e2wm {kind}",
        allow_patterns=allow,
        delete_patterns=replace or None,
    )


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    repo_type: str = "model",
    private: bool | None = None,
    commit_message: str = "Upload with e2wm",
    allow_patterns: Sequence[str] | None = None,
    delete_patterns: Sequence[str] | None = None,
) -> str:
    """Upload ``folder`` (only ``allow_patterns`` when given) to ``repo_id`` (created if needed) in one commit.

    ``delete_patterns`` removes matching remote files that the folder no longer has, so pushing a
    rebuilt artifact updates the repo in place. Prefer ``push_artifact``, which checks the folder first.
    """
    from huggingface_hub import HfApi

    check_repo_id(repo_id)
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(f"nothing to push: {folder} is not a folder")
    api = HfApi()
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message=commit_message,
        allow_patterns=list(allow_patterns) if allow_patterns else None,
        ignore_patterns=[".e2wm.lock", "**/.e2wm.lock"],  # the folder lock of the run that wrote it
        delete_patterns=list(delete_patterns) if delete_patterns else None,
    )
    return str(getattr(info, "commit_url", info))
