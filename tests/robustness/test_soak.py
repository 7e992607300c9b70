"""Soak test: a seeded random walk of key presses, clicks, pastes and resizes across every pane.

The walk drives the app as a terminal would (key and mouse events through the driver,
without waiting for the app to go idle, so generations stream while it goes on), on the
tiny model. It starts and stops generations, sets every knob to its extremes and
generates there, forks from the probability table, compares (two settings, two models, two
marked branches), toggles chat mode, types hostile text, opens the help and the command
palette, changes the theme and resizes the terminal from 40x12 to 300x100. It must end with
no exception, no "internal error" anywhere, every worker finished, the model thread idle, and
the app still answering keys.

Replay a failure with the seed it prints:
    LLMTUI_SOAK_SEED=<seed> .venv/bin/python -m pytest tests/robustness/test_soak.py
Walk longer locally with LLMTUI_SOAK_STEPS=10000 (the default is 2,000 key presses and clicks).
"""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from app_fixtures import make_app, wait_for
from textual import events
from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Input, OptionList, TextArea
from textual.worker import Worker, WorkerState

from llmtui.app.model_thread import model_thread_idle
from llmtui.app.panes.generate import PREVIEW_DELAY, GeneratePane
from llmtui.app.screens.compare.model_picker import ModelPickerScreen
from llmtui.app.screens.help import HelpScreen
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.engine.settings import KNOB


STEPS = int(os.environ.get("LLMTUI_SOAK_STEPS", "2000"))
"""Key presses and clicks per walk (wheel turns, pastes and resizes come on top)."""
SEEDS = [int(os.environ["LLMTUI_SOAK_SEED"])] if os.environ.get("LLMTUI_SOAK_SEED") else [1]
"""One walk by default (about a minute on two cores); other seeds are walked locally (see the README)."""
PANE_IDS = ("tokenizer", "embeddings", "attention", "layers", "generate")

PANE_KEYS = {
    "tokenizer": ["f2", "shift+f2", "f3", "f4", "f5", "left", "right", "up", "down", "home", "end", "enter", "tab",
                  "shift+tab", "backspace", "delete"],
    "embeddings": ["f2", "f3", "f4", "alt+left", "alt+right", "ctrl+b", "ctrl+f", "up", "down", "left", "right",
                   "enter", "tab", "shift+tab", "backspace", "home", "end"],
    "attention": ["left_square_bracket", "right_square_bracket", "comma", "full_stop", "a", "o", "O", "g",
                  "escape", "up", "down", "left", "right", "pageup", "pagedown", "home", "end", "plus", "minus",
                  "enter", "tab", "shift+tab"],
    "layers": ["a", "c", "space", "up", "down", "left", "right", "home", "end", "pageup", "pagedown",
               "ctrl+home", "ctrl+end", "enter", "tab", "shift+tab"],
    "train": ["f5", "escape", "f4", "f6", "f7", "tab", "shift+tab", "up", "down"],
    "generate": ["f5", "ctrl+g", "escape", "f6", "n", "space", "f7", "ctrl+t", "ctrl+n", "enter", "c", "ctrl+r",
                 "left", "right", "up", "down", "home", "end", "tab", "shift+tab", "minus", "plus", "r", "f", "j", "k", "f2", "f3", "f4", "ctrl+b", "x", "ctrl+z", "ctrl+y", "ctrl+o"],
}
"""Each pane's keys (its BINDINGS and the keys of its widgets) and the navigation keys."""
ANY_PANE_KEYS = ["f1", "question_mark", "f8", "shift+f8", "f9", "ctrl+c", "ctrl+s", "escape", "tab", "shift+tab",
                 "ctrl+l", *(f"alt+{n}" for n in range(1, 6))]

HOSTILE = [
    "[bold]", "[/]", "[red]not red[/red", "[link=https://example.com]x[/link]", "[[", "]]", "[/bold]",
    "\x1b[31mred\x1b[0m", "\x1b]8;;https://example.com\x07osc\x1b]8;;\x07", "\x1b[2J\x1b[H",
    "\x00\x01\x02\x07\x08\x0b\x0c\x7f", "\r\n\t", "a\u200bb\u200d\u202eright to left\u202c", "\ufeff\u2028\u2029",
    "<|im_end|>", "<|im_start|>assistant\n", "<|endoftext|>", "\ud800lone", "e\u0301\u0301\u0301", "🦙" * 40,
    "x" * 5000,
]
"""Strings a user may paste or type: markup, escapes, control and invisible characters, special-token text."""

SIZES = [(40, 12), (300, 100), (80, 24), (120, 36), (60, 20), (200, 50), (100, 40), (45, 30), (250, 15)]


@dataclass
class Extreme:
    label: str
    knob: str  # the SamplingSettings field
    value: float | int
    typed: str  # what the user types in the knob's value box


@dataclass
class Walk:
    """The walk's state: what it did (the last actions for a failure's message) and what it covered."""

    seed: int
    rng: random.Random
    pilot: object
    extremes: list[Extreme]
    events: int = 0
    keys: int = 0
    clicks: int = 0
    log: deque = field(default_factory=lambda: deque(maxlen=30))
    per_pane: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    kind_time: Counter = field(default_factory=Counter)
    gave_up: Counter = field(default_factory=Counter)  # waits that timed out (the walk went on)
    set_extremes: Counter = field(default_factory=Counter)
    generated_at: Counter = field(default_factory=Counter)
    internal_errors: list = field(default_factory=list)
    run_kinds: Counter = field(default_factory=Counter)  # generations started, by kind (generate, step, fork, ...)
    sizes: Counter = field(default_factory=Counter)
    mid_generation_switches: int = 0
    next_size: int = 0
    next_extreme: int = 0

    @property
    def app(self):
        return self.pilot.app  # type: ignore[attr-defined]

    @property
    def generate_pane(self) -> GeneratePane:
        return self.app.query_one(GeneratePane)

    # -- input, as a terminal sends it ---------------------------------------------------------

    async def key(self, key: str) -> None:
        char = key if len(key) == 1 else {"space": " ", "tab": "\t", "enter": "\r"}.get(key)
        if len(key) == 1 and not key.isalnum():
            from textual.keys import _character_to_key

            key = _character_to_key(key)
        self.app._driver.send_message(events.Key(key, char))
        self.events += 1
        self.keys += 1
        await asyncio.sleep(0)  # the next key may come before this one is handled, as in a terminal

    async def type(self, text: str) -> None:
        for ch in text:
            await self.key(ch)

    async def mouse(self, x: int, y: int, kind: str = "click") -> None:
        args = {"widget": None, "x": x, "y": y, "delta_x": 0, "delta_y": 0, "button": 1, "shift": False, "meta": False,
                "ctrl": False}
        send = self.app._driver.send_message
        if kind == "click":
            send(events.MouseDown(**args))
            send(events.MouseUp(**args))
            self.clicks += 1
        else:
            send((events.MouseScrollUp if kind == "up" else events.MouseScrollDown)(**{**args, "button": 0}))
        self.events += 1
        await asyncio.sleep(0)

    async def click_widget(self, widget) -> bool:
        """Click a random cell of the widget's visible part; False if none of it is on screen."""
        region = widget.region.intersection(self.app.screen.region)
        if region.area == 0:
            return False
        await self.mouse(self.rng.randrange(region.x, region.right), self.rng.randrange(region.y, region.bottom))
        return True

    async def paste(self, text: str) -> None:
        self.app._driver.send_message(events.Paste(text))
        self.events += 1
        await asyncio.sleep(0)

    async def resize(self, width: int, height: int) -> None:
        self.events += 1
        self.sizes[(width, height)] += 1
        await self.pilot.resize_terminal(width, height)  # type: ignore[attr-defined]

    async def until(self, condition, timeout: float = 10.0, what: str = "condition") -> bool:
        """Wait for condition(); False (not a failure: the walk may have moved on) after timeout."""
        try:
            await wait_for(self.pilot, condition, timeout, what)
        except AssertionError:
            self.log.append(f"  (gave up waiting for {what})")
            self.gave_up[what] += 1
            return False
        return True

    # -- where the walk is -------------------------------------------------------------------

    @property
    def on_main_screen(self) -> bool:
        return len(self.app.screen_stack) == 1

    @property
    def pane_id(self) -> str:
        return self.app.current_pane.PANE_ID

    def visible_widgets(self) -> list:
        screen = self.app.screen
        return [w for w in screen.query("*") if w.display and w.region.intersection(screen.region).area > 0]

    # -- actions -----------------------------------------------------------------------------

    async def act(self) -> None:
        """One random action (one or a few input events)."""
        rng = self.rng
        if not self.on_main_screen:
            await self.on_modal()
            await self.pilot.pause(0)  # type: ignore[attr-defined]
            return
        self.per_pane[self.pane_id] += 1
        actions = [
            (15, self.switch_pane),
            (30, self.pane_key),
            (4, self.any_pane_key),
            (12, self.type_text),
            (3, self.paste_hostile),
            (14, self.click_something),
            (3, self.wheel),
            (8 if self.pane_id == "generate" else 2, self.generation),
            (1, self.knob_extreme),
            (3 if self.pane_id == "generate" else 1, self.fork),
            (2 if self.pane_id == "generate" else 1, self.compare_or_branches),
            (1, self.palette),
            (1, self.theme),
            (2, self.resize_random),
        ]
        action = rng.choices([a for _, a in actions], [w for w, _ in actions])[0]
        self.kinds[action.__name__] += 1
        t0 = time.perf_counter()
        await action()
        await self.pilot.pause(0)  # type: ignore[attr-defined] # the screen has handled the action's events
        self.kind_time[action.__name__] += time.perf_counter() - t0

    async def on_modal(self) -> None:
        """A help screen, value box or palette is open: type into it, or close it."""
        screen = self.app.screen
        choice = self.rng.random()
        if isinstance(screen, ModelPickerScreen):  # a catalogue row would download a model: A's or --model-b's
            await self.pick_b_model(screen)
        elif choice < 0.5:
            self.log.append(f"escape on {type(screen).__name__}")
            await self.key("escape")
        elif choice < 0.8:
            text = self.rng.choice(["0", "1", "-3", "x", "1e9", "nan", "inf", "random", "", "[b]", "99999"])
            # enter in the palette would run whatever command is highlighted, Quit included
            last = "escape" if isinstance(screen, CommandPalette) else "enter"
            self.log.append(f"type {text!r} + {last} on {type(screen).__name__}")
            await self.type(text)
            await self.key(last)
        else:
            await self.click_something()
        self.kinds["modal"] += 1

    async def switch_pane(self) -> None:
        target = self.rng.choice(PANE_IDS)
        if self.rng.random() < 0.4:  # the least visited pane: Generate's actions would draw the walk there
            target = min(PANE_IDS, key=lambda p: self.per_pane[p])
        self.mid_generation_switches += self.generate_pane.running
        how = self.rng.random()
        if how < 0.5:  # in a text box, the digit is typed: the pane stays
            self.log.append(f"key {PANE_IDS.index(target) + 1} ({target})")
            await self.key(str(PANE_IDS.index(target) + 1))
        else:
            self.log.append(f"click tab {target}")
            await self.click_widget(self.app.query_one(f"#tab-{target}"))

    async def pane_key(self) -> None:
        keys = [self.rng.choice(PANE_KEYS[self.pane_id]) for _ in range(self.rng.choice((1, 1, 2, 3)))]
        self.log.append(f"keys {keys} on {self.pane_id}")
        for key in keys:
            await self.key(key)

    async def any_pane_key(self) -> None:
        key = self.rng.choice(ANY_PANE_KEYS)
        self.log.append(f"key {key} on {self.pane_id}")
        await self.key(key)

    async def focus_an_editor(self) -> None:
        """Click one of the pane's text boxes (if one shows), as a user would before typing."""
        boxes = [w for w in self.visible_widgets() if isinstance(w, (TextArea, Input))]
        if boxes and not isinstance(self.app.focused, (TextArea, Input)):
            box = self.rng.choice(boxes)
            self.log.append(f"click {box.id}")
            await self.click_widget(box)

    async def type_text(self) -> None:
        await self.focus_an_editor()
        alphabet = "abcdefghijklmnopqrstuvwxyz      ABCXYZ0123456789.,!?'-+[]/\\<>|=_()éß日"
        text = "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, 8)))
        if self.rng.random() < 0.2:
            text = self.rng.choice(["[bold]", "[/]", "[red]", "<|im_end|>", "king - man + woman"])
        self.log.append(f"type {text!r} into {getattr(self.app.focused, 'id', None)}")
        await self.type(text)
        if self.rng.random() < 0.3:
            key = self.rng.choice(["enter", "backspace", "ctrl+a", "ctrl+z", "ctrl+y", "delete", "home", "end"])
            await self.key(key)

    async def paste_hostile(self) -> None:
        await self.focus_an_editor()
        text = self.rng.choice(HOSTILE)
        self.log.append(f"paste {text[:40]!r}{'…' if len(text) > 40 else ''} into {getattr(self.app.focused, 'id', None)}")
        await self.paste(text)

    async def click_something(self) -> None:
        screen = self.app.screen
        if self.rng.random() < 0.25:
            x, y = self.rng.randrange(screen.size.width), self.rng.randrange(screen.size.height)
            self.log.append(f"click ({x}, {y})")
            await self.mouse(x, y)
            return
        widgets = self.visible_widgets()
        if widgets:
            widget = self.rng.choice(widgets)
            self.log.append(f"click {type(widget).__name__}#{widget.id}")
            await self.click_widget(widget)

    async def wheel(self) -> None:
        screen = self.app.screen
        x, y = self.rng.randrange(screen.size.width), self.rng.randrange(screen.size.height)
        kind = self.rng.choice(["up", "down"])
        self.log.append(f"wheel {kind} at ({x}, {y})")
        for _ in range(self.rng.randint(1, 3)):
            await self.mouse(x, y, kind)

    async def generation(self) -> None:
        """Start, step, go on or stop a generation; often switch panes right after (mid-generation)."""
        if self.pane_id != "generate":
            self.log.append("key 5 (generate)")
            await self.key("5")
        if self.rng.random() < 0.2:
            await self.step_then_go_on()
        else:
            key = self.rng.choice(["f5", "f5", "ctrl+g", "f6", "f6", "f7", "escape", "ctrl+n", "ctrl+t"])
            self.log.append(f"key {key} on generate")
            await self.key(key)
        if self.rng.random() < 0.4:
            target = self.rng.choice(PANE_IDS)
            self.mid_generation_switches += self.generate_pane.running
            self.log.append(f"key {PANE_IDS.index(target) + 1} ({target}) right after")
            await self.key(str(PANE_IDS.index(target) + 1))

    async def step_then_go_on(self) -> None:
        """F6 (one token), then F7 once it is done (go on from there); a running generation is stopped first."""
        pane = self.generate_pane
        if self.pane_id != "generate":
            await self.click_widget(self.app.query_one("#tab-generate"))
            await self.until(lambda: self.pane_id == "generate", 2, "the Generate pane")
        if pane.running:
            self.log.append("escape (stop), then wait")
            pane.editor.focus()
            await self.key("escape")
            await self.until(lambda: not pane.running, 2, "the generation to stop")
        self.log.append("key f6, then f7 once it has stepped (one token, then go on)")
        run = pane._run
        await self.key("f6")
        await self.until(lambda: pane._run is not run and not pane.running, 2, "the step")
        await self.key("f7")

    async def pick_b_model(self, picker: ModelPickerScreen) -> None:
        """In B's model list: A's own model (row 0) or --model-b's (row 1), or back out."""
        if self.rng.random() < 0.2:
            self.log.append("escape on the model list")
            await self.key("escape")
            return
        row = self.rng.randint(0, 1)
        self.log.append(f"model list: row {row}, enter")
        picker.query_one(OptionList).highlighted = row
        await self.key("enter")
        self.kinds["compare: B's model picked"] += 1

    def model_b_words(self) -> str:
        """B's words naming the app's --model-b, maybe with knobs."""
        return shlex.join([f"model={self.app.second_model.spec}", *self.rng.choice([[], ["temperature=2"]])])

    async def compare_or_branches(self) -> None:
        """F2 (Compare: maybe new knobs for B, maybe another model, maybe the other mode) or F3 (Branches: reopen,
        rename, delete, undo, redo, mark two and compare them), then back; or undo/redo a fork from the pane.
        Saving and loading are left to the tests (they write files)."""
        from llmtui.app.screens.branches.screen import BranchesScreen
        from llmtui.app.screens.compare.screen import CompareScreen

        if self.pane_id != "generate":
            await self.click_widget(self.app.query_one("#tab-generate"))
            await self.until(lambda: self.pane_id == "generate", 2, "the Generate pane")
        self.generate_pane.table.focus()
        await self.pilot.pause()  # type: ignore[attr-defined]  # the focus moves on the next frame
        choice = self.rng.random()
        if choice < 0.45:
            self.log.append("compare: f2")
            await self.key("f2")
            await self.until(lambda: isinstance(self.app.screen, CompareScreen), 1, "the Compare screen")
            if isinstance(self.app.screen, CompareScreen):
                self.kinds["compare"] += 1
                screen = self.app.screen
                if self.rng.random() < 0.5:
                    words = self.rng.choice(
                        ["temperature=2", "top-k=1", "typical-p=0.5 top-n-sigma=1", "frequency-penalty=2", "x", "model=y",
                         "banned=1,2,3", "logit_bias=5:100", "'unclosed", self.model_b_words(), self.model_b_words()])
                    self.log.append(f"compare: B's words {words!r}, f5")
                    screen.query_one("#cmp-b", Input).value = words
                    await self.key("f5")
                    self.kinds["compare: model B"] += "model=" in words and "model=y" not in words
                if self.rng.random() < 0.2:
                    self.log.append("compare: f4 (B's model)")
                    await self.key("f4")
                    if await self.until(lambda: isinstance(self.app.screen, ModelPickerScreen), 1, "the model list"):
                        await self.pick_b_model(self.app.screen)
                if self.rng.random() < 0.3:
                    await self.key("ctrl+o")
                for _ in range(self.rng.randint(0, 3)):
                    await self.key(self.rng.choice(["up", "down", "end", "home"]))
                await self.key("escape")
        elif choice < 0.9:
            self.log.append("branches: f3")
            await self.key("f3")
            await self.until(lambda: isinstance(self.app.screen, BranchesScreen), 1, "the Branches screen")
            if isinstance(self.app.screen, BranchesScreen):
                self.kinds["branches"] += 1
                for _ in range(self.rng.randint(1, 6)):
                    key = self.rng.choice(["up", "down", "d", "ctrl+z", "ctrl+y", "enter", "r", "m", "space", "m", "c"])
                    self.log.append(f"branches: {key}")
                    await self.key(key)
                    if key == "c" and await self.until(lambda: isinstance(self.app.screen, CompareScreen), 1,
                                                       "two branches in Compare"):
                        self.kinds["compare: branches"] += 1
                        await self.key(self.rng.choice(["down", "ctrl+o", "f4", "escape"]))
                    if not isinstance(self.app.screen, BranchesScreen):
                        break
        else:
            key = self.rng.choice(["ctrl+z", "ctrl+y"])
            self.log.append(f"{key} (fork) on the table")
            await self.key(key)

    async def two_sided_compares(self) -> None:
        """A top-up: a text and a fork (two branches), the two branches in Compare, then the text against
        --model-b's model; each waited for to the end."""
        from llmtui.app.screens.branches.screen import BranchesScreen
        from llmtui.app.screens.compare.screen import CompareScreen

        pane = self.generate_pane
        await self.plain_prompt()
        pane.table.focus()
        await self.pilot.pause()  # type: ignore[attr-defined]
        await self.key("ctrl+r")  # the knobs back to their defaults: an extreme may have left max tokens 0
        await self.key("f5")
        await settle_all(self)
        self.log.append("fork: output, home, enter (its table), to a row not drawn, enter")
        pane.output.focus()
        await self.key("home")
        await self.key("enter")
        table = pane.table
        if await self.until(lambda: self.app.focused is table and table.view is not None and table.view.drawn is not None,
                            5, "the table of the first token"):
            view = table.view
            moves = next(i for i, c in enumerate(view.candidates) if c.id != view.drawn) - table.cursor
            for _ in range(abs(moves)):
                await self.key("down" if moves > 0 else "up")
            await self.key("enter")
        await settle_all(self)
        pane.table.focus()
        await self.pilot.pause()  # type: ignore[attr-defined]

        def done(screen) -> bool:  # the screen may be pushed and not yet composed: no message line yet
            lines = screen.query("#cmp-message")
            return bool(lines) and "Done" in str(lines.first().render())

        self.log.append("branches: f3, ctrl+home, m, down, m, c")
        await self.key("f3")
        if await self.until(lambda: isinstance(self.app.screen, BranchesScreen)
                            and isinstance(self.app.focused, DataTable), 5, "the Branches screen's list"):
            for key in ("ctrl+home", "m", "down", "m", "c"):
                await self.key(key)
            if await self.until(lambda: isinstance(self.app.screen, CompareScreen), 5, "two branches in Compare"):
                self.kinds["compare: branches"] += await self.until(lambda: done(self.app.screen), 30, "the comparison")
        await settle_all(self)
        self.log.append("compare: f2, B's model, f5")
        await self.key("f2")
        if await self.until(lambda: isinstance(self.app.screen, CompareScreen), 5, "the Compare screen"):
            screen = self.app.screen
            screen.query_one("#cmp-b", Input).value = self.model_b_words()
            await self.key("f5")
            self.kinds["compare: model B"] += await self.until(
                lambda: done(screen) and screen.lm_b is not None and screen.lm_b is not screen.lm, 60, "model B")
        await settle_all(self)

    async def plain_prompt(self) -> None:
        """A new short plain (not chat) prompt, its table shown: for the top-ups (the walk may have left an
        empty prompt, a chat, or one over the tiny model's 128-token window)."""
        pane = self.generate_pane
        await settle_all(self)
        self.app.set_focus(None)  # a digit in a text box is typed
        await self.key("5")
        await self.until(lambda: self.pane_id == "generate", 5, "the Generate pane")
        pane.editor.focus()
        await self.key("ctrl+n")
        if pane.chat_mode:
            await self.key("ctrl+t")
        await self.pilot.pause()  # type: ignore[attr-defined]
        pane.editor.clear()  # what a user would select and delete
        await self.type(" Once upon")
        # every key handled before the next action moves the focus (an "n" that reached the output was a step)
        await self.until(lambda: pane.editor.text == " Once upon", 5, "the typed prompt")
        # and the preview of this prompt shown: a fork chosen while the table is empty (the edit's preview
        # still waiting out its debounce) chooses nothing
        await self.pilot.pause(PREVIEW_DELAY + 0.1)  # type: ignore[attr-defined]
        await self.until(lambda: pane.table.view is not None and pane.table.view.preview
                         and all(w.is_finished for w in self.app.workers if w.group == "preview"), 5, "the table")

    async def palette_command(self, query: str, prompt_starts: str) -> bool:
        """Open the palette, type `query`, pick the command whose prompt starts with `prompt_starts`."""
        self.log.append(f"palette: {query!r}")
        await self.key("ctrl+p")
        if not await self.until(lambda: isinstance(self.app.screen, CommandPalette), 5, "the palette"):
            return False
        palette = self.app.screen
        await self.type(query)
        # The palette seen may be an earlier one that an escape still queued then closed (the walk does not wait).
        if palette is not self.app.screen or not palette.query(CommandList):
            self.log.append("  (the palette closed: an earlier escape)")
            return False
        commands = palette.query_one(CommandList)

        def match() -> int | None:
            prompts = [str(commands.get_option_at_index(i).prompt) for i in range(commands.option_count)]
            return next((i for i, p in enumerate(prompts) if p.startswith(prompt_starts)), None)

        if not await self.until(lambda: match() is not None or palette is not self.app.screen, 5,
                                f"the palette's {prompt_starts!r}") or palette is not self.app.screen:
            await self.key("escape")
            return False
        commands.highlighted = match()  # where a user would move with the arrows (which may take 50 presses)
        await self.key("enter")
        return True

    async def knob_extreme(self, extreme: Extreme | None = None) -> None:
        """Set the next knob extreme (typed in its value box), then usually generate there."""
        if extreme is None:
            extreme = self.extremes[self.next_extreme % len(self.extremes)]
            self.next_extreme += 1
        pane = self.generate_pane
        knob = pane.knob(extreme.knob)
        if self.pane_id != "generate" and self.rng.random() < 0.7:
            self.log.append("click tab generate")
            await self.click_widget(self.app.query_one("#tab-generate"))
            await self.until(lambda: self.pane_id == "generate", 2, "the Generate pane")
        knob_region = knob.region.intersection(self.app.screen.region)
        if self.pane_id == "generate" and knob_region.area and self.rng.random() < 0.8:
            self.log.append(f"click knob {extreme.knob}, enter")
            await self.mouse(knob_region.x + knob_region.width // 2, knob_region.y)
            await self.until(lambda: self.app.focused is knob, 2, "the knob's focus")
            await self.key("enter")
        else:
            label = knob.spec.label
            await self.palette_command(f"set {label}", f"Generate: set {label}…")
        if not await self.until(lambda: isinstance(self.app.screen, ValueInputScreen), 5, "the value box"):
            return
        await self.until(lambda: isinstance(self.app.focused, Input), 2, "the value box's focus")
        self.log.append(f"type {extreme.typed!r} + enter ({extreme.label})")
        await self.type(extreme.typed)
        await self.key("enter")
        await self.until(lambda: self.on_main_screen, 5, "the value box to close")
        if self.rng.random() < 0.9:
            if self.pane_id != "generate":
                await self.key("5")
            if pane.running:
                self.log.append("escape (stop the generation first)")
                pane.editor.focus()
                await self.key("escape")
                await self.until(lambda: not pane.running, 5, "the generation to stop")
            if not pane.editor.text.strip():
                pane.editor.focus()  # a user clicks into the prompt; the click may be off screen at 40x12
                self.log.append("type 'Once upon' into prompt")
                await self.type("Once upon")
            key = self.rng.choice(["f5", "f6", "f7"])
            self.log.append(f"key {key} ({extreme.label})")
            await self.key(key)

    async def fork(self) -> None:
        """Pick a row of the probability table and choose it: enter on it, or a second click."""
        if self.pane_id != "generate":
            await self.key("5")
        table = self.generate_pane.table
        if self.rng.random() < 0.5 and table.region.intersection(self.app.screen.region).area:
            region = table.region.intersection(self.app.screen.region)
            x, y = self.rng.randrange(region.x, region.right), self.rng.randrange(region.y, region.bottom)
            self.log.append(f"double click table at ({x}, {y})")
            await self.mouse(x, y)
            await self.mouse(x, y)
        else:
            moves = self.rng.randint(1, 5)  # row 0 is often the drawn token: choosing it again forks nothing
            self.log.append(f"fork by keys: focus table, down x{moves}, enter")
            self.generate_pane.output.focus()  # the user tabs there; tab order differs by size
            await self.key("enter")
            for _ in range(moves):
                await self.key("down")
            await self.key("enter")

    async def palette(self) -> None:
        """Open the help or the palette, sometimes run a command, close it."""
        choice = self.rng.random()
        if choice < 0.3:
            key = self.rng.choice(["f1", "question_mark"])
            self.log.append(f"help ({key}) on {self.pane_id}")
            await self.key(key)
            await self.until(lambda: isinstance(self.app.screen, HelpScreen), 5, "the help")
            await self.key(self.rng.choice(["escape", "f1", "q", "question_mark"]))
        elif choice < 0.6:
            self.log.append("palette, type, escape")
            await self.key("ctrl+p")
            await self.type(self.rng.choice(["gen", "layer", "xyz", "[bold]", "theme", ""]))
            await self.key("escape")
        else:
            command = self.rng.choice([
                ("step", "Generate: Step"), ("clear", "Generate: Clear"), ("show the tok", "Show the Tokenizer"),
                ("show the lay", "Show the Layers"), ("next head", "Attention: Next head"), ("greedy", "Generate: greedy"),
                ("random seed", "Generate: random seed"), ("advance", "Advance"), ("chat mode", "Generate: Chat"),
            ])
            await self.palette_command(*command)

    async def theme(self) -> None:
        if self.rng.random() < 0.5:
            self.log.append("F9 (presentation)")
            await self.key("f9")
        else:
            which = self.rng.choice(["Dark theme", "Light theme"])
            await self.palette_command(which.lower(), which)

    async def resize_random(self) -> None:
        if self.rng.random() < 0.6:  # the listed sizes in turn (the smallest and the largest first), or any size
            width, height = SIZES[self.next_size % len(SIZES)]
            self.next_size += 1
        else:
            width, height = self.rng.randint(40, 300), self.rng.randint(12, 100)
        self.log.append(f"resize {width}x{height}")
        await self.resize(width, height)

    # -- bookkeeping after each action ----------------------------------------------------------

    def observe(self) -> None:
        pane = self.generate_pane
        for extreme in self.extremes:
            if getattr(pane.settings, extreme.knob) == extreme.value:
                self.set_extremes[extreme.label] += 1

    def count_runs(self) -> None:
        """Count every generation the Generate pane starts, as it starts it. (Looking at the pane's latest run
        after each action missed runs: keys are handled after the action returns, and a later run or ctrl+n
        replaces the one before. A seed-1 walk in CI counted 10 forks by keys as none.)"""
        pane = self.generate_pane
        start = pane._start

        def counted(kind, *args, **kwargs) -> None:
            start(kind, *args, **kwargs)
            run = pane._run
            self.run_kinds[run.kind] += 1
            for extreme in self.extremes:
                if getattr(run.settings, extreme.knob) == extreme.value:
                    self.generated_at[extreme.label] += 1

        pane._start = counted

    def record(self, message) -> None:
        """The message hook: an "internal error" in any message is a bug the app caught and showed; a worker
        that ended in error is one nobody showed (exit_on_error=False keeps it from reaching the app)."""
        if isinstance(message, Worker.StateChanged) and message.state == WorkerState.ERROR:
            self.internal_errors.append(f"worker {message.worker.name}: {message.worker.error!r}")
        for value in vars(message).values():
            if isinstance(value, str) and "internal error" in value.lower():
                self.internal_errors.append(f"{type(message).__name__}: {value}")

    def state(self) -> str:
        """Where the app is, for a failure's message."""
        try:
            app = self.app
            tabs = app.query_one("#tabs")
            return (f"screens {[type(s).__name__ for s in app.screen_stack]}, size {app.size}, "
                    f"pane {app.query_one('#panes').current}, focused {app.focused!r}, "
                    f"tabs region {tabs.region} active {tabs.active}")
        except Exception as e:  # noqa: BLE001 - only a description
            return f"(state unavailable: {e!r})"

    def failure(self, what: str) -> str:
        actions = "\n".join(f"  {a}" for a in self.log)
        return (f"soak walk failed with seed {self.seed} after {self.events} events ({what}).\n"
                f"State: {self.state()}\n"
                f"Replay: LLMTUI_SOAK_SEED={self.seed} LLMTUI_SOAK_STEPS={STEPS} "
                f".venv/bin/python -m pytest tests/robustness/test_soak.py\nThe last actions:\n{actions}")


def thread_stacks() -> str:
    """Where every thread is (the innermost frames of ours or Textual's): why a worker cannot finish."""
    import threading
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        frames = [f for f in traceback.extract_stack(frame) if "llmtui" in f.filename or "textual" in f.filename]
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames[-4:]))
        lines.append(f"  {names.get(ident, ident)}: {where or '(library code only)'}")
    return "\n".join(lines)


async def settle_all(walk: Walk, timeout: float = 60.0) -> None:
    """Close any open screen, stop a generation, wait for every worker and the model thread."""
    app = walk.app
    while (depth := len(app.screen_stack)) > 1:
        await walk.key("escape")
        await walk.until(lambda depth=depth: len(app.screen_stack) < depth, 5, "the screen to close")
    pane = walk.generate_pane
    if pane.running:
        await walk.key("5")
        pane.editor.focus()
        await walk.key("escape")
    await wait_for(walk.pilot, lambda: not pane.running, timeout, "the generation to stop")
    def running() -> list[str]:
        """The unfinished workers, with where their asyncio task waits."""
        out = []
        for w in app.workers:
            if w.is_finished:
                continue
            task = w._task
            stack = task.get_stack(limit=3) if task is not None and not task.done() else []
            where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in stack) or f"task {task!r}"[:120]
            out.append(f"{w.description} ({w.state.name}) on {type(w.node).__name__}, waiting in {where}")
        return out

    try:
        await wait_for(walk.pilot, lambda: not running(), timeout, "every worker to finish")
    except AssertionError as error:
        raise AssertionError(f"{error}; still running: {running()}; threads:\n{thread_stacks()}") from None
    await wait_for(walk.pilot, model_thread_idle, timeout, "the model thread to go idle")
    await walk.pilot.pause()  # type: ignore[attr-defined]


async def still_answers(walk: Walk) -> None:
    """A tab click and pane keys switch panes, and a typed character lands in the prompt."""
    app = walk.app
    await walk.resize(100, 30)
    await wait_for(walk.pilot, lambda: app.query_one("#tab-layers").region.area > 0, 10, "the layout at 100x30")
    await walk.click_widget(app.query_one("#tab-layers"))
    await wait_for(walk.pilot, lambda: walk.pane_id == "layers", 10, "the Layers pane after a click on its tab")
    for target in ("attention", "tokenizer", "generate"):
        await walk.pilot.pause()  # type: ignore[attr-defined]  # the pane's own focus (a call_later) lands first
        if isinstance(app.focused, (TextArea, Input)):  # digits type into text boxes, as they should
            app.set_focus(None)
        focused = app.focused
        await walk.key(str(PANE_IDS.index(target) + 1))
        await wait_for(walk.pilot, lambda t=target: walk.pane_id == t, 10,
                       f"the {target} pane after its key (pressed with the focus on {focused!r})")
    pane = walk.generate_pane
    await walk.click_widget(pane.editor)
    await wait_for(walk.pilot, lambda: app.focused is pane.editor, 5, "the prompt's focus after a click")
    before = pane.editor.text.count("Z")
    await walk.key("Z")
    await wait_for(walk.pilot, lambda: pane.editor.text.count("Z") == before + 1, 10, "the typed character")


async def run_walk(tiny_lm, seed: int, steps: int, tmp_path, model_b: str) -> Walk:
    rng = random.Random(seed)
    vocab = tiny_lm.config.vocab_size
    # each knob's range ends, as its one description (llmtui.engine.settings.KNOBS) gives them
    temperature, top_p, max_tokens = KNOB["temperature"], KNOB["top_p"], KNOB["max_new_tokens"]
    extremes = [
        Extreme("temperature 0", "temperature", float(temperature.minimum), f"{temperature.minimum:g}"),
        Extreme("temperature max", "temperature", float(temperature.maximum), f"{temperature.maximum:g}"),
        Extreme("top-p 0", "top_p", float(top_p.minimum), f"{top_p.minimum:g}"),
        Extreme("top-p 1", "top_p", float(top_p.maximum), f"{top_p.maximum:g}"),
        Extreme("top-k 1", "top_k", 1, "1"),
        Extreme("top-k vocab", "top_k", vocab, str(vocab)),
        Extreme("max tokens 0", "max_new_tokens", int(max_tokens.minimum), f"{max_tokens.minimum:g}"),
    ]
    rng.shuffle(extremes)
    walk: Walk | None = None
    app = make_app(tiny_lm, pane=rng.choice(PANE_IDS), prompt="The cat", export_dir=tmp_path / "exports",
                   model_b=model_b)
    hook = []  # the message hook must exist before the walk does
    body_error: list[Exception] = []
    try:
        async with app.run_test(size=(100, 30), message_hook=lambda m: hook and hook[0](m)) as pilot:
            try:
                walk = Walk(seed, rng, pilot, extremes)
                hook.append(walk.record)
                walk.count_runs()
                await wait_for(pilot, lambda: app.lm is not None, 30, "the model")
                progress_at = time.perf_counter()
                while walk.keys + walk.clicks < steps:
                    await walk.act()
                    walk.observe()
                    if time.perf_counter() - progress_at > 60:  # a long walk (LLMTUI_SOAK_STEPS) shows it is alive
                        progress_at = time.perf_counter()
                        print(f"seed {seed}: {walk.keys + walk.clicks} of {steps} keys and clicks", file=sys.__stderr__, flush=True)
                    if app._exception is not None:
                        break
                    assert app.return_code is None, "the walk quit the app"
                for extreme in walk.extremes:  # an extreme the dice left out (or a wait gave up on) is walked to now
                    while app._exception is None and not walk.generated_at[extreme.label] and walk.kinds["top-up"] < 30:
                        walk.kinds["top-up"] += 1
                        # from a known place: the walk may have ended on any pane with a text box focused, where
                        # "5" is typed and F5 is that pane's key (a CI walk never got back to Generate this way)
                        await walk.plain_prompt()
                        await walk.knob_extreme(extreme)
                        await pilot.pause(0)
                        walk.observe()
                topped = 0  # likewise a fork and a go-on, if none happened
                while app._exception is None and not (walk.run_kinds["fork"] + walk.run_kinds["force"]) and topped < 10:
                    topped += 1
                    await walk.plain_prompt()  # a table to fork from
                    await walk.fork()
                    await pilot.pause(0)
                    walk.observe()
                while app._exception is None and not walk.run_kinds["continue"] and topped < 20:
                    topped += 1
                    await walk.plain_prompt()  # an empty prompt or one the walk left in chat mode has nothing to go on from
                    await walk.step_then_go_on()
                    await pilot.pause(0)
                    walk.observe()
                while app._exception is None and not (walk.kinds["compare"] and walk.kinds["branches"]) and topped < 30:
                    topped += 1
                    await walk.plain_prompt()
                    walk.generate_pane.table.focus()
                    await pilot.pause()
                    await walk.key("ctrl+r")  # the knobs back to their defaults: an extreme may have left max tokens 0
                    await walk.key("f5")  # a text, so F3 has branches to list
                    await settle_all(walk)
                    await walk.compare_or_branches()
                    await pilot.pause(0)
                    walk.observe()
                while app._exception is None and not (walk.kinds["compare: branches"] and walk.kinds["compare: model B"]) \
                        and topped < 35:
                    topped += 1
                    await walk.two_sided_compares()
                    walk.observe()
                walk.kinds["top-up"] += topped
                if app._exception is None:
                    await settle_all(walk)
                    await still_answers(walk)
                    await settle_all(walk)
                    walk.observe()
            except Exception as error:  # the walk's own failure, before the app is shut down: a key still
                body_error.append(error)  # queued then meets no screen, and Textual raises that instead
                raise
    except Exception as error:
        first = body_error[0] if body_error else error
        what = f"{type(first).__name__}: {first}"
        if first is not error:
            what += f" (and at shutdown {type(error).__name__}: {error})"
        raise AssertionError(walk.failure(what) if walk else f"seed {seed}: {what}") from first
    assert app._exception is None, walk.failure(f"app exception {app._exception!r}")
    assert not walk.internal_errors, walk.failure(f"internal errors: {walk.internal_errors[:5]}")
    return walk


@pytest.mark.parametrize("seed", SEEDS)
async def test_soak_random_walk(own_tiny_lm, tiny_hf_gpt2_dir, seed, tmp_path):
    """STEPS random key presses and clicks (and more input) in every pane: the app survives, settles, answers.
    Compare's B model is another tiny model (--model-b): the walk compares two models too. The walk trains
    its model (Train pane), so it has its own: the session's tiny model stays as every snapshot drew it."""
    started = time.perf_counter()
    walk = await run_walk(own_tiny_lm, seed, STEPS, tmp_path, str(tiny_hf_gpt2_dir))
    elapsed = time.perf_counter() - started
    print(f"\nseed {seed}: {walk.events} events ({walk.keys} keys, {walk.clicks} clicks) in {elapsed:.1f}s; "
          f"per pane {dict(walk.per_pane)}; extremes generated {dict(walk.generated_at)}; runs {dict(walk.run_kinds)}; "
          f"mid-generation switches {walk.mid_generation_switches}; sizes {len(walk.sizes)}; kinds {dict(walk.kinds)} time {({k: round(v, 1) for k, v in walk.kind_time.items()})}; "
          f"gave up waiting for {dict(walk.gave_up)}")
    assert walk.keys + walk.clicks >= STEPS
    assert not walk.internal_errors
    # every knob extreme was reached, and generated with (the walk cannot silently stop covering them)
    for extreme in walk.extremes:
        assert walk.set_extremes[extreme.label] > 0, walk.failure(f"{extreme.label} never set")
        assert walk.generated_at[extreme.label] > 0, walk.failure(f"never generated at {extreme.label}")
    # generations of every kind, forks among them, panes switched while one ran, the smallest and largest terminal
    for kind in ("generate", "step", "continue"):
        assert walk.run_kinds[kind] > 0, walk.failure(f"no {kind} run: {dict(walk.run_kinds)}")
    assert walk.run_kinds["fork"] + walk.run_kinds["force"] > 0, walk.failure(f"no fork: {dict(walk.run_kinds)}")
    assert walk.mid_generation_switches > 0, walk.failure("no pane switch while generating")
    assert walk.kinds["compare"] and walk.kinds["branches"], walk.failure(f"no compare or branches: {dict(walk.kinds)}")
    assert walk.kinds["compare: branches"] and walk.kinds["compare: model B"], walk.failure(
        f"no two branches or two models compared: {dict(walk.kinds)}")
    assert walk.sizes[(40, 12)] and walk.sizes[(300, 100)], walk.failure(f"sizes {dict(walk.sizes)}")
    # every pane got a meaningful share of the actions
    total = sum(walk.per_pane.values())
    for pane_id in PANE_IDS:
        assert walk.per_pane[pane_id] >= 0.07 * total, walk.failure(f"{pane_id} got {walk.per_pane[pane_id]} of {total}")
