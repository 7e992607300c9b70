"""The real default model (SmolLM2-135M-Instruct, Q4_1 GGUF): it knows the capital of France."""

import json

import pytest

from llmtui.cli import main
from llmtui.engine.generation import GenerationSession
from llmtui.engine.sampling import SamplingSettings

pytestmark = pytest.mark.default_model

GREEDY = SamplingSettings(temperature=0, max_new_tokens=24)


def test_default_model_shape(default_lm):
    c = default_lm.config
    assert (c.family, c.vocab_size, c.n_layer, c.d_model, c.n_head, c.n_kv_head) == ("llama", 49152, 30, 576, 9, 3)
    assert 134_000_000 < default_lm.n_params < 136_000_000


def test_greedy_next_token_after_the_capital_of_france_is_paris(default_lm):
    ids = default_lm.prompt_ids("The capital of France is")
    assert ids == default_lm.encode("The capital of France is")  # SmolLM2 runs without BOS, as in transformers
    session = GenerationSession(default_lm, ids, GREEDY.with_(max_new_tokens=1))
    step = session.step()
    assert step.text == " Paris"
    assert step.candidates[0].id == step.token_id
    # CONCEPTS.md: about 0.77 with the full-precision weights; the 4-bit file is close to it.
    assert 0.6 < step.raw_prob < 0.9


def test_chat_answers_paris(default_lm):
    ids = default_lm.encode_chat("What is the capital of France?")
    text = "".join(s.text for s in GenerationSession(default_lm, ids, GREEDY.with_(max_new_tokens=40)))
    assert "Paris" in text


def test_chat_prompt_is_the_template_and_user_text_stays_plain(default_lm):
    raw = default_lm.chat_prompt("Say <|im_end|> please")
    assert raw.startswith("<|im_start|>system\n") and raw.endswith("<|im_start|>assistant\n")
    ids = default_lm.encode_chat("Say <|im_end|> please")
    assert default_lm.tokenizer.decode(ids) == raw
    im_end = default_lm.tokenizer.special_ids["<|im_end|>"]
    # The template closes the system and user turns (2 specials); the user's typed text adds none.
    assert ids.count(im_end) == 2


def test_cli_generate_json_matches_the_engine(default_lm, capsys):
    assert main(["generate", "The capital of France is", "--temperature", "0", "--max-new-tokens", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    session = GenerationSession(default_lm, default_lm.prompt_ids("The capital of France is"), GREEDY.with_(max_new_tokens=5))
    steps = list(session)
    assert [s["token"]["id"] for s in out["steps"]] == [s.token_id for s in steps]
    assert out["steps"][0]["token"]["text"] == " Paris"
    assert out["text"] == session.text
    first = out["steps"][0]["candidates"]
    assert len(first) == 10 and first[0]["raw_prob"] == pytest.approx(steps[0].raw_prob, abs=1e-6)


def test_same_seed_same_text(default_lm):
    settings = SamplingSettings(temperature=1.2, top_p=0.95, max_new_tokens=20, seed=1234)
    ids = default_lm.encode("Once upon a time")
    first = GenerationSession(default_lm, ids, settings)
    second = GenerationSession(default_lm, ids, settings)
    assert [s.token_id for s in first] == [s.token_id for s in second]


def test_fork_what_if_it_had_said_london(default_lm):
    session = GenerationSession(default_lm, default_lm.encode("The capital of France is"), GREEDY.with_(max_new_tokens=6))
    list(session)
    london = default_lm.encode(" London")
    assert len(london) == 1
    step = session.fork(0, london[0])
    assert step.forced and step.text == " London" and step.prob == 0.0  # greedy would never draw it
    assert session.text == " London"
    list(session)
    assert session.text.startswith(" London") and len(session.steps) == 6
    # The continuation equals a fresh greedy run on the forked text.
    fresh = GenerationSession(default_lm, default_lm.encode("The capital of France is") + london, GREEDY.with_(max_new_tokens=5))
    assert [s.token_id for s in session.steps[1:]] == [s.token_id for s in fresh]
