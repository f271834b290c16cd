"""Round trips through `FakeHub` with the real `huggingface_hub`, `datasets` and `transformers` clients."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.fake_hub import ENDPOINT, FakeHub, FakeHubError, serving

TEXT = b"hello world\n"
BINARY = bytes(range(256)) * 40  # 10 KiB with NUL bytes: the Hub stores it in LFS


def _write_folder(folder: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return folder


def _read_folder(folder: str | Path) -> dict[str, bytes]:
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _upload_text_and_binary(tmp_path: Path, repo_id: str = "org/files") -> None:
    from huggingface_hub import create_repo, upload_folder  # bound to a module-level `HfApi()`

    create_repo(repo_id)
    folder = _write_folder(tmp_path / "upload", {"notes.txt": TEXT, "blobs/data.bin": BINARY})
    upload_folder(repo_id=repo_id, folder_path=folder, commit_message="add files")


def test_upload_folder_then_snapshot_download_is_byte_identical(fake_hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import HfApi, snapshot_download

    _upload_text_and_binary(tmp_path)

    head = fake_hub.commits("org/files")[-1]
    assert head.title == "add files"
    assert head.lfs_paths == {"blobs/data.bin"}  # preupload said "lfs", then LFS batch + PUT of the blob
    assert ("PUT", "/" + hashlib.sha256(BINARY).hexdigest()) in fake_hub.requests
    downloaded = _read_folder(snapshot_download("org/files"))
    assert downloaded == fake_hub.files("org/files")
    assert downloaded["notes.txt"] == TEXT
    assert downloaded["blobs/data.bin"] == BINARY
    assert sorted(HfApi().list_repo_files("org/files")) == [".gitattributes", "blobs/data.bin", "notes.txt"]


def test_changed_upload_makes_a_new_commit_and_old_shas_stay_readable(fake_hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    _upload_text_and_binary(tmp_path)
    first = fake_hub.commits("org/files")[-1].sha
    assert Path(hf_hub_download("org/files", "notes.txt", cache_dir=tmp_path / "c1")).read_bytes() == TEXT

    info = HfApi().upload_file(path_or_fileobj=b"changed\n", path_in_repo="notes.txt", repo_id="org/files")

    shas = [c.sha for c in fake_hub.commits("org/files")]
    assert len(shas) == 3 and len(set(shas)) == 3  # initial commit, first upload, this one
    assert info.oid == shas[-1] == HfApi().model_info("org/files").sha
    assert Path(hf_hub_download("org/files", "notes.txt", cache_dir=tmp_path / "c1")).read_bytes() == b"changed\n"
    old = _read_folder(snapshot_download("org/files", revision=first, cache_dir=tmp_path / "c2"))
    assert old["notes.txt"] == TEXT and old["blobs/data.bin"] == BINARY


def test_hf_hub_download_resumes_a_dropped_download_with_a_range_request(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants, hf_hub_download

    _upload_text_and_binary(tmp_path)
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 512)  # the client writes whole chunks only (10 MB)
    fake_hub.drop_next_download_after = 1024

    path = hf_hub_download("org/files", "blobs/data.bin")

    assert Path(path).read_bytes() == BINARY
    resumed = [
        (r.headers["range"], status)
        for r, status in zip(fake_hub.log, fake_hub.statuses, strict=True)
        if "range" in r.headers
    ]
    assert resumed == [("bytes=1024-", 206)]  # only the missing bytes were sent again


def test_ranges_are_served_for_regular_and_lfs_files(fake_hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import HfFileSystem, hf_hub_url
    from huggingface_hub.utils import get_session

    _upload_text_and_binary(tmp_path)
    with HfFileSystem().open("org/files/blobs/data.bin", "rb") as f:  # fsspec reads blocks with Range
        f.seek(3000)
        assert f.read(100) == BINARY[3000:3100]
    served = [
        (r.url.host, status) for r, status in zip(fake_hub.log, fake_hub.statuses, strict=True) if "range" in r.headers
    ]
    assert set(served) == {("fake-hub.test", 302), ("cdn-lfs.fake-hub.test", 206)}  # LFS redirect, then a part

    url = hf_hub_url("org/files", "notes.txt")
    suffix = get_session().get(url, headers={"Range": "bytes=-6"})
    assert (suffix.status_code, suffix.content, suffix.headers["Content-Range"]) == (206, b"world\n", "bytes 6-11/12")
    assert get_session().get(url, headers={"Range": "bytes=12-"}).status_code == 416


def test_create_repo_conflicts_unless_exist_ok(fake_hub: FakeHub) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    url = api.create_repo("org/dup")
    assert url == f"{ENDPOINT}/org/dup"
    with pytest.raises(HfHubHTTPError) as raised:
        api.create_repo("org/dup")
    assert raised.value.response.status_code == 409
    assert api.create_repo("org/dup", exist_ok=True) == url
    assert len(fake_hub.commits("org/dup")) == 1  # the second create did not reset the repo


def test_existence_checks_deletion_and_repo_types(fake_hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    api = HfApi()
    _upload_text_and_binary(tmp_path)
    api.create_repo("org/files", repo_type="dataset", private=True)

    assert api.repo_exists("org/files") and api.repo_exists("org/files", repo_type="dataset")
    assert not api.repo_exists("org/missing")
    assert fake_hub.repo("org/files", "dataset").private
    assert not HfApi(token=False).repo_exists("org/files", repo_type="dataset")  # private: hidden without a token
    assert api.file_exists("org/files", "blobs/data.bin")
    assert not api.file_exists("org/files", "notes.txt", repo_type="dataset")  # same id, other repo type

    api.delete_file("notes.txt", repo_id="org/files")

    assert not api.file_exists("org/files", "notes.txt")
    assert "notes.txt" in fake_hub.files("org/files", revision=fake_hub.commits("org/files")[-2].sha)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/files", "notes.txt")
    top = {(entry.path, type(entry).__name__) for entry in api.list_repo_tree("org/files")}
    assert top == {(".gitattributes", "RepoFile"), ("blobs", "RepoFolder")}
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("org/files", path_in_repo="no/such/folder"))


def test_metadata_endpoints_describe_files_folders_and_history(fake_hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    _upload_text_and_binary(tmp_path)
    notes = api.get_paths_info("org/files", "notes.txt")[0]
    assert notes.blob_id == "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"  # `git hash-object` of "hello world\n"
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="notes.txt", repo_id="org/files", commit_message="edit notes")

    history = api.list_repo_commits("org/files")
    assert [c.title for c in history] == ["edit notes", "add files", "initial commit"]
    assert [c.commit_id for c in history] == [c.sha for c in reversed(fake_hub.commits("org/files"))]
    tree = {e.path: e for e in api.list_repo_tree("org/files", recursive=True, expand=True)}
    assert {path: e.last_commit.title for path, e in tree.items()} == {
        ".gitattributes": "initial commit",
        "blobs": "add files",
        "blobs/data.bin": "add files",
        "notes.txt": "edit notes",
    }
    assert (tree["blobs/data.bin"].lfs.sha256, tree["blobs/data.bin"].size) == (
        hashlib.sha256(BINARY).hexdigest(),
        len(BINARY),
    )
    paths = api.get_paths_info("org/files", ["notes.txt", "blobs", "missing.txt"])
    assert [(type(p).__name__, p.path) for p in paths] == [("RepoFile", "notes.txt"), ("RepoFolder", "blobs")]
    siblings = {s.rfilename: s for s in api.model_info("org/files", files_metadata=True).siblings}
    assert (siblings["notes.txt"].size, siblings["notes.txt"].lfs) == (2, None)
    assert siblings["blobs/data.bin"].lfs.size == len(BINARY)

    api.delete_folder("blobs", repo_id="org/files")
    assert sorted(fake_hub.files("org/files")) == [".gitattributes", "notes.txt"]
    with pytest.raises(HfHubHTTPError) as raised:  # someone committed since `parent_commit`
        stale = history[0].commit_id
        api.create_commit("org/files", [CommitOperationAdd("x.txt", b"x")], commit_message="x", parent_commit=stale)
    assert raised.value.response.status_code == 412


def test_unimplemented_requests_and_other_hosts_fail_loudly(fake_hub: FakeHub) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.utils import get_session

    HfApi().create_repo("org/x")
    with pytest.raises(FakeHubError, match=r"POST https://fake-hub\.test/api/models/org/x/branch/dev"):
        HfApi().create_branch("org/x", branch="dev")
    with pytest.raises(FakeHubError, match=r"GET https://example\.com/"):
        get_session().get("https://example.com/")
    assert len(fake_hub.unhandled) == 2
    fake_hub.unhandled.clear()  # expected here; otherwise the fixture fails the test at teardown


def test_datasets_push_two_configs_then_load_each(fake_hub: FakeHub) -> None:
    import datasets

    counting = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"prompt": ["how many cups?", "how many plates?"], "answer": [2, 5]}),
            "test": datasets.Dataset.from_dict({"prompt": ["how many forks?"], "answer": [3]}),
        }
    )
    plans = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"goal": ["make tea"], "plan": ["[walk] x"]})})

    counting.push_to_hub("e2wm/experiences", config_name="counting")
    plans.push_to_hub("e2wm/experiences", config_name="plan_generation")

    files = fake_hub.files("e2wm/experiences", repo_type="dataset")
    assert any(p.startswith("counting/train-") and p.endswith(".parquet") for p in files)
    assert datasets.get_dataset_config_names("e2wm/experiences") == ["counting", "plan_generation"]
    loaded = datasets.load_dataset("e2wm/experiences", "counting")
    assert {split: loaded[split].to_list() for split in loaded} == {s: counting[s].to_list() for s in counting}
    loaded_plans = datasets.load_dataset("e2wm/experiences", "plan_generation")
    assert loaded_plans["train"].to_list() == plans["train"].to_list()


def test_transformers_push_to_hub_then_from_pretrained_gives_identical_weights(fake_hub: FakeHub) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))

    model.push_to_hub("org/tiny")
    loaded = GPT2LMHeadModel.from_pretrained("org/tiny")

    assert "model.safetensors" in fake_hub.commits("org/tiny")[-1].lfs_paths
    expected, actual = model.state_dict(), loaded.state_dict()
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


def test_only_fake_hosts_are_ever_contacted(fake_hub: FakeHub, tmp_path: Path) -> None:
    import datasets
    from huggingface_hub import snapshot_download

    _upload_text_and_binary(tmp_path)
    snapshot_download("org/files")
    datasets.Dataset.from_dict({"x": [1]}).push_to_hub("org/ds")
    datasets.load_dataset("org/ds")

    hosts = {r.url.host for r in fake_hub.log}
    assert hosts <= {"fake-hub.test", "cdn-lfs.fake-hub.test", "datasets-server.fake-hub.test"}
    assert os.environ["HF_ENDPOINT"] == ENDPOINT


def test_serving_restores_client_factory_constants_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets.config
    import transformers.utils.hub
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)  # so that this test leaves none behind either
    transformers_api = transformers.utils.hub.hf_api()  # built before the fake, as by an earlier test

    def global_state() -> tuple:
        return (
            _http._GLOBAL_CLIENT_FACTORY,
            _http._GLOBAL_ASYNC_CLIENT_FACTORY,
            hf_api.api.endpoint,
            transformers.utils.hub.hf_api(),
            constants.ENDPOINT,
            constants.HF_HUB_CACHE,
            datasets.config.HF_ENDPOINT,
            datasets.config.HF_DATASETS_CACHE,
            os.environ.get("HF_ENDPOINT"),
            os.environ.get("HF_TOKEN"),
        )

    before = global_state()
    with serving(FakeHub(), tmp_path):
        endpoints = {constants.ENDPOINT, datasets.config.HF_ENDPOINT, hf_api.api.endpoint}
        assert endpoints | {transformers.utils.hub.hf_api().endpoint} == {ENDPOINT}
        assert _http.get_session().get(f"{ENDPOINT}/api/models/org/none").status_code == 404
    assert global_state() == before
    assert transformers.utils.hub.hf_api() is transformers_api
    assert _http._GLOBAL_CLIENT is None  # our client was closed; the next get_session() uses the user's factory
