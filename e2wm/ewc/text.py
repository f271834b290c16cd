"""General text for the Fisher: documents drawn with a seed from local files or a ``datasets`` source.

A source is one of

- a ``.jsonl`` file: one JSON object per line, the document in a string field (``text`` by default);
- a ``.txt`` file: one document per line;
- anything else (a Hub dataset id such as ``wikitext``, or a local folder in a layout ``datasets``
  reads, e.g. parquet shards): loaded with ``datasets.load_dataset(source, config, split=split,
  streaming=True)``, so nothing is downloaded beyond the documents used.

Empty documents are not documents (blank lines, empty strings). Order: local files are shuffled with
``random.Random(seed)`` and the first ``num_docs`` taken; a stream is shuffled with
``IterableDataset.shuffle(seed=seed, buffer_size=10_000)``. Either way the documents drawn for N are a
prefix of those drawn for a larger N with the same seed, so a resumed or extended run sees the same
documents in the same order. Asking for more documents than the source has is an error;
``num_docs`` equal to the number available uses them all.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["DocumentSourceError", "TextSource", "iter_documents", "read_local_documents"]

_LOCAL_SUFFIXES = (".jsonl", ".txt")
_STREAM_SHUFFLE_BUFFER = 10_000


class DocumentSourceError(ValueError):
    """The text source cannot give the documents asked for (the message names the source and the fix)."""


@dataclass(frozen=True)
class TextSource:
    """Where the documents come from: a local ``.jsonl``/``.txt`` file or a ``datasets`` id or folder."""

    path_or_id: str
    config: str | None = None
    split: str = "train"
    field: str = "text"

    def is_local_file(self) -> bool:
        return Path(self.path_or_id).suffix in _LOCAL_SUFFIXES

    def describe(self) -> dict[str, Any]:
        """The source as recorded in the Fisher's metadata."""
        if self.is_local_file():
            return {"path": self.path_or_id, "field": self.field if self.path_or_id.endswith(".jsonl") else None}
        return {"dataset": self.path_or_id, **{k: v for k, v in asdict(self).items() if k != "path_or_id"}}


def read_local_documents(path: str | Path, field: str = "text") -> list[str]:
    """All non-empty documents of a ``.jsonl`` (string field ``field``) or ``.txt`` (one per line) file."""
    path = Path(path)
    if path.suffix not in _LOCAL_SUFFIXES:
        raise DocumentSourceError(f"{path}: unsupported file type; use .jsonl or .txt, or a datasets id or folder")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a byte-order mark is not text
    except FileNotFoundError:
        raise DocumentSourceError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DocumentSourceError(f"{path}: cannot read it as UTF-8 text ({err})") from None
    if path.suffix == ".txt":
        return [line for line in lines if line.strip()]
    documents = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise DocumentSourceError(f"{path}:{number}: not a JSON object ({err})") from None
        if not isinstance(row, dict) or field not in row:
            keys = ", ".join(sorted(row)) if isinstance(row, dict) else type(row).__name__
            raise DocumentSourceError(
                f"{path}:{number}: no field {field!r} (fields: {keys}); name the text field with --text-field"
            )
        text = row[field]
        if not isinstance(text, str):
            raise DocumentSourceError(f"{path}:{number}: field {field!r} is {type(text).__name__}, not a string")
        if text.strip():
            documents.append(text)
    return documents


def iter_documents(source: TextSource, num_docs: int, seed: int) -> Iterator[str]:
    """Yield ``num_docs`` documents of ``source`` drawn with ``seed`` (see the module docstring)."""
    if num_docs < 1:
        raise DocumentSourceError(f"num_docs must be at least 1, got {num_docs}")
    if source.is_local_file():
        documents = read_local_documents(source.path_or_id, source.field)
        if not documents:
            raise DocumentSourceError(f"{source.path_or_id} holds no documents: give a .txt (one per line) or .jsonl")
        if num_docs > len(documents):
            raise DocumentSourceError(
                f"{source.path_or_id} has {len(documents)} documents; --num-docs asked for {num_docs} "
                f"(use --num-docs {len(documents)} to use them all)"
            )
        order = list(range(len(documents)))
        random.Random(seed).shuffle(order)
        yield from (documents[i] for i in order[:num_docs])
        return
    yield from _iter_stream(source, num_docs, seed)


def _iter_stream(source: TextSource, num_docs: int, seed: int) -> Iterator[str]:
    import datasets

    try:
        stream = datasets.load_dataset(source.path_or_id, source.config, split=source.split, streaming=True)
    except Exception as err:  # datasets raises many kinds (FileNotFoundError, ValueError, HTTP errors)
        raise DocumentSourceError(
            f"cannot load the dataset {source.path_or_id!r} (config {source.config!r}, split {source.split!r}): "
            f"{type(err).__name__}: {err}"
        ) from None
    stream = stream.shuffle(seed=seed, buffer_size=_STREAM_SHUFFLE_BUFFER)
    count = 0
    for row in stream:
        if source.field not in row:
            raise DocumentSourceError(
                f"{source.path_or_id}: rows have no field {source.field!r} (fields: {', '.join(sorted(row))}); "
                "name the text field with --text-field"
            )
        text = row[source.field]
        if not isinstance(text, str) or not text.strip():
            continue
        yield text
        count += 1
        if count == num_docs:
            return
    if count == 0:
        raise DocumentSourceError(f"{source.path_or_id} ({source.split}) holds no non-empty documents")
    raise DocumentSourceError(
        f"{source.path_or_id} ({source.split}) has only {count} non-empty documents; --num-docs asked for "
        f"{num_docs} (use --num-docs {count} to use them all)"
    )
