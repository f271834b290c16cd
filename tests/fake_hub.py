"""A protocol-level fake of the Hugging Face Hub, for fully offline tests.

The real `huggingface_hub` and `datasets` clients talk to `FakeHub` over their normal HTTP code path: the fixture
installs an `httpx2.Client` whose `MockTransport` hands every request to `FakeHub.handle`. Nothing is mocked above
the HTTP layer, so uploads, downloads, caching and `datasets` builders run exactly as against huggingface.co.

State is in memory: per (repo type, repo id) a list of commits, each a *full* file tree `{path: bytes}` with a
40-hex sha, a `main` branch pointing at the newest commit, and a store of LFS blobs by sha256. A new repo starts
with the Hub's "initial commit" holding a `.gitattributes`, as on huggingface.co.

Protocol subset (repo ids are always `namespace/name`; `{type}` is `model`/`dataset`/`space`; `{prefix}` is
`""`, `datasets/` or `spaces/`; revisions are branch names (`main`) or commit shas):

- `POST /api/repos/create` (409 when the repo exists), `POST /api/validate-yaml`
- `GET /api/{type}s/{id}[/revision/{rev}]`: info JSON (`sha`, `siblings`, `cardData`, `private`, ...; `?blobs=True`
  adds sizes and LFS info to `siblings`)
- `GET /api/{type}s/{id}/tree/{rev}[/{path}]` (`?recursive`, `?expand`; 404 `EntryNotFound` for a missing folder),
  `POST /api/{type}s/{id}/paths-info/{rev}`, `GET /api/{type}s/{id}/commits/{rev}`
- upload: `POST /api/{type}s/{id}/preupload/{rev}` ("lfs" for binary, >10 MB or `.gitattributes`-matched files),
  `POST /{prefix}{id}.git/info/lfs/objects/batch` (basic transfer), `PUT` of the blob to the LFS storage host
  (sha256 checked), `POST /api/{type}s/{id}/commit/{rev}` (NDJSON: `header`, `file`, `lfsFile`, `deletedFile`,
  `deletedFolder`; a new commit sha per commit; `parentCommit` checked)
- download: `GET|HEAD /{prefix}{id}/resolve/{rev}/{path}`: regular files are served with `ETag` (git blob sha1),
  LFS files answer 302 to the LFS storage host with `X-Linked-Etag` (sha256) and `X-Linked-Size`; both carry
  `X-Repo-Commit`; `Range: bytes=a-b | a- | -n` gives 206 with `Content-Range` (416 past the end)
- `https://datasets-server.<host>/...` (the dataset viewer) answers 404: a fresh repo has no parquet export.

Errors use the Hub's `X-Error-Code` header (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`) so the client
raises its usual exceptions. Anything else (another path, another host, multi-range, `create_pr`) raises
`FakeHubError` naming the method and URL, and is recorded in `FakeHub.unhandled`; the fixture fails the test at
teardown if the list is not empty, so a client that swallows exceptions cannot hide it.

Not implemented: branches other than `main`, tags, pull requests, Xet storage, LFS multipart uploads, pagination
(every listing fits one page), gated repos, repo deletion/moves. The hub lives in the test process: work done in
subprocesses (e.g. `push_to_hub(..., num_proc=4)`) does not reach it.
"""

from __future__ import annotations

import base64
import codecs
import fnmatch
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx2
import pytest
import yaml

ENDPOINT = "https://fake-hub.test"
TOKEN = "hf_fake_token_for_tests"
USER = "fake-user"
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # the Hub stores files above 10 MB in LFS whatever their type
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        *("*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.gz", "*.h5", "*.joblib", "*.msgpack", "*.npy"),
        *("*.npz", "*.onnx", "*.parquet", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.safetensors", "*.tar"),
        *("*.tflite", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*"),
    )
)
_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}  # repo type -> url prefix
_PREFIX_KINDS = {"": "model", "datasets": "dataset", "spaces": "space"}
_REPO = r"(?P<repo_id>[^/]+/[^/]+)"  # raw (percent-encoded) path segments below
_API = rf"^/api/(?P<kind>model|dataset|space)s/{_REPO}"
_GIT = rf"^/(?:(?P<prefix>datasets|spaces)/)?{_REPO}"


class FakeHubError(AssertionError):
    """A request the fake does not implement, or that no real client should send."""


class _Reply(Exception):
    """Raised inside handlers to answer with an HTTP error, as the Hub does."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None, body: dict | None = None
    ) -> None:
        super().__init__(message)
        headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **(headers or {})}
        self.response = httpx2.Response(status, json={"error": message, **(body or {})}, headers=headers)


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob: sha1 of `blob <size>\\0<content>`."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(content: bytes) -> bytes:
    """The git-lfs pointer file committed to git in place of an LFS file."""
    sha = hashlib.sha256(content).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(content)}\n".encode()


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Commit:
    """One commit: the full tree after it, and which of its paths are stored in LFS."""

    sha: str
    title: str
    message: str
    date: datetime
    files: dict[str, bytes]
    lfs_paths: frozenset[str]


@dataclass
class Repo:
    """A repo: its commits and branches (only `main`, which commits move forward)."""

    repo_type: str
    repo_id: str
    private: bool
    created_at: datetime
    commits: list[Commit] = field(default_factory=list)  # oldest first
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> commit sha


class FakeHub:
    """In-memory Hub answering the HTTP requests of `huggingface_hub` and `datasets` (see the module docstring)."""

    def __init__(self, endpoint: str = ENDPOINT) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.host = httpx2.URL(self.endpoint).host
        self.lfs_endpoint = f"https://cdn-lfs.{self.host}"  # another host, like the Hub's signed CDN/S3 urls
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_blobs: dict[str, bytes] = {}  # sha256 hex -> content
        self.log: list[httpx2.Request] = []  # every request, in order (unhandled ones too)
        self.statuses: list[int | None] = []  # the status answered to each of `log` (None: unhandled)
        self.unhandled: list[str] = []
        self.drop_next_download_after: int | None = None  # test hook: cut the next file body after n bytes
        self._lock = threading.RLock()
        self._routes: list[tuple[str, str, re.Pattern[str], Callable[..., httpx2.Response]]] = [
            (self.host, "POST", re.compile(r"^/api/repos/create$"), self._create_repo),
            (self.host, "POST", re.compile(r"^/api/validate-yaml$"), self._validate_yaml),
            (self.host, "GET", re.compile(rf"{_API}(?:/revision/(?P<rev>[^/]+))?$"), self._repo_info),
            (self.host, "GET", re.compile(rf"{_API}/tree/(?P<rest>.+)$"), self._tree),
            (self.host, "POST", re.compile(rf"{_API}/paths-info/(?P<rest>.+)$"), self._paths_info),
            (self.host, "GET", re.compile(rf"{_API}/commits/(?P<rest>.+)$"), self._list_commits),
            (self.host, "POST", re.compile(rf"{_API}/preupload/(?P<rest>.+)$"), self._preupload),
            (self.host, "POST", re.compile(rf"{_API}/commit/(?P<rest>.+)$"), self._commit),
            (self.host, "POST", re.compile(rf"{_GIT}\.git/info/lfs/objects/batch$"), self._lfs_batch),
            (self.host, "GET|HEAD", re.compile(rf"{_GIT}/resolve/(?P<rest>.+)$"), self._resolve),
            (f"cdn-lfs.{self.host}", "PUT", re.compile(r"^/(?P<oid>[0-9a-f]{64})$"), self._lfs_put),
            (f"cdn-lfs.{self.host}", "GET|HEAD", re.compile(r"^/(?P<oid>[0-9a-f]{64})$"), self._lfs_get),
            (f"datasets-server.{self.host}", "GET", re.compile(r"^/.*$"), self._dataset_viewer),
        ]

    # ----- convenience API for tests -------------------------------------------------------------------------

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request seen, in order."""
        return [(r.method, r.url.path) for r in self.log]

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def commits(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        """Commits of a repo, oldest first (the first is the Hub's initial commit)."""
        return list(self.repo(repo_id, repo_type).commits)

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """The full file tree of a repo at a branch or commit sha."""
        return dict(self._resolve_commit(self.repo(repo_id, repo_type), revision).files)

    def client(self) -> httpx2.Client:
        """Client factory for `huggingface_hub.set_client_factory`: the default client, with our transport."""
        from huggingface_hub.utils._http import hf_request_event_hook

        return httpx2.Client(
            transport=httpx2.MockTransport(self.handle),
            event_hooks={"request": [hf_request_event_hook]},
            follow_redirects=True,
            timeout=None,
        )

    def async_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle), follow_redirects=True, timeout=None)

    # ----- dispatch --------------------------------------------------------------------------------------------

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        """Route one request to its endpoint family; unknown requests raise `FakeHubError`."""
        with self._lock:
            self.log.append(request)
            self.statuses.append(None)
            response = self._dispatch(request)
            self.statuses[-1] = response.status_code
            return response

    def _dispatch(self, request: httpx2.Request) -> httpx2.Response:
        raw_path = request.url.raw_path.decode("ascii").split("?", 1)[0]
        for host, methods, pattern, handler in self._routes:
            match = pattern.match(raw_path)
            if request.url.host == host and request.method in methods.split("|") and match:
                try:
                    return handler(request, **match.groupdict())
                except _Reply as reply:
                    return reply.response
        return self._unhandled(request, "no such endpoint in the fake Hub")

    def _unhandled(self, request: httpx2.Request, why: str) -> httpx2.Response:
        message = f"FakeHub cannot answer {request.method} {request.url} ({why})"
        self.unhandled.append(message)
        raise FakeHubError(message)

    def _require_token(self, request: httpx2.Request) -> None:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            raise _Reply(401, "Invalid credentials in Authorization header")

    def _get_repo(self, request: httpx2.Request, repo_type: str, raw_repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, unquote(raw_repo_id)))
        authorized = request.headers.get("authorization") == f"Bearer {TOKEN}"
        if repo is None or (repo.private and not authorized):
            raise _Reply(404, "Repository not found", "RepoNotFound")
        return repo

    def _resolve_commit(self, repo: Repo, revision: str) -> Commit:
        sha = repo.branches.get(revision, revision)
        for commit in repo.commits:
            if commit.sha == sha:
                return commit
        raise _Reply(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    @staticmethod
    def _split_revision(rest: str) -> tuple[str, str]:
        """`main/a%2Fb.txt` -> ("main", "a/b.txt"); `refs/pr/1/x` keeps a special ref's three segments."""
        segments = rest.split("/")
        n = 3 if segments[0] == "refs" else 1
        return unquote("/".join(segments[:n])), unquote("/".join(segments[n:])).strip("/")

    # ----- repos and YAML ----------------------------------------------------------------------------------

    def _create_repo(self, request: httpx2.Request) -> httpx2.Response:
        self._require_token(request)
        body = json.loads(request.content)
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or USER}/{body['name']}"
        url = f"{self.endpoint}/{_PREFIXES[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.repos:
            raise _Reply(409, f"You already created this {repo_type} repo", body={"url": url})
        now = datetime.now(timezone.utc)
        private = body.get("visibility") == "private" or bool(body.get("private"))
        repo = self.repos[(repo_type, repo_id)] = Repo(repo_type, repo_id, private, now)
        self._add_commit(repo, "initial commit", "", {".gitattributes": DEFAULT_GITATTRIBUTES.encode()}, set())
        return httpx2.Response(200, json={"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, request: httpx2.Request) -> httpx2.Response:
        try:
            metadata = _front_matter(json.loads(request.content)["content"])
        except yaml.YAMLError as error:
            return httpx2.Response(400, json={"errors": [{"message": str(error)}], "warnings": []})
        if metadata is not None and not isinstance(metadata, dict):
            return httpx2.Response(400, json={"errors": [{"message": "YAML is not a mapping"}], "warnings": []})
        return httpx2.Response(200, json={"errors": [], "warnings": []})

    # ----- metadata: info, tree, paths-info, commits ----------------------------------------------------------

    def _repo_info(self, request: httpx2.Request, kind: str, repo_id: str, rev: str | None) -> httpx2.Response:
        repo = self._get_repo(request, kind, repo_id)
        commit = self._resolve_commit(repo, unquote(rev or "main"))
        siblings = []
        for path in sorted(commit.files):
            sibling: dict[str, Any] = {"rfilename": path}
            if _flag(request.url.params.get("blobs")):
                entry = self._file_entry(commit, path)
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    lfs = entry["lfs"]
                    sibling["lfs"] = {"size": lfs["size"], "sha256": lfs["oid"], "pointerSize": lfs["pointerSize"]}
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": _iso(repo.created_at),
            "lastModified": _iso(commit.date),
            "cardData": _card_data(commit.files.get("README.md", b"")),
            "siblings": siblings,
        }
        return httpx2.Response(200, json=info)

    def _file_entry(self, commit: Commit, path: str) -> dict[str, Any]:
        content = commit.files[path]
        if path not in commit.lfs_paths:
            return {"type": "file", "oid": git_blob_oid(content), "size": len(content), "path": path}
        pointer = lfs_pointer(content)
        lfs = {"oid": hashlib.sha256(content).hexdigest(), "size": len(content), "pointerSize": len(pointer)}
        return {"type": "file", "oid": git_blob_oid(pointer), "size": len(content), "lfs": lfs, "path": path}

    def _folder_entry(self, commit: Commit, folder: str) -> dict[str, Any]:
        inside = sorted(p for p in commit.files if p.startswith(folder + "/"))
        oid = hashlib.sha1("\n".join(f"{p} {git_blob_oid(commit.files[p])}" for p in inside).encode()).hexdigest()
        return {"type": "directory", "oid": oid, "size": 0, "path": folder}

    def _entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
        is_file = path in commit.files
        entry = self._file_entry(commit, path) if is_file else self._folder_entry(commit, path)
        if expand:
            last = _last_change(repo.commits[: repo.commits.index(commit) + 1], path)
            entry["lastCommit"] = {"id": last.sha, "title": last.title, "date": _iso(last.date)}
        return entry

    def _tree(self, request: httpx2.Request, kind: str, repo_id: str, rest: str) -> httpx2.Response:
        repo = self._get_repo(request, kind, repo_id)
        revision, folder = self._split_revision(rest)
        commit = self._resolve_commit(repo, revision)
        recursive, expand = _flag(request.url.params.get("recursive")), _flag(request.url.params.get("expand"))
        prefix = f"{folder}/" if folder else ""
        below = [p for p in commit.files if p.startswith(prefix)]
        if folder and not below:
            raise _Reply(404, f"{folder} does not exist on {revision}", "EntryNotFound")
        files, folders = set(), set()
        for path in below:
            parts = path[len(prefix) :].split("/")
            if recursive:  # every file below, and every folder on the way
                files.add(path)
                folders.update(prefix + "/".join(parts[:i]) for i in range(1, len(parts)))
            else:  # direct children only
                (files if len(parts) == 1 else folders).add(prefix + parts[0])
        entries = [self._entry(repo, commit, p, expand) for p in sorted(folders)]
        entries += [self._entry(repo, commit, p, expand) for p in sorted(files)]
        return httpx2.Response(200, json=entries)

    def _paths_info(self, request: httpx2.Request, kind: str, repo_id: str, rest: str) -> httpx2.Response:
        repo = self._get_repo(request, kind, repo_id)
        commit = self._resolve_commit(repo, self._split_revision(rest)[0])
        form = parse_qs(request.content.decode())
        expand = _flag(form.get("expand", [""])[0])
        entries = []
        for path in (p.strip("/") for p in form.get("paths", [])):
            if path in commit.files or any(p.startswith(path + "/") for p in commit.files):
                entries.append(self._entry(repo, commit, path, expand))
        return httpx2.Response(200, json=entries)

    def _list_commits(self, request: httpx2.Request, kind: str, repo_id: str, rest: str) -> httpx2.Response:
        repo = self._get_repo(request, kind, repo_id)
        head = self._resolve_commit(repo, self._split_revision(rest)[0])
        history = reversed(repo.commits[: repo.commits.index(head) + 1])  # newest first
        author = [{"user": USER}]
        commits = [
            {"id": c.sha, "title": c.title, "message": c.message, "date": _iso(c.date), "authors": author}
            for c in history
        ]
        return httpx2.Response(200, json=commits)

    # ----- upload: preupload, LFS batch + storage, commit ---------------------------------------------------

    def _preupload(self, request: httpx2.Request, kind: str, repo_id: str, rest: str) -> httpx2.Response:
        self._require_token(request)
        repo = self._get_repo(request, kind, repo_id)
        if "create_pr" in request.url.params:
            return self._unhandled(request, "pull requests are not implemented")
        head = self._resolve_commit(repo, self._split_revision(rest)[0])
        lfs_patterns = _lfs_patterns(head.files.get(".gitattributes", b""))
        replies = []
        for file in json.loads(request.content)["files"]:
            path, sample = file["path"], base64.b64decode(file["sample"])
            is_text = b"\0" not in sample and _is_utf8_prefix(sample)
            matched = any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) for pattern in lfs_patterns)
            lfs = matched or not is_text or file["size"] > LFS_SIZE_THRESHOLD
            oid = None
            if path in head.files:  # what the client compares with its local oid to skip unchanged files
                content = head.files[path]
                oid = hashlib.sha256(content).hexdigest() if path in head.lfs_paths else git_blob_oid(content)
            replies.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        return httpx2.Response(200, json={"files": replies, "commitOid": head.sha})

    def _lfs_batch(self, request: httpx2.Request, repo_id: str, prefix: str | None) -> httpx2.Response:
        self._require_token(request)
        self._get_repo(request, _PREFIX_KINDS[prefix or ""], repo_id)
        body = json.loads(request.content)
        if body.get("operation") != "upload":
            return self._unhandled(request, "only LFS uploads are implemented")
        objects = []
        for obj in body["objects"]:
            reply: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_blobs:  # no "actions" means: already stored, skip the upload
                reply["actions"] = {"upload": {"href": f"{self.lfs_endpoint}/{obj['oid']}", "expires_in": 3600}}
            objects.append(reply)
        return httpx2.Response(200, json={"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_put(self, request: httpx2.Request, oid: str) -> httpx2.Response:
        if hashlib.sha256(request.content).hexdigest() != oid:
            raise _Reply(400, f"LFS upload content does not match its sha256 {oid}")
        self.lfs_blobs[oid] = request.content
        return httpx2.Response(200, headers={"ETag": f'"{hashlib.md5(request.content).hexdigest()}"'})

    def _lfs_get(self, request: httpx2.Request, oid: str) -> httpx2.Response:
        if oid not in self.lfs_blobs:
            raise _Reply(404, f"No LFS object {oid}")
        return self._serve_bytes(request, self.lfs_blobs[oid], {"ETag": f'"{oid}"'})

    def _commit(self, request: httpx2.Request, kind: str, repo_id: str, rest: str) -> httpx2.Response:
        self._require_token(request)
        repo = self._get_repo(request, kind, repo_id)
        if "create_pr" in request.url.params:
            return self._unhandled(request, "pull requests are not implemented")
        branch = self._split_revision(rest)[0]
        if branch not in repo.branches:
            raise _Reply(404, f"Invalid rev id: {branch} (commits go to an existing branch)", "RevisionNotFound")
        head = self._resolve_commit(repo, branch)
        files, lfs_paths = dict(head.files), set(head.lfs_paths)
        header: dict[str, Any] = {}
        for line in request.content.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
                if value.get("parentCommit") not in (None, head.sha):
                    raise _Reply(412, f"A commit has happened since {value['parentCommit']}: head is {head.sha}")
            elif key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
                lfs_paths.discard(value["path"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs_blobs:
                    raise _Reply(422, f"LFS object {value['oid']} for {value['path']} was never uploaded")
                files[value["path"]] = self.lfs_blobs[value["oid"]]
                lfs_paths.add(value["path"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise _Reply(404, f"A file with this name doesn't exist: {value['path']}", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(folder)]:
                    del files[path]
            else:
                return self._unhandled(request, f"unknown commit operation {key!r}")
        commit = self._add_commit(repo, header.get("summary", ""), header.get("description", ""), files, lfs_paths)
        url = f"{self.endpoint}/{_PREFIXES[repo.repo_type]}{repo.repo_id}/commit/{commit.sha}"
        return httpx2.Response(200, json={"success": True, "commitOid": commit.sha, "commitUrl": url})

    def _add_commit(self, repo: Repo, title: str, message: str, files: dict[str, bytes], lfs: set[str]) -> Commit:
        parent = repo.commits[-1].sha if repo.commits else ""
        tree = sorted((path, git_blob_oid(content)) for path, content in files.items())
        seed = json.dumps([repo.repo_type, repo.repo_id, parent, len(repo.commits), title, message, tree])
        sha, now = hashlib.sha1(seed.encode()).hexdigest(), datetime.now(timezone.utc)
        commit = Commit(sha, title, message, now, files, frozenset(lfs & files.keys()))
        repo.commits.append(commit)
        repo.branches["main"] = commit.sha
        return commit

    # ----- download --------------------------------------------------------------------------------------------

    def _resolve(self, request: httpx2.Request, repo_id: str, prefix: str | None, rest: str) -> httpx2.Response:
        repo = self._get_repo(request, _PREFIX_KINDS[prefix or ""], repo_id)
        revision, path = self._split_revision(rest)
        commit = self._resolve_commit(repo, revision)
        if path not in commit.files:
            raise _Reply(404, f"Entry not found: {path}", "EntryNotFound", headers={"X-Repo-Commit": commit.sha})
        content = commit.files[path]
        entry = self._file_entry(commit, path)
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{entry["oid"]}"'}
        if path in commit.lfs_paths:  # redirect to the storage host, metadata on the redirect itself
            sha256 = entry["lfs"]["oid"]
            headers |= {"X-Linked-Etag": f'"{sha256}"', "X-Linked-Size": str(len(content))}
            return httpx2.Response(302, headers={**headers, "Location": f"{self.lfs_endpoint}/{sha256}"})
        return self._serve_bytes(request, content, headers)

    def _serve_bytes(self, request: httpx2.Request, content: bytes, headers: dict[str, str]) -> httpx2.Response:
        """Answer GET/HEAD for `content`, honouring a single `Range` (206/416) as S3 and the Hub do."""
        headers = {**headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        status, body = 200, content
        if range_header := request.headers.get("range"):
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not match or not any(match.groups()):
                return self._unhandled(request, f"only a single byte range is implemented, got {range_header!r}")
            first, last = match.groups()
            start = int(first) if first else max(len(content) - int(last), 0)
            end = min(int(last), len(content) - 1) if first and last else len(content) - 1
            if start >= len(content) or start > end:
                return httpx2.Response(416, headers={**headers, "Content-Range": f"bytes */{len(content)}"})
            status, body = 206, content[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        headers["Content-Length"] = str(len(body))
        if request.method == "HEAD":
            return httpx2.Response(status, headers=headers)
        if self.drop_next_download_after is not None:  # simulate a connection lost mid-body
            kept, self.drop_next_download_after = body[: self.drop_next_download_after], None
            return httpx2.Response(status, headers=headers, stream=_DroppedStream(kept))
        return httpx2.Response(status, headers=headers, content=body)

    def _dataset_viewer(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, json={"error": "The fake Hub has no dataset viewer (no parquet export)."})


class _DroppedStream(httpx2.SyncByteStream):
    """A response body that breaks after `kept` bytes, as a dropped connection does."""

    def __init__(self, kept: bytes) -> None:
        self.kept = kept

    def __iter__(self) -> Iterator[bytes]:
        yield self.kept
        raise httpx2.RemoteProtocolError("FakeHub dropped the connection (drop_next_download_after)")


def _last_change(history: list[Commit], path: str) -> Commit:
    """The newest commit of `history` that changed the file or folder at `path`."""

    def state(commit: Commit) -> list[tuple[str, bytes]]:
        return sorted((p, c) for p, c in commit.files.items() if p == path or p.startswith(path + "/"))

    for i in range(len(history) - 1, 0, -1):
        if state(history[i - 1]) != state(history[i]):
            return history[i]
    return history[0]


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def _front_matter(readme: str) -> Any:
    """The YAML metadata block of a README (None without one); raises `yaml.YAMLError` if it is invalid."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", readme, re.DOTALL)
    return yaml.safe_load(match.group(1)) if match else None


def _card_data(readme: bytes) -> dict[str, Any] | None:
    try:
        metadata = _front_matter(readme.decode(errors="replace"))
    except yaml.YAMLError:
        return None
    return metadata if isinstance(metadata, dict) else None


def _lfs_patterns(gitattributes: bytes) -> list[str]:
    lines = gitattributes.decode(errors="replace").splitlines()
    return [line.split()[0] for line in lines if "filter=lfs" in line.split()[1:]]


def _is_utf8_prefix(sample: bytes) -> bool:
    """Whether `sample` (the first 512 bytes of a file) is UTF-8, allowing a character cut at the end."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return True
    except UnicodeDecodeError:
        return False


@contextmanager
def serving(hub: FakeHub, tmp_path: Path) -> Iterator[FakeHub]:
    """Make the real clients talk to `hub`, with every cache under `tmp_path`; undo it all on exit.

    Environment: `HF_ENDPOINT`, `HF_TOKEN` (a dummy token), `HF_HUB_DISABLE_XET=1` (uploads use plain LFS),
    `HF_HUB_DISABLE_TELEMETRY=1`, `HF_HOME`/`HF_HUB_CACHE`/`HF_DATASETS_CACHE` in `tmp_path`, offline flags unset.

    Setting env variables is not enough: `huggingface_hub.constants`, `datasets.config` and
    `transformers.utils.hub` read them at import time, so the matching module constants are patched too
    (endpoint, url templates, Hub hosts, cache folders, token path, offline, Xet and download-count flags). Shared
    `HfApi` objects keep the endpoint they were built with: the one behind `huggingface_hub.create_repo`,
    `upload_folder`, ... is repointed, and transformers' lazily built `transformers.utils.hub._hf_api` is reset.
    The modules are imported *before* anything is patched so that their import-time values stay the user's.
    `huggingface_hub.utils._http._HUB_ORIGINS` is left alone: the fake endpoint is same-origin with itself, and
    its LFS storage host must stay a non-Hub host, as the Hub's CDN is. The HTTP client factories are swapped
    and restored (which closes our client), and fsspec's cached `HfFileSystem` instances (with their directory
    listings) are dropped on entry and exit so that no listing outlives its hub.
    """
    import datasets.config
    import huggingface_hub
    import huggingface_hub.hf_api
    import transformers.utils.hub
    from huggingface_hub import HfFileSystem, constants
    from huggingface_hub.utils import _http

    home, hub_cache, datasets_cache = tmp_path / "hf_home", tmp_path / "hf_hub_cache", tmp_path / "hf_datasets_cache"
    env = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_TOKEN": TOKEN,
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(hub_cache),
        "HF_DATASETS_CACHE": str(datasets_cache),
    }
    patches: dict[Any, dict[str, Any]] = {
        constants: {
            "ENDPOINT": hub.endpoint,
            "HUGGINGFACE_CO_URL_TEMPLATE": hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_URL_HOSTS": constants.HF_URL_HOSTS | {hub.host},
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(hub_cache),
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HF_XET_CACHE": str(home / "xet"),
            "HF_TOKEN_PATH": str(home / "token"),
            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
            "HF_HUB_OFFLINE": False,
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_DISABLE_TELEMETRY": True,
        },
        datasets.config: {
            "HF_ENDPOINT": hub.endpoint,
            "HUB_DATASETS_URL": hub.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_CACHE_HOME": str(home),
            "HF_DATASETS_CACHE": datasets_cache,
            "HF_MODULES_CACHE": home / "modules",
            "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
            "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
            "HF_UPDATE_DOWNLOAD_COUNTS": False,  # else a HEAD to s3.amazonaws.com on every load_dataset
        },
        # `HfApi` objects keep the endpoint they were made with: the one behind `huggingface_hub.create_repo`,
        # `upload_folder`, ... is repointed; transformers' shared one is dropped (it makes a new one on demand)
        huggingface_hub.hf_api.api: {"endpoint": hub.endpoint},
        transformers.utils.hub: {"HF_MODULES_CACHE": str(home / "modules"), "_hf_api": None},
    }
    previous_factory, previous_async_factory = _http._GLOBAL_CLIENT_FACTORY, _http._GLOBAL_ASYNC_CLIENT_FACTORY
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_OIDC_RESOURCE"):
            monkeypatch.delenv(name, raising=False)
        for module, values in patches.items():
            for name, value in values.items():
                monkeypatch.setattr(module, name, value)
        HfFileSystem.clear_instance_cache()
        huggingface_hub.set_client_factory(hub.client)
        huggingface_hub.set_async_client_factory(hub.async_client)
        try:
            yield hub
        finally:
            huggingface_hub.set_client_factory(previous_factory)
            huggingface_hub.set_async_client_factory(previous_async_factory)
            HfFileSystem.clear_instance_cache()


@pytest.fixture
def fake_hub(tmp_path: Path) -> Iterator[FakeHub]:
    """A fresh `FakeHub` served to the real clients for one test (see `serving`).

    Fails the test at teardown if the hub saw a request it does not implement, even if a client swallowed it.
    """
    hub = FakeHub()
    with serving(hub, tmp_path):
        yield hub
    if hub.unhandled:
        pytest.fail("FakeHub saw requests it does not implement:\n" + "\n".join(hub.unhandled), pytrace=False)
