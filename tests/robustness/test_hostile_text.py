"""Hostile text at every text entry point: shown literally, no crash, and the user's text kept exactly.

Inventory (keep it complete when a pane or a command gains a text field):

Typed by the user (app)
- Tokenizer: the text editor (`#tok-text`, TextEditor), the ids → text input (`#tok-ids`, F4) and its
  decoded text, the tokenizer choice and the compare view (F2/F3: the same text under every tokenizer).
- Embeddings: the query input (`#emb-query`: a word, an expression, a list), the context view's
  sentence A/B and word inputs (`#emb-sentence-a`, `#emb-sentence-b`, `#emb-word`, F4).
- Attention: the prompt input (`#att-prompt`).
- Layers: the prompt editor (`#layers-prompt`, PromptEditor).
- Generate: the prompt editor (`#prompt`), the same editor as a chat message (ctrl+t), and the knob value
  dialog (ValueInputScreen's `#value-input`, enter on a knob).
- The command palette's search field (ctrl+p; Textual's own CommandInput).
- Demo files: `prompt` and `caption` strings (`--demo FILE`), shown in the demo bar and put in the panes.

Given on the command line
- `llmtui tokenize TEXT`, `generate PROMPT`, `neighbours WORD`, `attention PROMPT`, `llmtui --prompt TEXT`;
  each in the human format (escapes shown, never sent) and `--json` (valid JSON, round-trips).

Written by the model (any token: the vocabulary has control characters, markup-like pieces and single
bytes of a UTF-8 character)
- Generate: the output's tokens, the probability table's candidate texts, the status line's current token.
- Tokenizer: token chips (also from pasted ids), the selected token's details.
- Attention: the heatmap's row/column labels and the weight bars (`g` takes Generate's tokens).
- Layers: the lens grid's column headers and cells.
- Embeddings: the neighbour list and the map's labels.
- Export (`llmtui/export.py`): JSON, Markdown and CSV of every pane.

Behaviour chosen (and checked here)
- Controls (C0, C1, DEL), bidi controls and lone surrogates are never written to the terminal: editors and
  inputs draw them as control pictures (ESC as ␛) or U+FFFD, keeping the real characters in their value;
  token labels and messages show them as escapes (\\x1b, \\u202e, \\ud800, `escape_controls`).
- Rich markup is never parsed: "[bold]" shows as typed and styles nothing.
- Lone surrogates (a str may hold them; `llmtui tokenize $'\\xff'` gets one from argv) are kept in the
  editor, drawn as U+FFFD, and encoded as U+FFFD (as tiktoken does). They are not UTF-8, so the CLI's
  --json says U+FFFD for them; every other string round-trips exactly.
- Textual's TextArea keeps one line-break style: a pasted \\r, \\r\\n, \\x0b, \\x0c, \\x1c-\\x1e, \\x85,
  U+2028 or U+2029 becomes "\\n" (`LINE_BREAKS` in hostile.py). That is the only change the editors make
  to pasted text, and the "kept exactly" property allows exactly that. One-line inputs keep the first
  line of a paste (Textual's Input), so they are fed strings without line breaks.

- Size: the Tokenizer tokenizes the first `MAX_LIVE_CHARS` (50,000) characters as you type and says so;
  one-line inputs draw a long value only around the view. A 1 MB paste is kept exactly everywhere.

Inputs tried: every test below counts what it fed in (`TRIED`); `-s` prints the counts (398 strings at
the default profile, which is derandomized: the same strings every run; a failure prints the string and
a @reproduce_failure blob). For bug hunting, HYPOTHESIS_PROFILE=hunt tries 20x more, randomly.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections import Counter

import pytest
from app_fixtures import greedy
from hostile import EXAMPLES, LINE_BREAKS, LiveApp, hostile_line, hostile_text, obeyed
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from textual import events

from llmtui.app.app import LLMTuiApp
from llmtui.app.panes.attention import AttentionPane
from llmtui.app.panes.embeddings import EmbeddingsPane
from llmtui.app.panes.generate import GeneratePane
from llmtui.app.panes.layers import LayersPane
from llmtui.app.panes.tokenizer import TokenizerPane
from llmtui.app.widgets.prompt_editor import control_pictures
from llmtui.cli import main

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("hunt", max_examples=800, deadline=None, print_blob=True,
                          suppress_health_check=list(HealthCheck))
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
SCALE = {"ci": 1, "hunt": 20}.get(PROFILE, 1)


def examples(n: int):
    """Settings for one property: n examples at the default profile (derandomized: the same every run)."""
    return settings(settings.get_profile(PROFILE), max_examples=n * SCALE)


TRIED: Counter[str] = Counter()
"""Strings fed to each entry point in this run."""

EXAMPLE_TEXTS = list(EXAMPLES.values())
ONE_LINE_EXAMPLES = ["".join(ch for ch in s if ch not in LINE_BREAKS) for s in EXAMPLE_TEXTS]
# Markup tags that Rich would consume if the text were parsed as markup (no spaces: they never wrap apart).
TAGS = ["[bold]", "[/]", "[/bold]", "[link=http://x]", "[/link]", "[i]", "[reverse]", "[@click=app.quit]"]


def with_examples(texts: list[str], **others):
    """`@example` for each fixed string (each class of hostile text is tried on every run); `others` fills
    the test's other arguments."""

    def decorate(test):
        for text in reversed(texts):
            test = example(text=text, **others)(test)
        return test

    return decorate


def kept_by_editor(text: str) -> str:
    """What a TextArea keeps of pasted text: every line break (\\r\\n counts as one) becomes '\\n'."""
    return re.sub("\r\n|[" + "".join(sorted(LINE_BREAKS)) + "]", "\n", text)


def screen_problems(app) -> list[str]:
    """What on the whole screen a terminal would obey, or what markup in the text styled (links, clicks)."""
    problems = []
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        line = "".join(seg.text for seg in strip)
        if bad := obeyed(line):
            problems.append(f"line {y}: raw {sorted(bad)!r}: {line!r}")
        for seg in strip:
            if seg.style is not None and (seg.style.link or "app.quit" in repr(seg.style.meta)):
                problems.append(f"line {y}: a link or click from markup on {seg.text!r}")
    return problems


def screen_text(app) -> str:
    return "\n".join("".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips())


def assert_literal_tags(app, drawn: str, width: int) -> None:
    """Markup tags in a one-line text that fits are on screen as typed (had they been parsed, they'd be gone)."""
    if any(ch in LINE_BREAKS for ch in drawn) or cell_len(drawn) > width:
        return
    shown = screen_text(app)
    for tag in TAGS:
        if tag in drawn:
            assert tag in shown, f"{tag!r} typed but not shown"


async def paste(pilot, widget, text: str) -> None:
    """Replace the widget's text by a paste of `text`, the way a terminal delivers it (to the app)."""
    widget.focus()
    if hasattr(widget, "document"):
        widget.clear()
    else:
        widget.value = ""
    await pilot.pause()
    pilot.app.post_message(events.Paste(text))
    await pilot.pause()


async def settle(pilot, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not all(w.is_finished for w in pilot.app.workers):
        assert time.monotonic() < deadline, "workers still running"
        await pilot.pause(0.01)
    await pilot.pause()


async def wait_until(pilot, condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


def live(lm, pane: str, **kwargs) -> LiveApp:
    async def start(pilot) -> None:
        import time

        deadline = time.monotonic() + 60
        while pilot.app.query_one(GeneratePane).lm is None:
            assert time.monotonic() < deadline
            await pilot.pause(0.02)
        await settle(pilot)

    return LiveApp(LLMTuiApp(lm=lm, pane=pane, **kwargs), size=(120, 40), start=start)


def check_alive(app) -> None:
    assert app.is_running and app._exception is None, app._exception


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print("\ninputs tried:", dict(TRIED), "total", sum(TRIED.values()))


# -- Tokenizer --------------------------------------------------------------------------------------------


class TestTokenizer:
    def test_text_editor(self, tiny_lm):
        """Any pasted text: kept (line breaks aside), tokenized as kept, chips and screen draw nothing raw."""
        app = live(tiny_lm, "tokenizer")
        try:
            pane = app.app.query_one(TokenizerPane)
            tokenizer = tiny_lm.tokenizer

            @examples(40)
            @with_examples(EXAMPLE_TEXTS, compare=False)
            @given(text=hostile_text(), compare=st.booleans())
            def check(text: str, compare: bool) -> None:
                TRIED["tokenizer text"] += 1

                async def drive(pilot):
                    pane.compare = compare
                    await paste(pilot, pane.editor, text)
                    return pane.editor.text, list(pane.tokens().ids), screen_problems(pilot.app)

                kept, ids, problems = app.run(drive)
                check_alive(app.app)
                assert kept == kept_by_editor(text)
                assert ids == tokenizer.encode(kept)
                assert not problems, problems
                for line in pane.chips.plain_lines + [pane.detail, pane.info]:
                    assert not obeyed(line), repr(line)

            check()
        finally:
            app.close()

    def test_ids_input(self, tiny_lm):
        """Any pasted 'ids': kept as pasted, problems named with escapes, nothing raw on screen."""
        app = live(tiny_lm, "tokenizer")
        try:
            pane = app.app.query_one(TokenizerPane)
            app.run(lambda pilot: pilot.press("f4"))
            vocab = tiny_lm.tokenizer.vocab_size

            @examples(25)
            @with_examples(ONE_LINE_EXAMPLES)
            @given(text=st.one_of(hostile_line(), st.lists(st.integers(-5, vocab + 5).map(str)).map(" ".join)))
            def check(text: str) -> None:
                TRIED["tokenizer ids"] += 1

                async def drive(pilot):
                    await paste(pilot, pane.ids_input, text)
                    decoded = str(pane.query_one("#tok-decoded").render())
                    return pane.ids_input.value, screen_problems(pilot.app), decoded

                kept, problems, decoded = app.run(drive)
                check_alive(app.app)
                assert kept == text
                assert not problems, problems
                assert not obeyed(pane.info) and not obeyed(decoded.replace("\n", ""))
                assert_literal_tags(app.app, control_pictures(text), 80)

            check()
        finally:
            app.close()


# -- Embeddings -------------------------------------------------------------------------------------------


class TestEmbeddings:
    def test_query_input(self, tiny_lm):
        """Any query, submitted: kept in the input, answered or refused in one line, nothing raw on screen."""
        app = live(tiny_lm, "embeddings")
        try:
            pane = app.app.query_one(EmbeddingsPane)

            @examples(20)
            @with_examples(ONE_LINE_EXAMPLES)
            @given(text=hostile_line())
            def check(text: str) -> None:
                TRIED["embeddings query"] += 1

                async def drive(pilot):
                    await paste(pilot, pane.query_input, text)
                    await pilot.press("enter")
                    await settle(pilot)
                    return pane.query_input.value, screen_problems(pilot.app)

                kept, problems = app.run(drive)
                check_alive(app.app)
                assert kept == text
                assert not problems, problems
                assert_literal_tags(app.app, control_pictures(text), 90)

            check()
        finally:
            app.close()

    def test_context_inputs(self, tiny_lm):
        """Any two sentences and word in the context view (F4): kept, and nothing raw on screen."""
        app = live(tiny_lm, "embeddings")
        try:
            pane = app.app.query_one(EmbeddingsPane)
            app.run(lambda pilot: pilot.press("f4"))

            @examples(8)
            @with_examples(ONE_LINE_EXAMPLES[:4], word="x")
            @given(text=hostile_line(), word=hostile_line(3))
            def check(text: str, word: str) -> None:
                TRIED["embeddings context"] += 1

                async def drive(pilot):
                    fields = [pane.query_one(f"#emb-{name}") for name in ("sentence-a", "sentence-b", "word")]
                    for field, value in zip(fields, [text, "The " + text, word], strict=True):
                        await paste(pilot, field, value)
                    await pilot.press("enter")
                    await settle(pilot)
                    return [f.value for f in fields], screen_problems(pilot.app)

                kept, problems = app.run(drive)
                check_alive(app.app)
                assert kept == [text, "The " + text, word]
                assert not problems, problems

            check()
        finally:
            app.close()


# -- Attention --------------------------------------------------------------------------------------------


class TestAttention:
    def test_prompt_input(self, tiny_lm):
        """Any prompt, submitted: kept, the map's labels are the tokens shown literally, nothing raw on screen."""
        app = live(tiny_lm, "attention")
        try:
            pane = app.app.query_one(AttentionPane)

            @examples(15)
            @with_examples(ONE_LINE_EXAMPLES)
            @given(text=hostile_line())
            def check(text: str) -> None:
                TRIED["attention prompt"] += 1

                async def drive(pilot):
                    await paste(pilot, pane.prompt, text)
                    await pilot.press("enter")
                    await settle(pilot)
                    return pane.prompt.value, screen_problems(pilot.app), list(pane.labels)

                kept, problems, labels = app.run(drive)
                check_alive(app.app)
                assert kept == text
                assert not problems, problems
                for label in labels:
                    assert not obeyed(label), repr(label)

            check()
        finally:
            app.close()


# -- Layers -----------------------------------------------------------------------------------------------


class TestLayers:
    def test_prompt_editor(self, tiny_lm):
        """Any prompt: kept (line breaks aside), the grid's headers and cells draw nothing raw."""
        app = live(tiny_lm, "layers")
        try:
            pane = app.app.query_one(LayersPane)

            @examples(20)
            @with_examples(EXAMPLE_TEXTS)
            @given(text=hostile_text())
            def check(text: str) -> None:
                TRIED["layers prompt"] += 1

                async def drive(pilot):
                    await paste(pilot, pane.editor, text)
                    await pilot.pause(0.05)
                    await settle(pilot)
                    return pane.editor.text, screen_problems(pilot.app), list(pane.grid._header)

                kept, problems, header = app.run(drive)
                check_alive(app.app)
                assert kept == kept_by_editor(text)
                assert not problems, problems
                assert all(not obeyed(label) for label in header)

            check()
        finally:
            app.close()


# -- Generate ---------------------------------------------------------------------------------------------


class TestGenerate:
    @pytest.mark.parametrize("chat", [False, True], ids=["prompt", "chat"])
    def test_prompt_editor(self, tiny_lm, chat):
        """Any prompt or chat message, generated from: kept after success or error, nothing raw on screen."""
        app = live(tiny_lm, "generate", settings=greedy(max_new_tokens=3))
        try:
            pane = app.app.query_one(GeneratePane)
            if chat:
                app.run(lambda pilot: pilot.press("ctrl+t"))

            @examples(10)
            @with_examples(EXAMPLE_TEXTS)
            @given(text=hostile_text())
            def check(text: str) -> None:
                TRIED["generate chat" if chat else "generate prompt"] += 1

                async def drive(pilot):
                    if chat:
                        await pilot.press("ctrl+n")  # a fresh chat each time: the context is small
                    await paste(pilot, pane.editor, text)
                    await pilot.press("f5")
                    await pilot.pause(0.02)
                    while pane.running:
                        await pilot.pause(0.01)
                    await settle(pilot)
                    sent = pane._session_prompt.text if pane._session_prompt is not None else None
                    return pane.editor.text, screen_problems(pilot.app), pane.output.plain_text, sent

                kept, problems, output, sent = app.run(drive)
                check_alive(app.app)
                if chat and kept == "" and text:  # a chat message that was sent leaves the editor for the chat
                    assert sent == kept_by_editor(text)
                else:  # a prompt stays; a message stays after an error (empty, too long)
                    assert kept == kept_by_editor(text)
                assert not problems, problems
                assert not obeyed(output.replace("\n", ""))

            check()
        finally:
            app.close()


# -- bugs the properties found (one focused test each) ----------------------------------------------------


def drawn_lines(widget) -> list[str]:
    return ["".join(seg.text for seg in widget.render_line(y)) for y in range(widget.content_region.height)]


class TestFoundBugs:
    def test_escape_controls_escapes_bidi_controls(self):
        """A right-to-left override in a prompt or a message reordered the rest of the line on screen."""
        from llmtui.engine.text import escape_controls

        assert escape_controls("a\u202eb\u2066c\u2069\u200f") == "a\\u202eb\\u2066c\\u2069\\u200f"
        assert escape_controls("👩\u200d👧 x\u200by") == "👩\u200d👧 x\u200by"  # joiners hold emoji together

    @pytest.mark.parametrize("pane_id", ["generate", "layers"])
    async def test_prompt_editors_draw_controls_as_symbols(self, tiny_lm, pane_id):
        """The Generate and Layers editors sent a pasted ESC [ 2 J to the terminal (only the Tokenizer's drew it)."""
        text = "red\x1b[31m bell\x07 rtl\u202e lone\ud800 [bold]b[/]"
        app = LLMTuiApp(lm=tiny_lm, pane=pane_id)
        async with app.run_test(size=(120, 40)) as pilot:
            pane = app.query_one(GeneratePane if pane_id == "generate" else LayersPane)
            await paste(pilot, pane.editor, text)
            await settle(pilot)
            assert pane.editor.text == text
            lines = drawn_lines(pane.editor)
            assert any("red␛[31m bell␇ rtl� lone� [bold]b[/]" in line for line in lines), lines
            assert not screen_problems(app)

    @pytest.mark.parametrize("pasted, kept", [("a\x0b", "a\n"), ("b\u2028", "b\n"), ("c\x0c\x85d\u2029", "c\n\nd\n"),
                                              ("e\r\nf\rg", "e\nf\ng")])
    async def test_no_line_break_is_dropped(self, tiny_lm, pasted, kept):
        """A pasted text ending in \\x0b, \\x0c, \\x85, U+2028 or U+2029 lost that character (Textual's document
        ends a line only at \\r or \\n); now every line break is kept, as '\\n'."""
        app = LLMTuiApp(lm=tiny_lm, pane="tokenizer")
        async with app.run_test(size=(120, 40)) as pilot:
            pane = app.query_one(TokenizerPane)
            await paste(pilot, pane.editor, pasted)
            assert pane.editor.text == kept
            pane.set_prompt("x\ry")  # loaded text too (a \r used to make every later Enter insert \r)
            await pilot.pause()
            pane.editor.move_cursor(pane.editor.document.end)
            await pilot.press("enter")
            assert pane.editor.text == "x\ny\n"

    async def test_inputs_draw_controls_as_symbols_and_keep_them(self, tiny_lm):
        """One-line inputs (Embeddings, Attention, a knob's value, pasted ids) drew ESC, C1, bidi and lone
        surrogates raw; the ids input replaced them in the user's text instead."""
        text = "x\x1b[2J\x9b1m\u202e\ud800[bold]y"
        app = LLMTuiApp(lm=tiny_lm, pane="embeddings")
        async with app.run_test(size=(120, 40)) as pilot:
            for pane_id, field in [("embeddings", lambda: app.query_one(EmbeddingsPane).query_input),
                                   ("attention", lambda: app.query_one(AttentionPane).prompt),
                                   ("tokenizer", lambda: app.query_one(TokenizerPane).ids_input)]:
                await app.run_action(f"show_pane('{pane_id}')")
                await pilot.pause()  # the switch lands (its focus on the pane's main view) before the paste
                if pane_id == "tokenizer":
                    await pilot.press("f4")
                await paste(pilot, field(), text)
                assert field().value == text
                drawn = "".join(seg.text for seg in field().render_line(0))
                assert "x␛[2J�1m��[bold]y" in drawn and not obeyed(drawn), (pane_id, drawn)
                assert not screen_problems(app)

    def test_cli_json_with_a_non_utf8_argument_prints(self, tiny_hf_gpt2_dir):
        """`llmtui generate $'a\\xff' --json` failed with UnicodeEncodeError on a UTF-8 stdout (argv's lone
        surrogate was copied into the JSON); the prompt is now the text the model got, U+FFFD for the byte."""
        code, out, err = run_cli("generate", "a\udcff", "--json", "--max-new-tokens", "1", "--seed", "1",
                                 "--model", str(tiny_hf_gpt2_dir))
        assert code == 0, err
        assert json.loads(out)["prompt"] == "a\ufffd"


    def test_export_keeps_a_lone_surrogate_and_does_not_crash(self, tmp_path):
        """ctrl+s after pasting a lone surrogate ended the app (UnicodeEncodeError writing the JSON)."""
        from llmtui.export import export_pane

        data = {"text": "lone \ud800 [bold]\x1b"}
        paths = export_pane(tmp_path, "tokenizer", data, (["token"], [["\udfff"]]))
        by_ext = {p.suffix: p for p in paths}
        assert json.loads(by_ext[".json"].read_text(encoding="utf-8")) == {"pane": "tokenizer", **data}  # exact
        assert by_ext[".csv"].read_text(encoding="utf-8") == "token\n\ufffd\n"  # CSV: as the tokenizer reads it
        assert "\\udfff" in by_ext[".md"].read_text(encoding="utf-8")

    def test_markdown_escapes_every_control(self):
        """The Markdown table escaped only \\r and \\n: a token's ESC, DEL, C1 or bidi control went in raw."""
        from llmtui.export import to_markdown

        md = to_markdown(["token"], [["\x1b[31m\x7f\x9b\u202e|`\\x1b"]])
        assert md.splitlines()[2] == "| \\x1b[31m\\x7f\\x9b\\u202e\\|\\`\\\\x1b |"
        assert not obeyed(md.replace("\n", ""))

    async def test_command_palette_search_draws_controls_as_symbols(self, tiny_lm):
        """The palette's search field (Textual's Input) drew a pasted ESC [ 2 J raw; it still searches."""
        from textual.command import CommandInput, CommandList

        app = LLMTuiApp(lm=tiny_lm, pane="generate")
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("ctrl+p")
            await pilot.pause(0.05)
            field = app.screen.query_one(CommandInput)
            await paste(pilot, field, "\x1b[2J\u202e")
            drawn = "".join(seg.text for seg in field.render_line(0))
            assert field.value == "\x1b[2J\u202e" and "␛[2J�" in drawn and not screen_problems(app)
            await paste(pilot, field, "Export this")
            await wait_until(pilot, lambda: app.screen.query_one(CommandList).option_count > 0)
            assert "Export this pane" in str(app.screen.query_one(CommandList).get_option_at_index(0).prompt)

    async def test_demo_caption_and_title_are_escaped(self, tiny_lm):
        """A demo file's caption or title holding "\u001b[2J" (valid TOML) reached the terminal raw."""
        from llmtui.demo import parse_demo

        demo = parse_demo('title = "T\\u001b]0;x\\u0007"\n[[step]]\npane = "tokenizer"\n'
                          'caption = "[bold]c\\u001b[2J\\u202e"\n')
        app = LLMTuiApp(lm=tiny_lm, pane="tokenizer", demo=demo)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f8")
            await pilot.pause()
            shown = screen_text(app)
            assert "T\\x1b]0;x\\x07 · step 1/1" in shown and "[bold]c\\x1b[2J\\u202e" in shown
            assert not screen_problems(app)

    async def test_a_long_input_value_is_drawn_around_the_view(self, tiny_lm):
        """A 1 MB one-line paste: Input drew the whole value every frame (~2 s each, the cursor blinks twice a
        second), so every key waited seconds; now only the characters around the view are drawn."""
        from llmtui.app.widgets.safe_input import LONG

        text = ("[b]x\x1b[31m 東京 🍕 " * 70_000)[: 2**20]
        app = LLMTuiApp(lm=tiny_lm, pane="attention")
        async with app.run_test(size=(80, 24)) as pilot:
            field = app.query_one(AttentionPane).prompt
            await paste(pilot, field, text)
            assert field.value == text and len(text) > LONG
            width = field.scrollable_content_region.width
            drawn = "".join(seg.text for seg in field.render_line(0))
            tail = control_pictures(text)[-(width // 2):]
            assert tail in drawn, (tail, drawn)  # the end, where the cursor is
            await pilot.press("home")
            drawn = "".join(seg.text for seg in field.render_line(0))
            assert drawn.startswith(control_pictures(text)[:20]), drawn
            assert field.content_width == cell_len(control_pictures(text)) + 1
            assert not screen_problems(app)

    async def test_a_model_name_with_markup_or_escapes_fails_plainly(self, tmp_path):
        """`llmtui --model 'x[/]\x1b[31m'`: the failure's toast read the name as markup (MarkupError when drawn:
        the app ended) and the status line wrote the ESC raw."""
        app = LLMTuiApp(model=str(tmp_path / "x[/]\x1b[31m.gguf"), pane="tokenizer")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.model_state.phase == "failed", timeout=30)
            await pilot.pause()
            notes = list(app._notifications)
            assert notes and all(not n.markup for n in notes)  # a toast draws a markup message with from_markup
            assert any("x[/]\\x1b[31m.gguf" in n.message for n in notes), notes
            assert "x[/]\\x1b[31m.gguf: not loaded" in screen_text(app)
            assert not screen_problems(app)
            check_alive(app)

# -- the command line -------------------------------------------------------------------------------------


def run_cli(*argv: str) -> tuple[int, str, str]:
    """main(argv) with stdout and stderr as a terminal's: UTF-8, strict (a lone surrogate can't be printed)."""
    out, err = io.BytesIO(), io.BytesIO()
    out_text = io.TextIOWrapper(out, encoding="utf-8", errors="strict", newline="\n")
    err_text = io.TextIOWrapper(err, encoding="utf-8", errors="strict", newline="\n")
    with contextlib.redirect_stdout(out_text), contextlib.redirect_stderr(err_text):
        code = main(list(argv))
    out_text.flush()
    err_text.flush()
    return code, out.getvalue().decode(), err.getvalue().decode()


def as_model_sees(text: str) -> str:
    """The text the tokenizer encodes: lone surrogates become U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class TestCommandLine:
    @pytest.mark.parametrize("command", ["tokenize", "generate", "attention", "neighbours"])
    def test_human_and_json_output(self, tiny_hf_gpt2_dir, command):
        """Any text argument: the human format prints no raw control, bidi or markup-styled text; --json is
        valid JSON whose text round-trips exactly (lone surrogates as U+FFFD); errors are one plain line."""
        model = ["--model", str(tiny_hf_gpt2_dir)]
        extra = {"generate": ["--max-new-tokens", "2", "--seed", "1", "--top", "3"], "neighbours": ["-k", "3"]}
        extra = extra.get(command, [])

        @examples(10)
        @with_examples(EXAMPLE_TEXTS + ["[bold]x", "\x1b", "\ud800"])
        @given(text=hostile_text())
        def check(text: str) -> None:
            TRIED[f"cli {command}"] += 1
            for fmt in ([], ["--json"]):
                code, out, err = run_cli(command, text, *extra, *fmt, *model)
                assert "Traceback" not in err and "internal error" not in err, err
                if code != 0:  # refused (an empty prompt, a word that is not one token): one plain line
                    assert code == 1 and len(err.strip().splitlines()) == 1 and not obeyed(err.strip()), err
                    assert out == ""
                    continue
                assert not obeyed(err.replace("\n", ""))
                if not fmt:
                    assert not obeyed(out.replace("\n", "")), out
                    continue
                data = json.loads(out)
                if command == "tokenize":
                    assert tokenizer.decode([t["id"] for t in data["tokens"]]) == as_model_sees(text)
                elif command == "generate":
                    assert data["prompt"] == as_model_sees(text)
                    assert data["prompt_ids"] == tokenizer.prompt_ids(text)
                elif command == "attention":
                    assert [t["id"] for t in data["tokens"]] == tokenizer.prompt_ids(text)
                else:  # the query as typed; its terms' ids are the tokenizer's own for each term's text
                    assert data["query"] == as_model_sees(text)
                    assert all(term["ids"] == tokenizer.encode(term["text"]) for term in data["terms"])

        from llmtui.engine.lm import LanguageModel

        tokenizer = LanguageModel.load(str(tiny_hf_gpt2_dir)).tokenizer
        check()


# -- export -----------------------------------------------------------------------------------------------


def md_cells(line: str) -> list[str]:
    """The cells of a Markdown table row ('|' escaped as '\\|' stays in its cell)."""
    return re.split(r"(?<!\\)\|", re.sub(r"\\\\", "", line))[1:-1]


class TestExport:
    @pytest.mark.parametrize("pane_id", ["tokenizer", "generate"])
    def test_export_files(self, tiny_lm, tmp_path, pane_id):
        """ctrl+s after any text: one notice, no crash; the JSON holds the text exactly, the Markdown keeps every
        cell in its column and escapes controls, the CSV parses back to the same number of rows."""
        import csv

        folder = tmp_path / "exports"
        app = live(tiny_lm, pane_id, settings=greedy(max_new_tokens=1), export_dir=folder)
        try:
            pane = app.app.query_one(TokenizerPane if pane_id == "tokenizer" else GeneratePane)

            @examples(8)
            @with_examples(EXAMPLE_TEXTS)
            @given(text=hostile_text())
            def check(text: str) -> None:
                TRIED[f"export {pane_id}"] += 1

                async def drive(pilot):
                    before = set(folder.glob("*")) if folder.exists() else set()
                    await paste(pilot, pane.editor, text)
                    if pane_id == "generate":
                        await pilot.press("f6")
                        await pilot.pause(0.02)
                        while pane.running:
                            await pilot.pause(0.01)
                        await settle(pilot)
                    await pilot.press("ctrl+s")
                    await pilot.pause()
                    sent = getattr(pane, "_session_prompt", None)
                    return sorted(set(folder.glob("*")) - before), pane.editor.text, sent and sent.text

                new, kept, sent = app.run(drive)
                check_alive(app.app)
                by_ext = {p.suffix: p for p in new}
                if ".json" not in by_ext:
                    return  # nothing to export yet (an empty text, a refused prompt)
                data = json.loads(by_ext[".json"].read_text(encoding="utf-8"))
                if pane_id == "tokenizer":
                    assert data["text"] == kept == kept_by_editor(text)
                else:  # the generation shown: from this text, or the last one when this one was refused
                    assert data["generation"]["prompt"] == sent
                if ".md" in by_ext:
                    md = by_ext[".md"].read_text(encoding="utf-8").splitlines()[2:]  # after what computed it
                    csv_text = by_ext[".csv"].read_text(encoding="utf-8").split("\n", 1)[1]  # after its '# ' line
                    rows = list(csv.reader(io.StringIO(csv_text, newline="")))
                    assert len(md) == len(rows) + 1
                    assert all(len(md_cells(line)) == len(rows[0]) for line in md), md
                    assert not obeyed("".join(md))

            check()
        finally:
            app.close()


# -- text the model writes --------------------------------------------------------------------------------


class TestModelText:
    def test_any_tokens_the_model_writes(self, tiny_lm):
        """Force any tokens as the model's output (control bytes, halves of UTF-8 characters, specials, markup
        pieces): the output, the probability table, the status line, and the attention map of that text (`g`)
        draw nothing raw and style nothing from markup."""
        from llmtui.app.widgets.prob_table import ProbabilityTable

        app = live(tiny_lm, "generate", settings=greedy(max_new_tokens=20), prompt="The")
        vocab = tiny_lm.tokenizer.vocab_size
        markup_ids = [i for i in range(vocab) if any(c in tiny_lm.tokenizer.token_bytes(i) for c in b"[]\x1b\x07\x9b")]
        try:
            pane = app.app.query_one(GeneratePane)
            attention = app.app.query_one(AttentionPane)

            @examples(5)
            @example(ids=markup_ids[:12])
            @given(ids=st.lists(st.one_of(st.integers(0, vocab - 1), st.sampled_from(markup_ids)), min_size=1,
                                max_size=8))
            def check(ids: list[int]) -> None:
                TRIED["model tokens"] += 1

                async def drive(pilot):
                    await pilot.press("ctrl+n")
                    await pilot.press("f6")
                    await settle(pilot)
                    table = pane.query_one(ProbabilityTable)
                    for token_id in ids:
                        table.post_message(ProbabilityTable.Chosen(table, len(pane.steps), token_id, preview=True))
                        await pilot.pause(0.01)
                        while pane.running:
                            await pilot.pause(0.01)
                        await settle(pilot)
                    pane.output.selected = len(pane.steps) - 1
                    await pilot.pause()
                    problems = screen_problems(pilot.app)
                    forced = [s.token_id for s in pane.steps][1:]
                    await pilot.app.run_action("show_pane('attention')")
                    attention.action_from_generate()
                    await pilot.pause(0.05)
                    await settle(pilot)
                    problems += screen_problems(pilot.app)
                    await pilot.app.run_action("show_pane('generate')")
                    await pilot.pause()
                    return problems, forced

                problems, forced = app.run(drive)
                check_alive(app.app)
                assert forced == ids[: len(forced)] and forced  # the tokens shown are the ones forced
                assert not problems, problems

            check()
        finally:
            app.close()


# -- dialogs ----------------------------------------------------------------------------------------------


class TestDialogs:
    def test_knob_value_and_command_palette(self, tiny_lm):
        """Any text typed as a knob's value (refused in one line, kept in the field) or searched for in the
        command palette: nothing raw on screen, no crash."""
        app = live(tiny_lm, "generate")
        try:
            pane = app.app.query_one(GeneratePane)

            @examples(8)
            @with_examples(ONE_LINE_EXAMPLES, where="knob")
            @given(text=hostile_line(), where=st.sampled_from(["knob", "palette"]))
            def check(text: str, where: str) -> None:
                TRIED[f"{where} input"] += 1

                async def drive(pilot):
                    if where == "knob":
                        pane.knob("temperature").focus()
                        await pilot.press("enter")
                    else:
                        await pilot.press("ctrl+p")
                    await pilot.pause(0.05)
                    field = pilot.app.screen.query_one("Input")
                    await paste(pilot, field, text)
                    if where == "knob":
                        await pilot.press("enter")
                    await pilot.pause(0.05)
                    problems = screen_problems(pilot.app)
                    still_open = pilot.app.screen is field.screen
                    kept = field.value
                    if still_open:
                        await pilot.press("escape")
                        await pilot.pause()
                    return problems, kept, still_open

                problems, kept, still_open = app.run(drive)
                check_alive(app.app)
                assert not problems, problems
                if still_open:  # a refused value stays as typed
                    assert kept == text

            check()
        finally:
            app.close()


# -- 1 MB pastes ------------------------------------------------------------------------------------------


class TestLargePaste:
    def test_one_mb_in_every_editor_and_input(self, tiny_lm):
        """A 1 MB paste of hostile text into each editor and one-line input: kept exactly, nothing raw on
        screen, and the app still answers keys (the Tokenizer tokenizes the first MAX_LIVE_CHARS and says so)."""
        from hostile import one_mb_paste

        from llmtui.app.panes.tokenizer import MAX_LIVE_CHARS

        big = one_mb_paste()
        line = big.replace("\n", " ")  # a one-line input keeps the first line of a paste
        app = live(tiny_lm, "tokenizer")
        try:
            cases = [("tokenizer", lambda a: a.query_one(TokenizerPane).editor, big),
                     ("generate", lambda a: a.query_one(GeneratePane).editor, big),
                     ("layers", lambda a: a.query_one(LayersPane).editor, big),
                     ("embeddings", lambda a: a.query_one(EmbeddingsPane).query_input, line),
                     ("attention", lambda a: a.query_one(AttentionPane).prompt, line)]
            for pane_id, field, text in cases:
                TRIED["1 MB paste"] += 1

                async def drive(pilot, pane_id=pane_id, field=field, text=text):
                    await pilot.app.run_action(f"show_pane('{pane_id}')")
                    await pilot.pause()  # the pane focuses its default widget first
                    widget = field(pilot.app)
                    await paste(pilot, widget, text)
                    if pane_id in ("generate", "embeddings", "attention"):  # refused: too long, or not words
                        await pilot.press("f5" if pane_id == "generate" else "enter")
                    await pilot.pause(0.05)
                    await settle(pilot)
                    kept = widget.text if hasattr(widget, "document") else widget.value
                    problems = screen_problems(pilot.app)
                    await pilot.press("f1")  # still answers keys: the help opens, and closes
                    opened = type(pilot.app.screen).__name__
                    await pilot.press("escape")
                    return kept, problems, opened

                kept, problems, opened = app.run(drive, timeout=120)
                check_alive(app.app)
                assert kept == text, pane_id  # the one-MB text holds no line break but \n: kept exactly
                assert not problems, (pane_id, problems)
                assert opened == "HelpScreen", (pane_id, opened)
            info = app.app.query_one(TokenizerPane).info
            assert f"first {MAX_LIVE_CHARS:,} of {len(big):,} characters" in info, info
        finally:
            app.close()


# -- demo files -------------------------------------------------------------------------------------------


def toml_string(text: str) -> str:
    """A TOML basic string holding `text` exactly (every character that is not printable ASCII escaped)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


class TestDemoFiles:
    def test_captions_and_prompts(self, tiny_lm):
        """A demo whose caption, title and prompts hold any text: shown literally, the prompt in the pane exactly."""
        from llmtui.app.demo_runner import DemoRunner
        from llmtui.demo import parse_demo

        app = live(tiny_lm, "tokenizer")
        try:
            no_surrogates = hostile_text().map(lambda s: "".join(c for c in s if not "\ud800" <= c <= "\udfff"))

            @examples(10)
            @with_examples([s for s in EXAMPLE_TEXTS if "\ud800" not in s])
            @given(text=no_surrogates)
            def check(text: str) -> None:
                TRIED["demo text"] += 1
                source = (f"title = {toml_string(text[:20] or 'x')}\n"
                          f"[[step]]\npane = \"tokenizer\"\nprompt = {toml_string(text)}\n"
                          f"caption = {toml_string(text)}\n")
                demo = parse_demo(source, "hostile.toml")

                async def drive(pilot):
                    pilot.app.demo_runner = DemoRunner(pilot.app, demo)
                    await pilot.press("f8")
                    await pilot.pause(0.05)
                    await settle(pilot)
                    return pilot.app.query_one(TokenizerPane).editor.text, screen_problems(pilot.app)

                kept, problems = app.run(drive)
                check_alive(app.app)
                assert kept == kept_by_editor(text)
                assert not problems, problems

            check()
        finally:
            app.close()
