"""The Tokenizer pane, driven with Pilot: typing, chips and counts, byte groups, ids to text, encodings, safe text.

OpenAI's encodings are never downloaded here (neither from PyPI nor OpenAI): `tiktoken` is given
small fake encodings for the names a test makes available, and every other name answers "cannot
be reached" at once.
"""

from __future__ import annotations

import unicodedata

import pytest
import tiktoken
from app_fixtures import make_app, settle, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.style import Style
from textual import events
from textual.widgets import Tabs

from llmtui.app.messages import ShowTokenInEmbeddings
from llmtui.app.panes.embeddings import EmbeddingsPane
from llmtui.app.panes.tokenizer import ENCODINGS, TokenizerPane
from llmtui.app.selection import TokenSelection
from llmtui.engine.tokenizer import tokenizer as tok_module
from llmtui.engine.tokenizer import wheel_encodings
from llmtui.engine.lm import LanguageModel
from llmtui.engine.loading.load import ModelLoadError

SIZE = (100, 30)
# Characters a TextArea turns into line breaks (str.splitlines): a limit of Textual's editor.
LINE_BREAKS = set("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def fake_encoding(name: str) -> tiktoken.Encoding:
    """A small byte-level encoding standing in for OpenAI's: merges that differ by name."""
    merges = {"gpt2": [b" l", b"ov", b" lov"], "cl100k_base": [b"lo", b"ve", b" love"], "o200k_base": [b"He", b"ll"]}
    ranks = {bytes([b]): b for b in range(256)}
    for k, merged in enumerate(merges[name]):
        ranks[merged] = 256 + k
    n = len(ranks)
    return tiktoken.Encoding(name, pat_str=tok_module.GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": n})


@pytest.fixture(autouse=True)
def openai(monkeypatch):
    """No network: encodings made available by `openai.allow(name)` load from fakes, the rest fail at once."""

    class Control:
        def __init__(self) -> None:
            self.available: set[str] = set()

        def allow(self, *names: str) -> None:
            self.available.update(names)

    control = Control()

    def no_wheel(name: str, **_) -> tiktoken.Encoding:
        raise ModelLoadError(f"offline, and {name} is not in the cache yet; connect to the internet once")

    monkeypatch.setattr(wheel_encodings, "wheel_encoding", no_wheel)  # PyPI's copy (test_wheel_encodings.py)
    monkeypatch.setattr(tok_module, "_can_reach", lambda host, timeout: False)
    monkeypatch.setattr(tok_module, "_is_cached", lambda name: name in control.available)
    monkeypatch.setattr(tiktoken, "get_encoding", fake_encoding)
    return control


async def open_pane(pilot) -> TokenizerPane:
    pane = pilot.app.query_one(TokenizerPane)
    await wait_for(pilot, lambda: pane.lm is not None, what="the model")
    await settle(pilot)
    return pane


async def loaded(pilot, pane: TokenizerPane) -> None:
    """Wait until no OpenAI encoding is still loading."""
    await wait_for(pilot, lambda: not pane._loading, what="the encodings")
    await settle(pilot)


def visible_text(widget) -> list[str]:
    """What a line-API widget draws on screen, line by line."""
    return ["".join(seg.text for seg in widget.render_line(y)) for y in range(widget.content_region.height)]


def obeyed(text: str) -> set[str]:
    """Characters a terminal would act on instead of showing."""
    return {ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf") and ch != "\n"}


class TestTyping:
    async def test_typing_updates_chips_ids_and_counts(self, tiny_lm):
        """Each key press re-tokenizes: the chips, their ids and the counts follow the text."""
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            assert app.focused is pane.editor
            assert "Type some text" in "\n".join(pane.chips.plain_lines)
            await pilot.press(*"Hello")
            first = pane.tokens()
            assert list(first.ids) == tiny_lm.tokenizer.encode("Hello")
            await pilot.press(*" world")
            tokens = pane.tokens()
            ids = tiny_lm.tokenizer.encode("Hello world")
            assert list(tokens.ids) == ids and tokens.ids != first.ids
            lines = pane.chips.plain_lines
            assert lines[1].split() == [str(i) for i in ids]  # ids under the chips, in order
            labels = [pane.chips.chip_label(tiny_lm.tokenizer, i, tiny_lm.tokenizer.token_bytes(i)) for i in ids]
            assert lines[0].split() == labels and any(label.startswith("·w") for label in labels)  # ' world': space first
            assert pane.info.startswith(f"{len(ids)} tokens · 11 characters · 11 bytes · {11 / len(ids):.2f} characters per token")

    async def test_ids_equal_the_engines_for_many_texts(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            for text in ["The capital of France is Paris.", "def main():\n    return 42\n", "  a  \n\n b", "12345 3.14"]:
                pane.set_prompt(text)
                assert list(pane.tokens().ids) == tiny_lm.tokenizer.encode(text), text
                shown = [i for line in pane.chips.plain_lines[1::2] for i in line.split()]
                assert shown == [str(i) for i in tiny_lm.tokenizer.encode(text)], text

    async def test_spaces_newlines_and_tabs_are_visible(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt("a b\n\tc")
            text = "\n".join(pane.chips.plain_lines)
            assert "·" in text and "↵" in text and "→" in text

    @pytest.mark.default_model
    async def test_the_default_model_ids(self, default_lm):
        app = make_app(default_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt("The capital of France is")
            assert list(pane.tokens().ids) == default_lm.tokenizer.encode("The capital of France is")
            assert pane.info.startswith(f"{len(pane.tokens().ids)} tokens · 24 characters · 24 bytes")


class TestBytes:
    async def test_an_emoji_is_byte_tokens_grouped_under_its_character(self, tiny_lm):
        """🍕 is outside the tiny vocabulary: four byte tokens, <0xF0>..., and a bracket with 🍕 under them."""
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt("I love 🍕")
            tokens = pane.tokens()
            (group,) = tokens.groups
            assert b"".join(tokens.chunks[group.first : group.last + 1]).strip() == "🍕".encode()
            lines = pane.chips.plain_lines
            assert "<0xF0>" in lines[0] and "<0x95>" in lines[0]
            bracket = lines[2]
            assert "╰" in bracket and "🍕" in bracket and bracket.rstrip().endswith("╯")
            pane.chips.select(group.first)
            assert "part of “" in pane.detail and "🍕" in pane.detail and "F0" in pane.detail

    async def test_cjk_and_accents(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt("東京 café")
            tokens = pane.tokens()
            texts = [g.text.strip() for g in tokens.groups]
            assert "東" in texts and "京" in texts
            grouped = {i for g in tokens.groups for i in range(g.first, g.last + 1)}
            for i, chunk in enumerate(tokens.chunks):
                if i not in grouped:
                    chunk.decode("utf-8")  # every token outside a group is whole characters
            assert "╰" in "\n".join(pane.chips.plain_lines)

    @pytest.mark.default_model
    async def test_smollm2_pizza(self, default_lm):
        app = make_app(default_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt("I love 🍕!")
            tokens = pane.tokens()
            assert list(tokens.ids) == default_lm.tokenizer.encode("I love 🍕!")
            (group,) = tokens.groups
            assert group.text == " 🍕" and group.last > group.first
            assert "·🍕" in "\n".join(pane.chips.plain_lines)


class TestIdsToText:
    async def test_pasted_ids_decode(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press("f4")
            assert pane.mode == "ids" and app.focused is pane.ids_input
            ids = tiny_lm.tokenizer.encode("Hello world")
            await pilot.press(*f"[{', '.join(map(str, ids))}]")
            assert pane.decoded == "Hello world"
            assert list(pane.tokens().ids) == ids
            assert pane.info == f"{len(ids)} ids → 11 characters, 11 bytes"

    async def test_bad_ids_are_reported_not_a_crash(self, tiny_lm):
        """Negative, too large, not a number: each is named with why; the good ids still decode."""
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press("f4")
            good = tiny_lm.tokenizer.encode("Hi")
            await pilot.press(*f"{good[0]}, -3, 99999, abc, {', '.join(map(str, good[1:]))}")
            assert pane.decoded == "Hi"
            assert "3 of" in pane.info and "items are not ids" in pane.info
            assert "-3 (item 2) is negative" in pane.info
            assert "99999 (item 3) is too large" in pane.info and "0 to 319" in pane.info
            assert "'abc' (item 4) is not a whole number" in pane.info
            assert pane.query_one("#tok-info").has_class("-error")
            assert app.is_running
            await pilot.press("ctrl+u")  # cleared: no problems left
            assert pane.decoded == "" and "not ids" not in pane.info

    async def test_switching_modes_keeps_both_texts(self, tiny_lm):
        """F4 fills the ids of the typed text; the typed text is still there on the way back."""
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press(*"cats")
            await pilot.press("f4")
            assert pane.ids_input.value == ", ".join(map(str, tiny_lm.tokenizer.encode("cats")))
            assert pane.decoded == "cats"
            await pilot.press("end", *", 5")
            await pilot.press("f4")
            assert pane.mode == "text" and pane.editor.text == "cats" and app.focused is pane.editor
            await pilot.press(*" dogs")
            await pilot.press("f4")
            assert pane.ids_input.value.endswith(", 5")  # what the user typed there is kept


class TestEncodings:
    async def test_switching_encodings(self, tiny_lm, openai):
        openai.allow("gpt2", "cl100k_base", "o200k_base")
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press(*"Hello love")
            for key in ENCODINGS[1:]:
                await pilot.press("f2")
                await loaded(pilot, pane)
                assert pane.encoding == key
                expected = fake_encoding(key).encode_ordinary("Hello love")
                assert list(pane.tokens().ids) == expected, key
                assert key.removesuffix("_base") in str(pane.chips.border_title)
            await pilot.press("f2")
            assert pane.encoding == "model" and list(pane.tokens().ids) == tiny_lm.tokenizer.encode("Hello love")
            await pilot.click("#enc-cl100k_base")
            assert pane.encoding == "cl100k_base"
            assert pane.editor.text == "Hello love"

    async def test_fast_encoding_presses_end_on_the_last_one(self, tiny_lm, openai):
        """F2 pressed again before the first press's tab change was handled: the pane settles on the last
        encoding. (A stale tab change switched back, whose own tab change then switched forward, forever:
        the soak walk saw thousands of encoding loads and workers that never all finished.)"""
        openai.allow("gpt2", "cl100k_base", "o200k_base")
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press(*"Hello")
            await loaded(pilot, pane)
            seen: list[str] = []
            pane.watch(pane, "encoding", lambda key: seen.append(key), init=False)
            for _ in range(2):  # as a terminal sends them: the second comes before the first is handled
                app._driver.send_message(events.Key("f2", None))
            await pilot.pause(0.5)
            await settle(pilot)
            assert seen == ["gpt2", "cl100k_base"]
            await pilot.pause(0.5)
            assert seen == ["gpt2", "cl100k_base"] and pane.encoding == "cl100k_base"
            assert pane.query_one("#tok-encodings", Tabs).active == "enc-cl100k_base"
            assert list(pane.tokens().ids) == fake_encoding("cl100k_base").encode_ordinary("Hello")

    async def test_an_unavailable_encoding_says_what_to_do(self, tiny_lm):
        """Offline, no cache: the pane says so, with what to do, and the rest goes on working."""
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press(*"Hello")
            await pilot.press("f2")
            await loaded(pilot, pane)
            assert pane.encoding == "gpt2" and pane.available("gpt2") is None
            message = "\n".join(pane.chips.plain_lines)
            assert "Not available" in message and "TIKTOKEN_CACHE_DIR" in message and "run once online" in message
            assert "F2" in message
            assert "✗" in str(pane.query_one("#enc-gpt2").label)
            await pilot.press(*" there")
            assert pane.editor.text == "Hello there" and app.is_running
            await pilot.press("shift+f2")
            assert pane.encoding == "model" and list(pane.tokens().ids) == tiny_lm.tokenizer.encode("Hello there")

    async def test_a_failed_encoding_is_tried_again_when_chosen_again(self, tiny_lm, openai):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press("f2")
            await loaded(pilot, pane)
            assert pane.unavailable_reason("gpt2")
            openai.allow("gpt2")  # say the user set TIKTOKEN_CACHE_DIR meanwhile
            await pilot.press("shift+f2", "f2")
            await loaded(pilot, pane)
            assert pane.available("gpt2") is not None and pane.unavailable_reason("gpt2") is None

    async def test_compare_stacks_every_tokenizer(self, tiny_lm, openai):
        openai.allow("gpt2", "o200k_base")
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=(120, 40)) as pilot:
            pane = await open_pane(pilot)
            await pilot.press(*"Hello love")
            await pilot.press("f3")
            await loaded(pilot, pane)
            sections = {s.key: s for s in pane.chips.sections}
            assert list(sections) == list(ENCODINGS)
            assert list(sections["model"].tokens.ids) == tiny_lm.tokenizer.encode("Hello love")
            for key in ("gpt2", "o200k_base"):
                assert list(sections[key].tokens.ids) == fake_encoding(key).encode_ordinary("Hello love")
                n = len(sections[key].tokens.ids)
                assert f"{n} tokens · {10 / n:.2f} chars/token" in str(sections[key].title)
            assert sections["cl100k_base"].tokens is None and "internet" in str(sections["cl100k_base"].note)
            assert "Comparing 4 tokenizers on 10 characters" in pane.info
            await pilot.press("f3")
            assert [s.key for s in pane.chips.sections] == ["model"]


class TestSelection:
    async def test_the_selection_follows_the_cursor_and_the_arrows(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press(*"Hello world")
            ids = tiny_lm.tokenizer.encode("Hello world")
            assert pane.chips.selected == len(ids) - 1
            assert f"Token {len(ids)}/{len(ids)}" in pane.detail and f"id {ids[-1]}" in pane.detail
            await pilot.press("home")
            assert pane.chips.selected == 0
            await pilot.press("tab")
            assert app.focused is pane.chips
            await pilot.press("right")
            assert pane.chips.selected == 1
            data = tiny_lm.tokenizer.token_bytes(ids[1])
            assert " ".join(f"{b:02X}" for b in data) in pane.detail and "enter: Embeddings" in pane.detail
            await pilot.press("end")
            assert pane.chips.selected == len(ids) - 1

    async def test_click_selects_a_chip(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt("Hello world again")
            chips = pane.chips
            second_x = chips._layouts[0].xs[1]
            await pilot.click(chips, offset=(chips.content_region.x - chips.region.x + second_x,
                                             chips.content_region.y - chips.region.y))
            assert chips.selected == 1

    async def test_enter_opens_the_token_in_the_embeddings_pane(self, tiny_lm, monkeypatch):
        shown: list[int] = []
        monkeypatch.setattr(EmbeddingsPane, "show_token", lambda self, token_id: shown.append(token_id), raising=False)
        messages: list = []
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            await open_pane(pilot)
            await pilot.press(*"Hello world", "tab", "home", "enter")
            ids = tiny_lm.tokenizer.encode("Hello world")
            # (the pane may also show it by following the app's current token, which "home" made it)
            assert shown and set(shown) == {ids[0]}
            assert app.current_pane.PANE_ID == "embeddings"
            sent = [m for m in messages if isinstance(m, ShowTokenInEmbeddings)]
            assert sent and sent[0].token_id == ids[0] and sent[0].text == tiny_lm.tokenizer.token_text(ids[0])

    async def test_an_openai_token_is_not_opened_in_embeddings(self, tiny_lm, openai, monkeypatch):
        shown: list[int] = []
        monkeypatch.setattr(EmbeddingsPane, "show_token", lambda self, token_id: shown.append(token_id), raising=False)
        openai.allow("gpt2")
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press(*"Hello", "f2")
            await loaded(pilot, pane)
            await pilot.press("tab", "enter")
            assert shown == [] and app.current_pane is pane
            assert any("Only the model's own tokens" in str(n.message) for n in app._notifications)


class TestAppSelection:
    async def test_picking_a_token_makes_it_the_apps_current_token(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            await open_pane(pilot)
            await pilot.press(*"Hello world")
            assert app.selection is None  # typing alone chooses nothing
            await pilot.press("tab", "home", "right")
            ids = tiny_lm.tokenizer.encode("Hello world")
            assert app.selection == TokenSelection.at(ids, 1, "tokenizer")

    async def test_a_token_from_another_pane_is_followed(self, tiny_lm):
        """An empty editor takes the other pane's text, with the token selected and the cursor after it."""
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            ids = tiny_lm.tokenizer.encode("The capital of France is Paris")
            pane.follow_selection(TokenSelection.at(ids, 3, "generate"))
            await pilot.pause()
            assert pane.editor.text == "The capital of France is Paris"
            assert pane.chips.selected == 3 and f"id {ids[3]}" in pane.detail
            assert pane.advance() and pane.chips.selected == 4
            pane.follow_selection(TokenSelection.at(ids, 1, "generate"))  # text from there: replaced, same here
            assert pane.chips.selected == 1
            await pilot.press("end", *"!")  # now the user's own text
            other = tiny_lm.tokenizer.encode("Hello")
            pane.follow_selection(TokenSelection.at(other, 0, "generate"))
            assert pane.editor.text == "The capital of France is Paris!"  # typed text is never replaced

    async def test_advance_walks_the_tokens(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt("ab cd")
            n = len(tiny_lm.tokenizer.encode("ab cd"))
            pane.chips.select(0)
            steps = [pane.advance() for _ in range(n)]
            assert steps == [True] * (n - 1) + [False] and pane.chips.selected == n - 1


class TestSafeText:
    async def test_markup_and_controls_are_shown_literally(self, tiny_lm):
        text = "[red]cat[/] [bold]x \x1b[31mred\x07\u202e!"
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt(text)
            await pilot.pause()
            tokens = pane.tokens()
            labels = [pane.chips.chip_label(tiny_lm.tokenizer, i, data) for i, data in zip(tokens.ids, tokens.chunks)]
            n = len(tiny_lm.tokenizer.encode(text[:-2]))  # the tokens before the bidi override's bytes
            assert "".join(labels[:n]) == "[red]cat[/]·[bold]x·\\x1b[31mred\\x07"
            assert "\\u202e" in "\n".join(pane.chips.plain_lines)  # under its three byte tokens
            red = Style.parse("red").color
            for y in range(pane.chips.content_region.height):  # markup in the text styles nothing
                assert all(seg.style is None or seg.style.color != red for seg in pane.chips.render_line(y))
            editor_lines = visible_text(pane.editor)
            assert any("[red]cat[/]" in line and "␛[31m" in line for line in editor_lines)
            for line in [*visible_text(pane.chips), *editor_lines, pane.detail, pane.info]:
                assert not obeyed(line), repr(line)
            assert pane.editor.text == text  # the real characters are kept, and tokenized
            assert list(pane.tokens().ids) == tiny_lm.tokenizer.encode(text)

    async def test_controls_pasted_as_ids_are_not_drawn_raw(self, tiny_lm):
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            await pilot.press("f4")
            pane.ids_input.insert_text_at_cursor("5 \x1b[2J 6")
            await pilot.pause()
            assert pane.ids_input.value == "5 \x1b[2J 6"  # kept as pasted: the input draws it safely
            drawn = "".join(seg.text for seg in pane.ids_input.render_line(0))
            assert "5 ␛[2J 6" in drawn and not obeyed(drawn)
            assert "not a whole number" in pane.info and not obeyed(pane.info)

    async def test_any_text_is_shown_safely_and_round_trips(self, tiny_lm):
        """Property: for any text, the pane's ids are the engine's, decode back to the text, and draw nothing raw."""
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            tokenizer = tiny_lm.tokenizer

            @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
            @given(text=st.text(max_size=40))
            def check(text: str) -> None:
                pane.set_prompt(text)
                kept = pane.editor.text
                if not LINE_BREAKS.intersection(text):
                    assert kept == text
                tokens = pane.tokens()
                assert list(tokens.ids) == tokenizer.encode(kept)
                assert tokenizer.decode(list(tokens.ids)) == kept  # st.text() has no lone surrogates
                for line in pane.chips.plain_lines + [pane.detail, pane.info]:
                    assert not obeyed(line), repr(line)

            check()


class TestModelStates:
    async def test_the_pane_works_while_the_model_failed(self, monkeypatch, openai):
        def failing_load(spec, *, device="cpu", progress=None, precision="exact"):
            raise ModelLoadError(f"no model called {spec!r}")

        monkeypatch.setattr(LanguageModel, "load", staticmethod(failing_load))
        openai.allow("gpt2")
        app = make_app(None, model="nope", pane="tokenizer", prompt="kept text")
        async with app.run_test(size=SIZE) as pilot:
            pane = app.query_one(TokenizerPane)
            await wait_for(pilot, lambda: app.model_state.phase == "failed", what="the failure")
            await pilot.pause()
            assert "No model" in "\n".join(pane.chips.plain_lines) and "F2" in "\n".join(pane.chips.plain_lines)
            await pilot.press("f2")
            await loaded(pilot, pane)
            assert list(pane.tokens().ids) == fake_encoding("gpt2").encode_ordinary("kept text")
            assert pane.editor.text == "kept text"


class TestLayout:
    @pytest.mark.parametrize("theme", ["dark", "light"])
    async def test_usable_at_80x24(self, tiny_lm, theme):
        app = make_app(tiny_lm, pane="tokenizer", theme=theme)
        async with app.run_test(size=(80, 24)) as pilot:
            pane = await open_pane(pilot)
            pane.set_prompt("I love 🍕! The cat sat on the mat.\nAnd then some more text to wrap around.")
            await pilot.pause()
            screen = app.screen.region
            for widget in [pane.editor, pane.chips, pane.query_one("#tok-encodings"), pane.query_one("#tok-info"),
                           pane.query_one("#tok-detail")]:
                assert screen.contains_region(widget.region), widget
                assert widget.region.height > 0, widget
            assert pane.editor.content_region.height >= 3
            assert pane.chips.content_region.height >= 6  # three lines of chips with their ids
            tabs = pane.query_one("#tok-encodings")
            assert sum(t.region.width for t in tabs.query("Tab")) <= tabs.region.width  # every tokenizer's tab shows

    async def test_long_text_draws_only_what_is_on_screen(self, tiny_lm):
        """10 KB of text: one widget, a layout of integers, and only the visible lines drawn."""
        app = make_app(tiny_lm, pane="tokenizer")
        async with app.run_test(size=SIZE) as pilot:
            pane = await open_pane(pilot)
            text = ("The capital of France is Paris. Hello world! 🍕 café\n" * 200)[:10_000]
            pane.set_prompt(text)
            await pilot.pause()
            n = len(tiny_lm.tokenizer.encode(text))
            assert pane.chips.total == n > 2000
            assert len(list(pane.chips.query("*"))) == 0  # no child widget per token
            assert pane.chips.virtual_size.height > pane.chips.content_region.height
            assert pane.chips.selected == n - 1  # the cursor is at the end, and so is the view
            assert pane.chips.scroll_offset.y > 0
            ids_line = next(line for line in visible_text(pane.chips) if line.strip() and line.split()[0].isdigit())
            assert ids_line


async def test_one_token_is_said_in_the_singular(tiny_lm):
    """Bug 9: "1 tokens"."""
    app = make_app(tiny_lm, pane="tokenizer", prompt="a")
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await open_pane(pilot)
        assert pane.info.startswith("1 token · 1 character · 1 byte · ")
        await pilot.press("f3")
        await loaded(pilot, pane)
        assert "1 token ·" in str(pane.chips.sections[0].title)


async def test_the_tokens_box_names_the_encoding_chosen_even_before_it_loads(tiny_lm):
    """Bug 9: the box kept "SmolLM2 (the model's)" while o200k was selected (loading, or unavailable)."""
    app = make_app(tiny_lm, pane="tokenizer", prompt="Hello")
    async with app.run_test(size=(120, 30)) as pilot:
        pane = await open_pane(pilot)
        assert "the model's" in str(pane.chips.border_title)
        pane.encoding = "o200k_base"
        await pilot.pause()
        assert "o200k" in str(pane.chips.border_title) and "model's" not in str(pane.chips.border_title)
        await loaded(pilot, pane)
        assert "o200k" in str(pane.chips.border_title)


class TestSmallScreens:
    @pytest.mark.parametrize("size", [(40, 12), (80, 24), (120, 36)])
    async def test_the_tokens_box_keeps_rows_at_every_size(self, tiny_lm, size):
        """Bug 8: at 40x12 the Tokens box was zero rows high."""
        app = make_app(tiny_lm, pane="tokenizer", prompt="I love pizza!")
        async with app.run_test(size=size) as pilot:
            pane = await open_pane(pilot)
            chips = pane.chips
            assert chips.content_region.height >= 1, chips.region
            assert chips.region.bottom <= pane.region.bottom  # on screen, not pushed out of the pane
            assert pane.tokens() is not None and pane.editor.size.height >= 1
