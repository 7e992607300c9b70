"""What every pane shares: its id, title, help text, keys, and the hooks the shell calls.

A new pane is a subclass of `Pane` in its own module, added to `PANES` in
`llmtui/app/panes/__init__.py`: the shell builds its tab, its number key, its help
screen and its command-palette entries from the class attributes below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, TypeVar

from rich.text import Text
from textual.binding import Binding
from textual.containers import Vertical
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import TextArea

from llmtui.app.selection import TokenSelected, TokenSelection
from llmtui.app.state import ModelState
from llmtui.app.widgets.text_box import is_text_box
from llmtui.engine.text import escape_controls

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel

MessageKind = Literal["info", "error", "busy", "hint"]
"""How a pane's message line is coloured (its CSS classes -info, -error, -busy, -hint)."""


def error_line(error: Exception) -> str:
    """What a pane says when its work fails: an engine ValueError is the user's to fix and says why;
    anything else is a bug, named in one line (the app keeps running). Capitalised as a sentence."""
    text = str(error) if isinstance(error, ValueError) else f"internal error ({type(error).__name__}: {error})"
    return text[:1].upper() + text[1:]


Box = TypeVar("Box", bound=TextArea)


def prompt_box(editor: type[Box], text: str = "", *, id: str, placeholder: str, title: str) -> Box:
    """A pane's text box: soft-wrapped, no line numbers, tab moves the focus on, titled on its border."""
    box = editor(text, id=id, soft_wrap=True, tab_behavior="focus", show_line_numbers=False, placeholder=placeholder)
    box.border_title = title
    return box


class Debounce:
    """A call put off until a pause: each `restart` waits `delay` seconds again (typing in a box), `cancel` drops it."""

    def __init__(self, owner: Widget, delay: float, callback: Callable[[], object]) -> None:
        self._owner, self._delay, self._callback = owner, delay, callback
        self._timer: Timer | None = None

    @property
    def pending(self) -> bool:
        """Whether the call is still to come."""
        return self._timer is not None

    def restart(self) -> None:
        self.cancel()
        self._timer = self._owner.set_timer(self._delay, self._fire)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._callback()


@dataclass(frozen=True)
class FollowedText:
    """Text a pane put in its text box to show the app's current token: not typed by the user."""

    text: str
    selection: TokenSelection


class Pane(Vertical):
    """One concept of the model, shown in one tab."""

    PANE_ID: ClassVar[str]
    """The pane's id, also its name on the command line (--pane)."""
    TITLE: ClassVar[str]
    """The tab's label."""
    SHORT_TITLE: ClassVar[str]
    """The tab's label on a terminal too narrow for every TITLE (at most 6 characters)."""
    HELP: ClassVar[str]
    """Two or three plain sentences: the concept the pane shows and the keys it takes."""

    MESSAGE_LINE: ClassVar[str] = ""
    """The id ("#...") of the pane's message line, where `say` writes."""
    running: bool = False
    """A run under way (a generation, a training run): Escape in a text box stops it first (`action_stop`)."""
    TYPED: ClassVar[str] = "your prompt"
    """What the user types here, named in the lines that say it is kept while there is no model."""
    TYPE_MEANWHILE: ClassVar[str] = "you can type the prompt meanwhile"
    WHEN_LOADED: ClassVar[str] = "{typed} is kept and {then} when it is ready."
    """`need_model`'s promise while the model loads (a pane that runs nothing by itself asks for the key again)."""
    SEE_WHY: ClassVar[str] = ""
    """`need_model`'s pointer to where the pane shows why the model could not be loaded (e.g. " (see the output)")."""

    def __init__(self) -> None:
        super().__init__(id=self.PANE_ID, classes="pane")
        self.lm: LanguageModel | None = None
        self.export_dir = Path("llmtui-exports")  # the app hands its own down (set_export_dir)
        self.model_state = ModelState()
        self.selection: TokenSelection | None = None
        """The app's current token (set by the app on every pane; `follow_selection` is what a pane does with it)."""
        self.followed: FollowedText | None = None
        """What following a selection last put in the pane's text box (`put_followed`), if it did."""

    @property
    def ready(self) -> bool:
        """Whether the pane can take input now (the model is loaded, and whatever the pane builds from it)."""
        return self.lm is not None

    def set_model(self, state: ModelState, lm: LanguageModel | None = None) -> None:
        """The app's one channel for the model: where it is (loading, failed, ready) and, once ready, the model."""
        was_ready, self.model_state = self.model_state.ready, state
        if lm is not None and (lm is not self.lm or not was_ready):  # not was_ready: a failed switch kept this model
            if lm is not self.lm:
                self.followed = None  # its ids are the old model's: the box's text is the user's to keep now
            self.lm = lm
            self.model_ready(lm)
        elif not state.ready:
            self.model_state_changed(state)

    def select_token(self, ids: Sequence[int], position: int) -> None:
        """The user picked `ids[position]` here: ask the app to make it the current token (it drops a repeat)."""
        self.post_message(TokenSelected(TokenSelection.at(ids, position, self.PANE_ID)))

    def put_followed(self, text: str, selection: TokenSelection) -> None:
        """Following `selection`, the pane put its text in its box: until the user edits it, the box holds nothing
        the user typed and stands for the selection's own ids (see `followed_in`)."""
        self.followed = FollowedText(text, selection)

    def followed_in(self, text: str) -> TokenSelection | None:
        """The selection whose text the box holds (`text`), while it is what following put there; None once the
        user typed there. The one test every pane makes before replacing or re-encoding the box's text."""
        followed = self.followed
        return followed.selection if followed is not None and followed.text == text else None

    def say(self, text: str | Text, kind: MessageKind = "info", where: str | None = None) -> None:
        """Show one message on the pane's message line (or `where`, a Static or a MessageLine): plain text,
        never markup, controls escaped."""
        line = self.query_one(where or self.MESSAGE_LINE)
        line.update(text if isinstance(text, Text) else Text(escape_controls(text, keep="")))
        for k in ("info", "error", "busy", "hint"):
            line.set_class(k == kind, f"-{k}")

    @property
    def message(self) -> str:
        """The text of the pane's message line (MESSAGE_LINE), as shown; "" for a pane without one (Tokenizer)."""
        return self.line_text() if self.MESSAGE_LINE else ""

    def line_text(self, selector: str | None = None) -> str:
        """A line's text as shown (default: the message line), for tests and the pane's own properties."""
        return str(self.query_one(selector or self.MESSAGE_LINE).render())

    def need_model(self, then: str = "runs", where: str | None = None) -> bool:
        """True when the pane is `ready`; else say why not (what was typed is kept, and `then` runs or shows)."""
        if self.ready:
            return True
        if self.model_state.phase == "failed":
            self.say(self._no_model_line(self.SEE_WHY), "error", where)
        else:
            self.say("The model is still loading; " + self.WHEN_LOADED.format(typed=self.TYPED, then=then), "busy", where)
        return False

    def _no_model_line(self, see_why: str = "") -> str:
        return f"No model: it could not be loaded{see_why}. {self.TYPED[:1].upper()}{self.TYPED[1:]} is kept."

    @contextmanager
    def reporting(self, failed: Callable[[str], object] | None = None, where: str | None = None) -> Iterator[None]:
        """Around a worker's model calls and what it does with their answers: an exception (not a
        cancellation) ends the block and becomes one line, `error_line`, said on the message line (or
        `where`) or handed to `failed`. The app keeps running; no traceback reaches the user."""
        try:
            yield
        except Exception as error:  # the user's to fix (ValueError), or a bug: one line either way
            line = error_line(error)
            if failed is not None:
                failed(line)
            else:
                self.say(line, "error", where)

    # -- hooks for subclasses --------------------------------------------------------------

    def model_state_changed(self, state: ModelState) -> None:
        """The model is loading (with progress) or could not be loaded: say so (what was typed is kept)."""
        if state.phase == "failed":
            self.say(self._no_model_line(), "error")
        elif state.phase == "loading":
            self.say(f"Loading the model… {self.TYPE_MEANWHILE}.", "busy")

    def model_ready(self, lm: LanguageModel) -> None:
        """The model is loaded: start showing things."""

    def set_prompt(self, text: str) -> None:
        """Text from the command line (--prompt) to open with."""

    def set_export_dir(self, folder: Path) -> None:
        """Where the app writes exports and saves (--export-dir): handed down once, at mount."""
        self.export_dir = folder

    def follow_selection(self, selection: TokenSelection) -> None:
        """The app's current token, chosen in another pane: show it, if it applies.

        The app calls it once per pane and selection (when the pane is shown): a repeat never reaches a pane."""

    def shown_ids(self) -> tuple[int, ...] | None:
        """The text the pane shows, as token ids, for another pane that asks (`TextWanted`); None: none yet."""
        return None

    def advance(self) -> bool:
        """The advance key (presentation mode, demos): the pane's next step; False when it has none."""
        return False

    def export_data(self) -> dict | None:
        """The data behind the view, as plain JSON-able values (None: nothing shown yet)."""
        return None

    def export_table(self) -> tuple[list[str], list[list]] | None:
        """The view's main table (header, rows) for Markdown and CSV; None when it has none."""
        return None

    def focus_default(self) -> None:
        """Focus the pane's main widget when the pane is shown."""
        for widget in self.query("*"):
            if widget.focusable:
                widget.focus()
                return

    def focus_main(self) -> None:
        """Focus the pane's first widget on screen that is not a text box (pane switches, Escape from a text box)."""
        self._focus_first(lambda widget: not is_text_box(widget))

    def action_stop(self) -> None:
        """Stop the pane's run (`running`) before its next step."""

    def leave_text(self) -> None:
        """Escape in one of the pane's text boxes: stops a run first (the key a speaker reaches for), else back to
        the pane's main widget."""
        if self.running:
            self.action_stop()
        else:
            self.focus_main()

    def focus_text(self) -> None:
        """Put the cursor in the pane's first text box on screen (ctrl+l in every pane)."""
        self._focus_first(is_text_box)

    def _focus_first(self, wanted: Callable[[object], bool]) -> None:
        mine = [w for w in self.screen.focus_chain if self in w.ancestors]
        target = next((w for w in mine if wanted(w)), None)
        if target is not None:
            target.focus()

    def commands(self) -> Iterable[tuple[str, str, Callable[[], object]]]:
        """Command-palette entries (title, help, callback); by default one per described binding."""
        seen = set()
        for binding in self._bindings_for_help():
            if binding.description and binding.action not in seen:
                seen.add(binding.action)
                yield (f"{self.TITLE}: {binding.description}", binding.tooltip or f"key: {binding.key_display or binding.key}",
                       lambda action=binding.action: self.run_action(action))

    def help_keys(self) -> list[tuple[str, str]]:
        """(keys, what they do) for the help screen."""
        keys: dict[str, list[str]] = {}
        for binding in self._bindings_for_help():
            if binding.description:
                keys.setdefault(binding.description, []).append(binding.key)
        return [(", ".join(dict.fromkeys(k for ks in v for k in ks.split(","))), d) for d, v in keys.items()]

    def _bindings_for_help(self) -> list[Binding]:
        return [b if isinstance(b, Binding) else Binding(*b) for b in self.BINDINGS]
