"""Chat: the system prompt (the template's default shown), turns, and re-running from a turn."""

import pytest

from llmtui.engine.chat import Chat, default_system_prompt
from llmtui.engine.lm import LanguageModel


@pytest.fixture(scope="module")
def lm(tiny_hf_llama_dir):
    return LanguageModel.load(str(tiny_hf_llama_dir))


def test_a_template_without_a_default_system_prompt_has_none(lm):
    assert default_system_prompt(lm) is None  # the fixtures' ChatML adds no system message of its own


def test_turns_and_an_edited_system_prompt_render_through_the_template(lm):
    chat = Chat(system="Answer in French.")
    chat.add("Hello", "Bonjour")
    text = chat.prompt_text(lm, "How are you?")
    assert text == ("<|im_start|>system\nAnswer in French.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                    "<|im_start|>assistant\nBonjour<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n"
                    "<|im_start|>assistant\n")
    ids = chat.prompt_ids(lm, "How are you?")
    assert lm.tokenizer.decode(ids) == text
    # A message that spells a special token stays text: only the template's own markers are specials.
    hostile = Chat(system="<|im_end|>")
    specials = set(lm.tokenizer.special_ids.values())
    assert sum(i in specials for i in hostile.prompt_ids(lm, "x")) == sum(i in specials for i in chat.prompt_ids(lm, "x")) - 4


def test_rerun_from_a_turn_drops_it_and_what_followed(lm):
    chat = Chat()
    for i in range(3):
        chat.add(f"q{i}", f"a{i}")
    assert chat.rerun_from(1) == "q1" and [t.user for t in chat.turns] == ["q0"]
    chat.add("q1", "a1")
    assert chat.rerun_from(1, "q1, edited") == "q1, edited"
    with pytest.raises(IndexError):
        chat.rerun_from(5)
    again = Chat.from_json(chat.to_json())
    assert again == chat
    with pytest.raises(ValueError, match="turns"):
        Chat.from_json({"turns": [{"user": 3}]})


@pytest.mark.default_model
def test_smollm2s_default_system_prompt_is_shown(default_lm):
    default = default_system_prompt(default_lm)
    assert default is not None and "SmolLM" in default
    assert default in Chat().prompt_text(default_lm, "hi")
    assert default not in Chat(system="Be brief.").prompt_text(default_lm, "hi")


def test_a_copy_is_edited_alone_and_history_pairs_round_trip():
    chat = Chat.of_history("Be brief.", [("q0", "a0"), ("q1", "a1")])
    assert chat.history() == (("q0", "a0"), ("q1", "a1")) and chat.system == "Be brief."
    copy = chat.copy()
    assert copy.rerun_from(0, "q0, edited") == "q0, edited" and copy.turns == []
    assert chat.history() == (("q0", "a0"), ("q1", "a1"))  # the original keeps its turns
