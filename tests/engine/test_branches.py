"""The branch tree: forks kept, log-probabilities as sums of steps, undo/redo, and sessions saved as JSON."""

import json
import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from llmtui.engine.branches import ROOT, BranchTree
from llmtui.engine.generation import GenerationSession, Step
from llmtui.engine.lm import LanguageModel
from llmtui.engine.sampling import SamplingSettings


@pytest.fixture(scope="module")
def lm(tiny_hf_gpt2_dir):
    return LanguageModel.load(str(tiny_hf_gpt2_dir))


def grown(lm):
    """Generate, fork at step 2, go back to the first branch, fork it at step 4: three branches."""
    session = GenerationSession(lm, lm.encode("hello"), SamplingSettings(temperature=0.9, seed=3, max_new_tokens=6),
                                stop_ids=())  # six tokens each, whatever is drawn
    tree = BranchTree(session.prompt_ids, lm.tokenizer.decode, model=lm.name)
    list(session)
    first = tree.add(session.steps)
    first_ids = session.generated_ids
    session.fork(2, session.steps[2].candidates[4].id)
    list(session)
    second = tree.add(session.steps)
    session.restore(tree.reopen(first))
    assert session.generated_ids == first_ids
    session.fork(4, session.steps[4].candidates[5].id)
    list(session)
    third = tree.add(session.steps)
    return tree, session, (first, second, third)


def test_fork_back_fork_again_keeps_every_branch_reachable_with_summed_logprobs(lm):
    tree, session, (first, second, third) = grown(lm)
    assert len({first, second, third}) == 3 and tree.leaves() == sorted([first, second, third])
    for leaf in (first, second, third):
        branch = tree.branch(leaf)
        assert branch.length == 6
        assert branch.logprob == pytest.approx(sum(math.log(s.raw_prob) for s in branch.steps))
        assert branch.logprob_per_token == pytest.approx(branch.logprob / 6)
        assert branch.text == lm.tokenizer.decode(branch.token_ids)
    # The shared beginnings are stored once: the prompt's child holds the first two tokens.
    assert [len(n.steps) for n in tree.path(second)] == [2, 4]
    assert [len(n.steps) for n in tree.path(third)] == [2, 2, 2]
    assert tree.branch(third).token_ids == session.generated_ids


def test_reopened_branch_continues_exactly_as_a_fresh_run(lm):
    tree, session, (first, _, _) = grown(lm)
    steps = tree.reopen(first)
    session.restore(steps)
    session.settings = session.settings.with_(temperature=0, max_new_tokens=9)
    list(session)
    fresh = GenerationSession(lm, session.prompt_ids + [s.token_id for s in steps],
                              SamplingSettings(temperature=0, max_new_tokens=3))
    assert session.generated_ids[6:] == [s.token_id for s in fresh]
    grown_leaf = tree.add(session.steps)
    assert tree.path(grown_leaf)[-2].id == first  # the continuation hangs from the branch it continued


def test_undo_and_redo_the_last_fork(lm):
    tree, _, (first, second, third) = grown(lm)
    assert tree.current == third
    assert tree.undo() == first  # back where the fork was made
    assert tree.leaves() == [first, second]
    assert tree.redo() == third and tree.leaves() == [first, second, third]
    tree.undo()
    tree.undo()
    assert tree.leaves() == [first]
    assert tree.undo() == ROOT and tree.leaves() == []  # the first generation was a new branch too
    with pytest.raises(ValueError, match="nothing to undo"):
        tree.undo()
    for _ in range(3):
        tree.redo()
    assert tree.leaves() == [first, second, third] and tree.current == third
    assert [b.logprob for b in tree.branches()] == [tree.branch(n).logprob for n in (first, second, third)]
    with pytest.raises(ValueError, match="nothing to redo"):
        tree.redo()


def test_rename_and_delete(lm):
    tree, _, (first, second, third) = grown(lm)
    tree.rename(second, "the odd one")
    assert tree.branch(second).name == "the odd one"
    tree.delete(second)
    assert tree.leaves() == [first, third] and second not in tree.nodes
    with pytest.raises(ValueError, match="root"):
        tree.delete(ROOT)
    with pytest.raises(KeyError):
        tree.branch(second)


def test_a_saved_session_loads_to_the_same_tree(lm, tmp_path):
    tree, _, (first, second, third) = grown(lm)
    tree.rename(third, "prepared for the talk")
    path = tmp_path / "talk.json"
    tree.save(path)
    again = BranchTree.load(path, lm.tokenizer.decode)
    assert again.to_json() == tree.to_json()
    assert [b.text for b in again.branches()] == [b.text for b in tree.branches()]
    assert again.branch(third).steps == tree.branch(third).steps  # candidates and knobs included
    assert again.current == tree.current
    # It grows on as the original would: a new path is added where it leaves the old ones.
    assert again.add(tree.steps(first)) == first


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "can't read"),
        ('{"format": "something else"}', "not an llmtui"),
        ('{"format": "llmtui-branches", "version": 99}', "version"),
        ('{"format": "llmtui-branches", "version": 1, "prompt_ids": [1]}', "incomplete or damaged"),
        ('[1, 2]', "incomplete or damaged"),
    ],
)
def test_a_damaged_session_says_why(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        BranchTree.load(path, lambda ids: "")


def test_the_export_is_plain_json(lm):
    tree, _, _ = grown(lm)
    data = json.loads(json.dumps(tree.to_json()))
    assert len(data["branches"]) == 3 and data["model"] == lm.name


def fake_step(i: int, token: int) -> Step:
    return Step(i, 3 + i, token, str(token), 0.5, 0.25, (), SamplingSettings())


@given(st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=6), min_size=1, max_size=8))
@hsettings(max_examples=150, deadline=None)
def test_any_paths_are_kept_once_and_undo_redo_round_trip(paths):
    tree = BranchTree([1, 2, 3], lambda ids: " ".join(map(str, ids)))
    ends = [tree.add([fake_step(i, t) for i, t in enumerate(p)]) for p in paths]
    for path, end in zip(paths, ends):
        assert tree.branch(end).token_ids == path  # every path added is there, whatever was added after
        assert tree.branch(end).logprob == pytest.approx(len(path) * math.log(0.5))
    leaf_paths = {tuple(b.token_ids) for b in tree.branches()}
    assert leaf_paths == {tuple(p) for p in paths if not any(q[: len(p)] == p and q != p for q in paths)}
    # No run of tokens is stored twice: siblings start with different tokens.
    for node in tree.nodes.values():
        firsts = [tree.nodes[c].steps[0].token_id for c in node.children]
        assert len(firsts) == len(set(firsts))
    saved = tree.to_json()
    undone = 0
    while tree.can_undo:
        tree.undo()
        undone += 1
    # What is left was added without a new node (a prefix of an earlier path): nothing to take back there.
    assert {tuple(b.token_ids) for b in tree.branches()} <= {tuple(p) for p in paths}
    assert all(n.ends or n.id == ROOT or n.children for n in tree.nodes.values())
    for _ in range(undone):
        tree.redo()
    assert {tuple(b.token_ids) for b in tree.branches()} == leaf_paths
    assert BranchTree.from_json(saved, tree.decode).to_json() == saved
