"""The Fisher artifact: save/load round trip, every validation error, normalisations, sources, the CLI, the Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from e2wm.cli import main
from e2wm.ewc import (
    DocumentSourceError,
    FisherError,
    FisherFormatError,
    FisherMismatchError,
    TextSource,
    estimate_fisher,
    iter_documents,
    load_fisher,
    normalize_fisher,
    save_fisher,
)
from e2wm.ewc.layers import model_identity
from tests.tiny import tiny_gpt2, tiny_llama

TARGETS = ["q_proj", "v_proj"]


@pytest.fixture(scope="module")
def llama(llama_folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(llama_folder).eval()


@pytest.fixture(scope="module")
def estimate(llama, tok, docs):
    return estimate_fisher(llama, tok, docs[:6], target_modules=TARGETS, max_length=32, batch_size=3)


def metadata_for(model, estimate, **extra):
    identity = model_identity(model, [k.removesuffix(".weight") for k in estimate.tensors])
    return {"base_model": identity["base_model_name_or_path"], **identity, "estimator": "empirical",
            "num_docs": estimate.num_docs, "num_skipped_docs": 0, "num_tokens": estimate.num_tokens,
            "num_predicted_tokens": estimate.num_predicted_tokens, "max_length": 32, "source": {"path": "x.txt"},
            "seed": 0, "normalization": "none", "target_modules": TARGETS, "e2wm_version": "test", **extra}  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory, llama, estimate) -> Path:
    folder = tmp_path_factory.mktemp("fisher") / "fisher"
    return save_fisher(folder, estimate.tensors, metadata_for(llama, estimate))


def write_fisher(path: Path, tensors, metadata) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path / "fisher.safetensors"), metadata={"e2wm_fisher": json.dumps(metadata)})
    return path


# ------------------------------------------------------------------------------------------- round trip
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_save_load_round_trip(tmp_path, llama, estimate, dtype):
    folder = save_fisher(tmp_path / "out", estimate.tensors, metadata_for(llama, estimate), dtype=dtype)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "fisher.json", "fisher.safetensors"]
    fisher = load_fisher(folder, llama)
    assert list(fisher) == list(estimate.tensors)
    for key, tensor in estimate.tensors.items():
        assert fisher[key].dtype == getattr(torch, dtype)
        torch.testing.assert_close(fisher[key].float(), tensor, rtol=0 if dtype == "float32" else 1e-2, atol=0)
    with safe_open(str(folder / "fisher.safetensors"), framework="pt") as handle:
        header = json.loads(handle.metadata()["e2wm_fisher"])
    assert header == json.loads((folder / "fisher.json").read_text()) == fisher.metadata
    assert header["dtype"] == dtype and header["format"] == "e2wm-fisher" and header["base_content_hash"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: e2wm\n") and "mean-token NLL" in card and "model.layers.0" in card


def test_save_refuses_fp16_and_existing_folders(tmp_path, llama, estimate, saved):
    meta = metadata_for(llama, estimate)
    with pytest.raises(FisherError, match="never float16"):
        save_fisher(tmp_path / "f16", estimate.tensors, meta, dtype="float16")
    assert not (tmp_path / "f16").exists()
    with pytest.raises(FisherError, match="already exists"):
        save_fisher(saved, estimate.tensors, meta)
    save_fisher(saved, estimate.tensors, {**meta, "seed": 5}, overwrite=True)
    assert json.loads((saved / "fisher.json").read_text())["seed"] == 5
    assert [p.name for p in saved.parent.iterdir()] == ["fisher"]  # no temporary folder left behind


def test_load_fits_the_peft_wrapped_and_4bit_models(saved, llama_folder, llama_4bit):
    import copy

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from e2wm.ewc import ewc_penalty

    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(llama_folder), LoraConfig(target_modules=TARGETS))
    assert ewc_penalty(peft, load_fisher(saved, peft)).item() == 0.0  # B starts at zero
    qlora = get_peft_model(copy.deepcopy(llama_4bit), LoraConfig(target_modules=TARGETS))
    assert len(load_fisher(saved, qlora)) == 4  # no content hash for 4-bit: the model id decides


# ------------------------------------------------------------------------------------------- validation
def test_load_rejects_damaged_values(tmp_path, llama, estimate):
    meta = metadata_for(llama, estimate)
    key = "model.layers.0.self_attn.q_proj.weight"
    for name, value, message in [
        ("nan", float("nan"), "1 NaN or infinite"),
        ("inf", float("inf"), "1 NaN or infinite"),
        ("negative", -1.0, "negative values"),
    ]:
        tensors = {k: t.clone() for k, t in estimate.tensors.items()}
        tensors[key][3, 5] = value
        with pytest.raises(FisherFormatError, match=rf"{key}.*{message}"):
            load_fisher(write_fisher(tmp_path / name, tensors, meta), llama)
    fp16 = {k: t.half() for k, t in estimate.tensors.items()}
    with pytest.raises(FisherFormatError, match="float16"):
        load_fisher(write_fisher(tmp_path / "fp16", fp16, meta), llama)


def test_load_rejects_files_that_are_not_an_e2wm_fisher(tmp_path, llama, estimate):
    (tmp_path / "plain").mkdir()
    save_file(estimate.tensors, str(tmp_path / "plain" / "fisher.safetensors"))
    with pytest.raises(FisherFormatError, match="not an e2wm Fisher"):
        load_fisher(tmp_path / "plain", llama)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "fisher.safetensors").write_bytes(b"\x80\x02pickle?")
    with pytest.raises(FisherFormatError, match="not a safetensors file"):
        load_fisher(tmp_path / "junk", llama)
    with pytest.raises(FisherFormatError, match="no Fisher at"):
        load_fisher(tmp_path / "absent", llama)


def test_load_names_missing_modules_and_wrong_shapes(tmp_path, llama, estimate, llama_folder):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    meta = metadata_for(llama, estimate)
    extra = {**estimate.tensors, "model.layers.7.self_attn.q_proj.weight": torch.ones(64, 64)}
    with pytest.raises(FisherMismatchError, match=r"entry for 'model\.layers\.7\.self_attn\.q_proj\.weight'.*no such"):
        load_fisher(write_fisher(tmp_path / "extra", extra, meta), llama)
    wrong = {**estimate.tensors, "model.layers.0.self_attn.v_proj.weight": torch.ones(64, 64)}
    with pytest.raises(FisherMismatchError, match=r"v_proj\.weight' has shape \(64, 64\).*\(32, 64\)"):
        load_fisher(write_fisher(tmp_path / "wrong", wrong, meta), llama)
    only_q = {k: t for k, t in estimate.tensors.items() if "q_proj" in k}
    peft = get_peft_model(AutoModelForCausalLM.from_pretrained(llama_folder), LoraConfig(target_modules=TARGETS))
    with pytest.raises(
        FisherMismatchError,
        match=r"no entry for 'model\.layers\.0\.self_attn\.v_proj\.weight' \(estimated for .*tiny-llama; this model",
    ):
        load_fisher(write_fisher(tmp_path / "only_q", only_q, meta), peft)


def test_load_rejects_a_fisher_of_another_base_model(tmp_path, saved, tok, llama_4bit):
    other = tiny_llama(tok, seed=1)  # same architecture and names, other weights
    with pytest.raises(FisherMismatchError, match="different base model: its weights differ"):
        load_fisher(saved, other)
    assert len(load_fisher(saved, other, check_base=False)) == 4
    meta = json.loads((saved / "fisher.json").read_text())
    tensors = {k: v for k, v in load_fisher(saved, other, check_base=False).items()}
    renamed = write_fisher(
        tmp_path / "renamed", tensors, {**meta, "base_model": "org/other", "base_model_name_or_path": "org/other"}
    )
    with pytest.raises(FisherMismatchError, match=r"estimated for org/other; this model is .*tiny-llama"):
        load_fisher(renamed, llama_4bit)  # quantized: no content hash, so the names must agree


# ------------------------------------------------------------------------------------------- normalization
def test_normalizations(estimate):
    tensors = estimate.tensors
    for key, f in normalize_fisher(tensors, "mean").items():
        assert f.mean().item() == pytest.approx(1.0, rel=1e-6) and torch.allclose(f * tensors[key].mean(), tensors[key])
    for f in normalize_fisher(tensors, "max").values():
        assert f.max().item() == 1.0
    assert all(torch.equal(a, tensors[k]) for k, a in normalize_fisher(tensors, "none").items())
    for key, f in normalize_fisher(tensors, "paper_int8", estimate.layouts).items():
        assert torch.equal(f, f.round()) and (f.amax(dim=1) == 127).all()  # rows of (out, in)
        assert torch.equal(
            f, torch.round(tensors[key].double() * 127 / tensors[key].double().amax(1, keepdim=True)).float()
        )
    with pytest.raises(FisherError, match="normalization must be one of none, global_mean, mean, max, paper_int8"):
        normalize_fisher(tensors, "l2")


def test_paper_int8_scales_conv1d_weights_per_output(tok, docs):
    est = estimate_fisher(tiny_gpt2(tok), tok, docs[:2], target_modules=["c_attn"], max_length=16)
    for f in normalize_fisher(est.tensors, "paper_int8", est.layouts).values():  # Conv1D: (in, out)
        assert (f.amax(dim=0) == 127).all()


# ------------------------------------------------------------------------------------------- sources
def test_local_sources_are_drawn_with_the_seed(tmp_path):
    txt = tmp_path / "docs.txt"
    txt.write_text("one\n\ntwo\nthree\nfour\n \nfive\n")
    all_five = list(iter_documents(TextSource(str(txt)), 5, seed=1))
    assert sorted(all_five) == ["five", "four", "one", "three", "two"]  # blank lines are not documents
    assert list(iter_documents(TextSource(str(txt)), 3, seed=1)) == all_five[:3]  # a prefix: resumable
    assert list(iter_documents(TextSource(str(txt)), 5, seed=2)) != all_five
    with pytest.raises(DocumentSourceError, match=r"has 5 documents; --num-docs asked for 6 \(use --num-docs 5"):
        list(iter_documents(TextSource(str(txt)), 6, seed=1))
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text('{"body": "alpha"}\n{"body": "beta"}\n')
    assert sorted(iter_documents(TextSource(str(jsonl), field="body"), 2, seed=0)) == ["alpha", "beta"]
    with pytest.raises(DocumentSourceError, match=r"docs\.jsonl:1: no field 'text' \(fields: body\).*--text-field"):
        list(iter_documents(TextSource(str(jsonl)), 2, seed=0))


def test_datasets_sources_are_streamed(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    rows = [{"content": f"document {i}"} for i in range(30)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    drawn = list(iter_documents(TextSource(str(folder), field="content"), 30, seed=0))
    assert sorted(drawn) == sorted(r["content"] for r in rows) and drawn != [r["content"] for r in rows]
    with pytest.raises(DocumentSourceError, match="has only 30 non-empty documents"):
        list(iter_documents(TextSource(str(folder), field="content"), 31, seed=0))
    with pytest.raises(DocumentSourceError, match="cannot load the dataset"):
        list(iter_documents(TextSource(str(tmp_path / "nothing-here")), 1, seed=0))


# ------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def corpus(tmp_path, docs) -> Path:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    return path


def cli(llama_folder, corpus, out, *extra):
    return main(["fisher", "--model", str(llama_folder), "--target-modules", "q_proj,v_proj", "--text", str(corpus),
                 "--num-docs", "12", "--max-length", "32", "--batch-size", "4", "--out", str(out), "--quiet", *extra])  # fmt: skip


def test_cli_writes_a_fisher_that_loads(tmp_path, llama_folder, corpus, llama, tok, capsys):
    assert cli(llama_folder, corpus, tmp_path / "out", "--normalization", "mean", "--dtype", "bfloat16") == 0
    assert "Fisher (empirical, 12 documents" in capsys.readouterr().out
    fisher = load_fisher(tmp_path / "out", llama)
    meta = fisher.metadata
    assert (meta["num_docs"], meta["max_length"], meta["normalization"], meta["dtype"]) == (12, 32, "mean", "bfloat16")
    assert meta["source"] == {"path": str(corpus), "field": "text"} and meta["base_model"] == str(llama_folder)
    drawn = list(iter_documents(TextSource(str(corpus)), 12, seed=0))
    expected = normalize_fisher(
        estimate_fisher(llama, tok, drawn, target_modules=TARGETS, max_length=32).tensors, "mean"
    )
    for key, tensor in expected.items():
        torch.testing.assert_close(fisher[key].float(), tensor, rtol=1e-2, atol=1e-3)
    assert not (tmp_path / "out.partial").exists()


def test_cli_resumes_after_a_kill(tmp_path, llama_folder, corpus, monkeypatch):
    import e2wm.ewc.build as build

    real = build.iter_documents

    def dies_after_8(*args, **kwargs):
        for index, doc in enumerate(real(*args, **kwargs)):
            if index == 8:
                raise KeyboardInterrupt
            yield doc

    monkeypatch.setattr(build, "iter_documents", dies_after_8)
    assert cli(llama_folder, corpus, tmp_path / "out", "--checkpoint-every", "4", "--batch-size", "1") == 130
    assert not (tmp_path / "out").exists() and (tmp_path / "out.partial" / "checkpoint.safetensors").exists()
    monkeypatch.setattr(build, "iter_documents", real)
    assert cli(llama_folder, corpus, tmp_path / "out", "--checkpoint-every", "4", "--batch-size", "1") == 0
    assert cli(llama_folder, corpus, tmp_path / "fresh", "--checkpoint-every", "0", "--batch-size", "1") == 0
    resumed, fresh = (safe_open(str(tmp_path / d / "fisher.safetensors"), "pt") for d in ("out", "fresh"))
    for key in fresh.keys():  # noqa: SIM118
        torch.testing.assert_close(resumed.get_tensor(key), fresh.get_tensor(key), rtol=1e-6, atol=0)
    assert not (tmp_path / "out.partial").exists()


def test_cli_reports_bad_input_with_exit_status_2(tmp_path, llama_folder, corpus, capsys):
    (tmp_path / "taken").mkdir()
    cases = [
        (("--num-docs", "99"), "has 24 documents; --num-docs asked for 99"),
        (("--target-modules", "c_attn"), "'c_attn' matches no module"),
        (("--max-length", "1"), "--max-length must be at least 2"),
    ]
    for extra, message in cases:
        assert cli(llama_folder, corpus, tmp_path / "o", *extra) == 2
        assert message in capsys.readouterr().err
    assert cli(llama_folder, corpus, tmp_path / "taken") == 2
    assert "already exists; choose another --out or pass --overwrite" in capsys.readouterr().err
    assert main(["fisher", "--model", str(tmp_path / "no-model"), "--target-modules", "q_proj", "--text", str(corpus),
                 "--num-docs", "1", "--max-length", "8", "--out", str(tmp_path / "o"), "--quiet"]) == 2  # fmt: skip
    assert "no model folder at" in capsys.readouterr().err  # a missing path, not a "bad Hub repo id"
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------- Hub
def test_push_then_load_from_the_hub(tmp_path, llama_folder, corpus, llama, fake_hub):
    hub = fake_hub
    assert cli(llama_folder, corpus, tmp_path / "out", "--push-to-hub", "org/tiny-fisher") == 0
    files = hub.files("org/tiny-fisher")
    assert {"fisher.safetensors", "fisher.json", "README.md"} <= set(files)
    assert files["fisher.safetensors"] == (tmp_path / "out" / "fisher.safetensors").read_bytes()
    fisher = load_fisher("org/tiny-fisher", llama)
    assert len(fisher) == 4 and fisher.metadata["num_docs"] == 12
    with pytest.raises(FisherFormatError, match="no Fisher at org/absent"):
        load_fisher("org/absent", llama)


def test_a_model_with_more_than_ten_layers_round_trips(tmp_path, tok, docs):
    # The file stores weight names in its own (alphabetical) order: layers.10 before layers.2. The base
    # check must not depend on that order (a 12-layer Gemma was refused before this was fixed).
    from tests.tiny import tiny_llama

    deep = tiny_llama(tok, layers=12)
    estimate = estimate_fisher(deep, tok, docs[:2], target_modules=TARGETS, max_length=16, batch_size=2)
    folder = save_fisher(tmp_path / "deep", estimate.tensors, metadata_for(deep, estimate))
    assert len(load_fisher(folder, deep)) == 24
