"""Compare on a served model (tests/fake_server.py): exact KL where the knobs cut the tail, bounds where they don't."""

from __future__ import annotations

import json
import math

import pytest

from fake_server import MODEL, MODEL_B, SCRIPT, char_logprob, fake_server
from llmtui.engine.errors import RemoteError
from llmtui.engine.remote.client import RemoteModel
from llmtui.engine.remote.comparison import RemoteComparison
from llmtui.engine.remote.endpoint import Endpoint
from llmtui.engine.settings import SamplingSettings

PROMPT = "The capital of France is"


def compare(url: str, a: SamplingSettings, b: SamplingSettings, mode: str = "same-text", model_b: str | None = None):
    model = RemoteModel.connect(Endpoint.parse(url))
    other = RemoteModel.connect(Endpoint.parse(url, model_b)) if model_b else model
    comparison = RemoteComparison(PROMPT, (model, a), (other, b), mode=mode, top_n=4)
    comparison.run()
    return comparison


def top_k_distribution(logprobs: list[float], k: int) -> list[float]:
    kept = [math.exp(v) for v in logprobs[:k]]
    return [p / sum(kept) for p in kept] + [0.0] * (len(logprobs) - k)


def test_same_text_with_both_tails_cut_gives_the_exact_kl():
    with fake_server() as srv:
        c = compare(srv.url, SamplingSettings(temperature=1, top_k=2), SamplingSettings(temperature=1, top_k=3))
        completions = [p for p, _, _ in srv.requests if p == "/v1/completions"]
    assert len(completions) == 1  # B reads A's listed raw candidates under its own knobs: no request of its own
    assert [p.b.text for p in c.positions] == [p.a.text for p in c.positions] and len(c.positions) == len(SCRIPT)
    for position, (_, top) in zip(c.positions, SCRIPT):
        logprobs = [v for _, v in top]
        pa, pb = top_k_distribution(logprobs, 2), top_k_distribution(logprobs, 3)
        expected = sum(x * math.log(x / y) for x, y in zip(pa, pb) if x > 0)
        assert position.divergence.kind == "value"
        assert position.divergence.kl == pytest.approx(expected)
        assert position.divergence.tv == pytest.approx(0.5 * sum(abs(x - y) for x, y in zip(pa, pb)))
    assert "exact at 4 of 4" in c.describe() and "lower bound" not in c.describe()


def test_b_cutting_what_a_may_draw_is_infinite():
    with fake_server() as srv:
        c = compare(srv.url, SamplingSettings(temperature=1, top_k=3), SamplingSettings(temperature=1, top_k=1))
    assert all(p.divergence.kl == math.inf and p.divergence.exact for p in c.positions)
    assert c.summary()["infinite_kl_positions"] == [0, 1, 2, 3] and "infinite at 4" in c.describe()
    json.dumps(c.to_json(), allow_nan=False)  # infinity is written as null with kl_infinite


def test_a_side_with_nothing_outside_the_shared_tokens_keeps_kl_exact():
    """A keeps the raw tail (its mass known); B's top-k keeps only listed tokens: KL(A||B) is infinite, TV exact."""
    with fake_server() as srv:
        c = compare(srv.url, SamplingSettings(temperature=1), SamplingSettings(temperature=1, top_k=4))
    for position, (_, top) in zip(c.positions, SCRIPT):
        raw = [math.exp(v) for _, v in top]
        pb = [p / sum(raw) for p in raw]
        assert position.divergence.kind == "value" and position.divergence.kl == math.inf
        assert position.divergence.tv == pytest.approx(0.5 * (sum(abs(x - y) for x, y in zip(raw, pb)) + 1 - sum(raw)))


def test_two_unknown_tails_make_kl_a_lower_bound():
    """Both sides draw from raw distributions with unlisted tails: the tails are lumped, the KL is a lower bound."""
    with fake_server(fault="two-models") as srv:
        c = compare(srv.url, SamplingSettings(temperature=1), SamplingSettings(temperature=1), model_b=MODEL_B)
    first = c.positions[0]
    pa, pb = math.exp(SCRIPT[0][1][0][1]), math.exp(char_logprob(" Paris"))  # the only token both list
    expected = pa * math.log(pa / pb) + (1 - pa) * math.log((1 - pa) / (1 - pb))
    assert first.divergence.kind == "lower bound" and first.divergence.kl == pytest.approx(expected)
    assert "a lower bound at 4" in c.describe()
    with fake_server() as srv:
        c = compare(srv.url, SamplingSettings(temperature=1), SamplingSettings(temperature=1), mode="free")
    assert all(p.divergence.kind == "lower bound" and p.divergence.kl == pytest.approx(0, abs=1e-12)
               for p in c.positions)


def test_knobs_that_leave_the_probabilities_open_give_no_number():
    with fake_server() as srv:
        c = compare(srv.url, SamplingSettings(temperature=0.5), SamplingSettings(temperature=1))
    assert all(p.divergence.kind == "unknown" and p.divergence.kl is None for p in c.positions)
    assert "unknown at 4" in c.describe()


def test_free_mode_streams_each_side_with_its_knobs_and_one_seed():
    with fake_server() as srv:
        c = compare(srv.url, SamplingSettings(temperature=0.7, seed=5), SamplingSettings(temperature=1.3), mode="free")
        bodies = [b for p, _, b in srv.requests if p == "/v1/completions"]
    assert [(b["temperature"], b["seed"]) for b in bodies] == [(0.7, 5), (1.3, 5)]
    assert c.text_b == c.session_a.text == "".join(t for t, _ in SCRIPT)


def test_another_served_model_scores_as_text_for_b():
    with fake_server(fault="two-models") as srv:
        c = compare(srv.url, SamplingSettings(temperature=0), SamplingSettings(temperature=1, top_k=2), model_b=MODEL_B)
        scoring = [b for p, _, b in srv.requests if p == "/v1/completions" and b.get("echo")]
    assert len(scoring) == 1 and scoring[0]["model"] == MODEL_B and scoring[0]["prompt"] == PROMPT + c.session_a.text
    assert [p.b.text for p in c.positions] == [t for t, _ in SCRIPT]
    assert all(p.divergence.kind == "value" for p in c.positions)  # greedy A and top-k B: both known in full
    assert c.model_a.model == MODEL


def test_cli_compare_on_an_endpoint(capsys):
    from llmtui.cli import main

    with fake_server() as srv:
        assert main(["compare", PROMPT, "--endpoint", srv.url, "--a", "temperature=1", "--b", "temperature=1",
                     "--mode", "free", "--top", "4"]) == 0
        out = capsys.readouterr().out
        assert "≥" in out and "lower bound at 4" in out and srv.url in out
        assert main(["compare", PROMPT, "--endpoint", srv.url, "--a", "temperature=1 top-k=2",
                     "--b", "temperature=1 top-k=3", "--top", "4", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
    assert data["summary"]["kl_values"] == 4 and {p["divergence"] for p in data["positions"]} == {"value"}


def test_chat_mode_compares_two_chat_replies_and_refuses_same_text_across_models():
    with fake_server(fault="two-models") as srv:
        model = RemoteModel.connect(Endpoint.parse(srv.url))
        c = RemoteComparison(PROMPT, (model, SamplingSettings(temperature=0)), (model, SamplingSettings(temperature=1)),
                             mode="free", top_n=4, chat=True)
        c.run()
        assert {p for p, _, _ in srv.requests if "completions" in p} == {"/v1/chat/completions"}
        assert c.text_b == c.session_a.text == "".join(t for t, _ in SCRIPT)
        other = RemoteModel.connect(Endpoint.parse(srv.url, MODEL_B))
        with pytest.raises(RemoteError, match="needs a plain prompt"):
            RemoteComparison(PROMPT, (model, SamplingSettings()), (other, SamplingSettings()), chat=True)


# -- what the app's Compare and branch tree ask of it: faults keep what came, branches compared as received --


def test_a_stream_dropped_midway_keeps_the_positions_received():
    with fake_server("drop") as srv:
        model = RemoteModel.connect(Endpoint.parse(srv.url))
        c = RemoteComparison(PROMPT, (model, SamplingSettings(temperature=1, top_k=2)),
                             (model, SamplingSettings(temperature=1, top_k=3)), top_n=4)
        with pytest.raises(RemoteError, match="kept 2 tokens"):
            c.run()
    # the two tokens that came before the drop, B's view of each read from A's listed candidates
    assert [p.a.text for p in c.positions] == [t for t, _ in SCRIPT[:2]] == [p.b.text for p in c.positions]
    assert all(p.divergence.kind == "value" for p in c.positions)


def test_progress_is_reported_per_token_and_stop_ends_the_stream_early():
    import threading

    with fake_server() as srv:
        model = RemoteModel.connect(Endpoint.parse(srv.url))
        stop, seen = threading.Event(), []

        def progress(side: str, n: int) -> None:
            seen.append((side, n))
            if n == 2:
                stop.set()

        c = RemoteComparison(PROMPT, (model, SamplingSettings(temperature=1)), (model, SamplingSettings(temperature=1)),
                             mode="free", top_n=4)
        c.run(progress, stop)
        assert len([p for p, _, _ in srv.requests if p == "/v1/completions"]) == 1  # B was not started
    assert seen == [("A", 1), ("A", 2)] and [p.b for p in c.positions] == [None, None]


def test_two_branches_are_compared_from_where_they_part_as_received():
    from llmtui.engine.remote.comparison import compare_branches
    from llmtui.engine.remote.session import RemoteSession

    with fake_server() as srv:
        model = RemoteModel.connect(Endpoint.parse(srv.url))
        session = RemoteSession(model, PROMPT, SamplingSettings(temperature=1, top_k=3), top_n=4)
        a = list(session.stream())
        fork = next(c for c in a[1].candidates if c.text == ",")
        session.fork(1, fork)
        b = list(session.steps)
        requests = len(srv.requests)
        shared, positions = compare_branches(a, b)
        assert len(srv.requests) == requests  # nothing re-asked: the tables as received
    assert shared == 1 and [p.index for p in positions] == [1, 2, 3]
    assert positions[0].a.text == "." and positions[0].b.text == ","
    # at the fork both read one context under the same knobs: the same distribution, exactly
    assert positions[0].divergence.kind == "value" and positions[0].divergence.kl == pytest.approx(0)
    assert positions[1].b is None and positions[1].divergence.kind == "unknown"  # B ends at the fork
    with pytest.raises(ValueError, match="same text"):
        compare_branches(a, a)


def test_a_served_tree_matches_steps_by_text_not_by_stand_in_ids():
    from dataclasses import replace

    from llmtui.engine.remote.branches import ServedBranchTree
    from llmtui.engine.remote.session import RemoteSession

    with fake_server() as srv:
        model = RemoteModel.connect(Endpoint.parse(srv.url))
        steps = list(RemoteSession(model, PROMPT, SamplingSettings(temperature=1), top_n=4).stream())
    tree = ServedBranchTree(PROMPT, model=model.name)
    first = tree.add(steps)
    # the same text with other stand-in ids (a server without ids numbers them per step): one branch still
    assert tree.add([replace(s, token_id=s.token_id - 7) for s in steps]) == first and len(tree.leaves()) == 1
    tree.add([*steps[:2], replace(steps[2], text=" The")])
    assert len(tree.leaves()) == 2 and [b.text for b in tree.branches()] == [" Paris. It is", " Paris. The"]
    assert tree.to_json()["prompt"] == PROMPT and tree.grows_from(PROMPT, chat=False)
    assert not tree.grows_from(PROMPT, chat=True)


def test_a_served_tree_round_trips_through_json_and_each_kind_refuses_the_other(tmp_path):
    from llmtui.engine.branches import BranchTree
    from llmtui.engine.remote.branches import ServedBranchTree
    from llmtui.engine.remote.session import RemoteSession

    with fake_server() as srv:
        model = RemoteModel.connect(Endpoint.parse(srv.url))
        session = RemoteSession(model, PROMPT, SamplingSettings(temperature=2.0, top_p=0.5), top_n=4)
        steps = list(session.stream())
    assert any(c.prob is None for s in steps for c in s.candidates)  # undecided rows: None must survive the file
    tree = ServedBranchTree(PROMPT, model=model.name)
    tree.add(steps)
    tree.save(tmp_path / "served.json")
    loaded = ServedBranchTree.load(tmp_path / "served.json", lambda ids: "")
    assert isinstance(loaded, ServedBranchTree) and loaded.prompt == PROMPT and loaded.model == model.name
    back = loaded.steps(loaded.current)
    assert [s.text for s in back] == [s.text for s in steps] and [s.unlisted for s in back] == [s.unlisted for s in steps]
    assert [[(c.text, c.raw_prob, c.prob, c.cut_by) for c in s.candidates] for s in back] == \
        [[(c.text, c.raw_prob, c.prob, c.cut_by) for c in s.candidates] for s in steps]
    assert all(s.token_id == next(c.id for c in s.candidates if c.text == s.text) for s in back)  # stand-ins agree
    with pytest.raises(ValueError, match="served model"):
        BranchTree.load(tmp_path / "served.json", lambda ids: "")
    local = BranchTree([1, 2], lambda ids: "x", model="tiny")
    local.save(tmp_path / "local.json")
    with pytest.raises(ValueError, match="local model"):
        ServedBranchTree.load(tmp_path / "local.json", lambda ids: "")


def test_a_served_tree_keeps_a_typed_text_the_server_could_not_score_through_json(tmp_path):
    """RemoteSession.append_unscored's step (no probability, no candidates) is saved and loaded as it was."""
    import math

    from llmtui.engine.remote.branches import ServedBranchTree
    from llmtui.engine.remote.session import RemoteSession

    with fake_server(fault="no-scoring") as srv:
        model = RemoteModel.connect(Endpoint.parse(srv.url))
        session = RemoteSession(model, PROMPT, SamplingSettings(), top_n=4)
        list(session.stream())
        session.append_unscored(", a city", at=1)
    tree = ServedBranchTree(PROMPT, model=model.name)
    tree.add(session.steps)
    tree.save(tmp_path / "served.json")
    back = ServedBranchTree.load(tmp_path / "served.json", lambda ids: "").steps(tree.current)
    assert [s.text for s in back] == [" Paris", ", a city"] and math.isnan(back[1].raw_prob) and back[1].candidates == ()
