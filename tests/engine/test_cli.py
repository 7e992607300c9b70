"""The headless CLI: JSON shapes, and one clear line with a non-zero status for every bad input."""

import json
import subprocess
import sys

import pytest
import torch

from llmtui import __version__
from llmtui.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("llmtui: error: ")
    assert "Traceback" not in err
    for w in words:
        assert w.lower() in lines[0].lower(), lines[0]


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "llmtui.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"llmtui {__version__}"
    out = subprocess.run([sys.executable, "-m", "llmtui.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("tokenize", "generate", "neighbours", "attention"):
        assert command in out.stdout


def test_tokenize_json(tiny_hf_llama_dir, capsys):
    code, out, _ = run_cli(capsys, "tokenize", "hello world", "--model", str(tiny_hf_llama_dir), "--json")
    assert code == 0
    data = json.loads(out)
    assert "".join(t["text"] for t in data["tokens"]) == "hello world"
    assert all(isinstance(t["id"], int) for t in data["tokens"])


def test_generate_json_shape(tiny_hf_gpt2_dir, capsys):
    code, out, _ = run_cli(capsys, "generate", "hello", "--model", str(tiny_hf_gpt2_dir), "--max-new-tokens", "4",
                           "--seed", "7", "--top-k", "5", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["seed"] == 7 and len(data["steps"]) == 4
    for step in data["steps"]:
        cands = step["candidates"]
        assert len(cands) >= 10
        assert {"id", "text", "raw_prob", "prob", "cut_by"} <= set(cands[0])
        assert sum(c["cut_by"] is None for c in cands) <= 5  # top-k 5 leaves at most five drawable
        assert step["token"]["id"] in [c["id"] for c in cands]


def test_generate_same_seed_same_text(tiny_hf_gpt2_dir, capsys):
    args = ["generate", "hello", "--model", str(tiny_hf_gpt2_dir), "--max-new-tokens", "8", "--seed", "3",
            "--temperature", "1.5", "--json"]
    first = json.loads(run_cli(capsys, *args)[1])
    second = json.loads(run_cli(capsys, *args)[1])
    assert first["text"] == second["text"]


def test_neighbours_and_attention_json(tiny_hf_llama_dir, capsys):
    code, out, _ = run_cli(capsys, "tokenize", "hello", "--model", str(tiny_hf_llama_dir), "--json")
    token = json.loads(out)["tokens"][0]["text"]
    code, out, _ = run_cli(capsys, "neighbours", token, "--model", str(tiny_hf_llama_dir), "-k", "5", "--json")
    assert code == 0
    sims = [n["similarity"] for n in json.loads(out)["neighbours"]]
    assert len(sims) == 5 and sims == sorted(sims, reverse=True)
    code, out, _ = run_cli(capsys, "attention", "hello world", "--model", str(tiny_hf_llama_dir),
                           "--layer", "1", "--head", "0", "--json")
    data = json.loads(out)
    n = len(data["tokens"])
    assert len(data["weights"]) == n and all(abs(sum(row) - 1) < 1e-5 for row in data["weights"])
    assert all(data["weights"][i][j] == 0 for i in range(n) for j in range(i + 1, n))


def test_unknown_model_name(capsys):
    code, _, err = run_cli(capsys, "tokenize", "hi", "--model", "no-such-model")
    assert_one_line_error(code, err, "no-such-model")


def test_missing_and_corrupt_model_files(tmp_path, capsys):
    code, _, err = run_cli(capsys, "tokenize", "hi", "--model", str(tmp_path / "missing.gguf"))
    assert_one_line_error(code, err, "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00\xff" * 50)
    code, _, err = run_cli(capsys, "tokenize", "hi", "--model", str(bad))
    assert_one_line_error(code, err, "bad.gguf")


def test_truncated_gguf(default_model_path, tmp_path, capsys):
    cut = tmp_path / "cut.gguf"
    with open(default_model_path, "rb") as f:
        cut.write_bytes(f.read(5_000_000))
    code, _, err = run_cli(capsys, "generate", "hi", "--model", str(cut))
    assert_one_line_error(code, err, "cut.gguf")


def test_empty_prompt_and_over_long_prompt(tiny_hf_gpt2_dir, capsys):
    code, _, err = run_cli(capsys, "generate", "  ", "--model", str(tiny_hf_gpt2_dir))
    assert_one_line_error(code, err, "empty")
    code, _, err = run_cli(capsys, "generate", "hello " * 2000, "--model", str(tiny_hf_gpt2_dir))
    assert_one_line_error(code, err, "context window")


def test_bad_knobs_and_layers(tiny_hf_gpt2_dir, capsys):
    code, _, err = run_cli(capsys, "generate", "hi", "--model", str(tiny_hf_gpt2_dir), "--top-p", "2")
    assert_one_line_error(code, err, "top-p")
    code, _, err = run_cli(capsys, "attention", "hi", "--model", str(tiny_hf_gpt2_dir), "--layer", "99")
    assert_one_line_error(code, err, "--layer")


def test_cuda_without_a_gpu(tiny_hf_gpt2_dir, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the message is for machines without one")
    code, _, err = run_cli(capsys, "tokenize", "hi", "--model", str(tiny_hf_gpt2_dir), "--device", "cuda")
    assert_one_line_error(code, err, "cuda", "--device cpu")


def test_model_output_with_escapes_is_printed_literally(tiny_hf_gpt2_dir, capsys):
    code, out, _ = run_cli(capsys, "tokenize", "a\x1b[31mb\rc", "--model", str(tiny_hf_gpt2_dir))
    assert code == 0
    assert "\x1b" not in out and "\r" not in out
    assert "\\x1b" in out


def test_serve_answers_http_on_localhost_then_stops(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llmtui.cli", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    page = response.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "llmtui serve did not answer within 60 s"
                time.sleep(0.5)
        assert response.status == 200 and "llmtui" in page
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode is not None


def test_compare_json_has_the_numbers_of_the_study(tiny_hf_gpt2_dir, tiny_hf_llama_dir, capsys):
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.sampling import SamplingSettings
    from llmtui.engine.studies.compare import Comparison, Side

    code, out, _ = run_cli(capsys, "compare", "hello", "--model", str(tiny_hf_gpt2_dir), "--a", "temperature=1",
                           "--b", "temperature=2 top-k=20", "--max-new-tokens", "5", "--seed", "3", "--json")
    assert code == 0
    data = json.loads(out)
    lm = LanguageModel.load(str(tiny_hf_gpt2_dir))
    base = SamplingSettings(max_new_tokens=5, seed=3)
    study = Comparison(lm.encode("hello"), Side(lm, base.with_(temperature=1)),
                       Side(lm, base.with_(temperature=2, top_k=20)))
    list(study)
    assert data["mode"] == "same-text" and data["b"]["settings"]["top_k"] == 20
    assert [p["kl"] for p in data["positions"]] == [p.to_json()["kl"] for p in study.positions]
    assert data["summary"] == study.summary().to_json()
    # Two models sharing a tokenizer, each side on its own.
    code, out, _ = run_cli(capsys, "compare", "hello", "--model", str(tiny_hf_gpt2_dir), "--b",
                           f"model={tiny_hf_llama_dir}", "--max-new-tokens", "3", "--mode", "free", "--seed", "1",
                           "--json")
    data = json.loads(out)
    assert code == 0 and data["a"]["model"] != data["b"]["model"] and len(data["positions"]) == 3


def test_compare_text_table_and_bad_sides(tiny_hf_gpt2_dir, capsys):
    code, out, _ = run_cli(capsys, "compare", "hello", "--model", str(tiny_hf_gpt2_dir), "--b", "temperature=0",
                           "--max-new-tokens", "3", "--seed", "2")
    assert code == 0 and "KL(A||B)" in out and "top-1 differs at" in out and "temperature=0.0" in out
    for side, words in (("tempreature=1", ["unknown knob"]), ("temperature=-1", ["temperature"]),
                        ("top-k=lots", ["top_k"]), ("banned=99999", ["outside", "vocabulary"])):
        code, _, err = run_cli(capsys, "compare", "hello", "--model", str(tiny_hf_gpt2_dir), "--b", side)
        assert_one_line_error(code, err, *words)


def test_generate_stop_strings_and_new_knobs(tiny_hf_gpt2_dir, capsys):
    args = ("generate", "hello", "--model", str(tiny_hf_gpt2_dir), "--temperature", "0", "--max-new-tokens", "20")
    code, out, _ = run_cli(capsys, *args, "--json")
    greedy = json.loads(out)
    full, first = greedy["text"], greedy["steps"][0]["token"]["id"]
    stop = full[4:6]
    code, out, err = run_cli(capsys, *args, "--stop", stop)
    assert code == 0 and out == full[: full.find(stop)] + "\n" and "stop string" in err
    code, out, _ = run_cli(capsys, *args, "--ban", str(first), "--frequency-penalty", "1.5", "--presence-penalty",
                           "0.5", "--typical-p", "0.9", "--top-n-sigma", "2", "--logit-bias", "5:1.5", "--json")
    data = json.loads(out)
    assert code == 0 and data["steps"][0]["token"]["id"] != first
    assert data["steps"][0]["candidates"][[c["id"] for c in data["steps"][0]["candidates"]].index(first)]["cut_by"] == "banned"
    assert data["settings"]["logit_bias"] == [[5, 1.5]] and data["settings"]["typical_p"] == 0.9
    for extra, words in ((["--logit-bias", "5"], ["logit_bias"]), (["--frequency-penalty", "3"], ["frequency"]),
                         (["--stop", ""], ["stop string"]), (["--system", "x"], ["--chat"])):
        code, _, err = run_cli(capsys, *args, *extra)
        assert_one_line_error(code, err, *words)


def test_generate_chat_with_a_system_prompt(tiny_hf_llama_dir, capsys):
    code, out, _ = run_cli(capsys, "generate", "hi", "--model", str(tiny_hf_llama_dir), "--chat", "--system",
                           "Be brief.", "--max-new-tokens", "2", "--json")
    from llmtui.engine.lm import LanguageModel

    lm = LanguageModel.load(str(tiny_hf_llama_dir))
    expected = lm.encode_chat("hi", [{"role": "system", "content": "Be brief."}])
    assert code == 0 and json.loads(out)["prompt_ids"] == expected


@pytest.mark.parametrize("query", ["dog", "king - man + woman", '" dog"'])
def test_neighbours_take_the_panes_queries_and_give_its_numbers(tiny_hf_llama_dir, capsys, query):
    """Bug 7: the CLI looked up bare "dog" (the pane: " dog") and refused king - man + woman."""
    from llmtui.app.panes.embeddings.view import LIST_SIZE, QueryRequest, compute_answer
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.studies.embeddings import EmbeddingIndex

    code, out, err = run_cli(capsys, "neighbours", query, "--model", str(tiny_hf_llama_dir), "-k", str(LIST_SIZE), "--json")
    assert code == 0, err
    data = json.loads(out)
    lm = LanguageModel.load(str(tiny_hf_llama_dir))
    request = QueryRequest(query, leading_space=True, hide_inputs=True, choice=None, map_neighbours=0,
                           submitted=True, record=False)
    answer = compute_answer(lm.tokenizer, EmbeddingIndex.of(lm), request)
    assert [(n["id"], n["similarity"]) for n in data["neighbours"]] == [(r.key, r.similarity) for r in answer.rows]
    assert [t["ids"] for t in data["terms"]] == [list(t.ids) for t in answer.query.terms]
    if query == "dog":
        assert data["terms"][0]["text"] == " dog"
        code, out, _ = run_cli(capsys, "neighbours", query, "--model", str(tiny_hf_llama_dir), "--no-leading-space", "--json")
        assert json.loads(out)["terms"][0]["text"] == "dog"


def test_neighbours_of_several_words_say_what_to_give(tiny_hf_llama_dir, capsys):
    code, _, err = run_cli(capsys, "neighbours", "cat dog banana", "--model", str(tiny_hf_llama_dir))
    assert code == 1 and len(err.strip().splitlines()) == 1 and "expression" in err


def test_prompts_run_with_bos_where_the_tokenizer_adds_one(tiny_hf_llama_bos_dir, capsys):
    """generate and attention run the model on what transformers' tokenizer(text) gives (BOS first, from
    tokenizer.json's post-processor, as Llama 3's); tokenize shows the text's own tokens only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = str(tiny_hf_llama_bos_dir)
    expected = AutoTokenizer.from_pretrained(folder)("The capital of France is")["input_ids"]
    bos = expected[0]
    greedy = ["--max-new-tokens", "1", "--temperature", "0", "--json"]
    data = json.loads(run_cli(capsys, "generate", "The capital of France is", "--model", folder, *greedy)[1])
    assert data["prompt_ids"] == expected
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(torch.tensor([expected])).logits[0, -1]
    assert data["steps"][0]["token"]["id"] == int(logits.argmax())
    data = json.loads(run_cli(capsys, "attention", "The capital of France is", "--model", folder,
                              "--layer", "0", "--head", "0", "--json")[1])
    assert [t["id"] for t in data["tokens"]] == expected
    data = json.loads(run_cli(capsys, "tokenize", "The capital of France is", "--model", folder, "--json")[1])
    assert [t["id"] for t in data["tokens"]] == expected[1:] and bos not in expected[1:]


def test_model_b_reaches_the_app_and_serve_and_compare_mode_stays_its_own():
    from llmtui.cli import app_command, build_parser

    args = build_parser().parse_args(["--model-b", "gpt2", "--pane", "generate"])
    assert args.model_b == "gpt2" and "--model-b gpt2" in app_command(args)
    served = build_parser().parse_args(["serve", "--model-b", "/a path/m.gguf"])
    assert "'/a path/m.gguf'" in app_command(served)
    # --mode after the subcommand is compare's, not an abbreviation of --model or --model-b
    assert build_parser().parse_args(["compare", "hi", "--mode", "free"]).mode == "free"
