"""The status line: the model's name, its size and device, and tokens/s while generating.

On a served model (--endpoint): the model and endpoint, the round trip to the first token and
tokens/s of the last request, then a local model's state if one was opened beside it.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from llmtui.app.state import ModelState, human_count
from llmtui.engine.text import escape_controls


KEYS = {
    True: ("esc leaves text · alt+1…6 panes · ctrl+q quit", "esc leaves text · alt+1…6 panes", "esc leaves text"),
    False: ("1…6 panes · ctrl+l edit text · ctrl+q quit", "1…6 panes · ctrl+l edit text", "ctrl+l edit text"),
}
"""The key rule, by whether a text box has the focus, longest first: in one, digits are typed."""


class StatusLine(Widget):
    """One line: 'SmolLM2-135M-Instruct · 135M params · cpu · 31.2 tok/s', or the loading progress."""

    DEFAULT_CSS = """
    StatusLine {
        width: 1fr;
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
        &.-failed { color: $text-error; }
    }
    """

    model_state: reactive[ModelState] = reactive(ModelState)
    """Where the model is: loading (with progress), ready or failed."""
    model_info: reactive[str] = reactive("")
    """'name · params · device' once the model is ready."""
    tokens_per_s: reactive[float | None] = reactive(None)  # no layout: it changes many times a second
    """Speed of the running generation; None when idle."""
    selection: reactive[str] = reactive("")
    """The app's current token, described in one line ('' when none is selected)."""
    remote_info: reactive[str] = reactive("")
    """'model @ endpoint · latency · tok/s' on a served model; '' with a local model only."""
    local_started: reactive[bool] = reactive(False)
    """Beside a served model: a local model was asked for (its state then follows the remote info)."""
    tuned: reactive[str] = reactive("")
    """The mark of a model whose weights were trained in this session ('' when they are the original)."""
    in_text: reactive[bool] = reactive(False)
    """Whether a text box has the focus: the keys at the right say how to leave it, or how to get in."""

    def render(self) -> Text:
        if self.remote_info:
            return self._fit(self._remote_left())
        return self._fit(self._local_left())

    def _remote_left(self) -> Text:
        left = Text(escape_controls(self.remote_info, keep=""))
        if self.local_started:
            state = self.model_state
            local = self.model_info.split(" · ")[0] if state.phase == "ready" else f"{state.phase} {state.fraction:.0%}"
            left.append(f" · local: {local}", style="dim")
        return left

    def _local_left(self) -> Text:
        state = self.model_state
        self.set_class(state.phase == "failed", "-failed")
        if state.phase == "loading":
            left = Text(f"loading {escape_controls(state.spec, keep='')}: {state.message} {state.fraction:.0%}")
        elif state.phase == "failed":
            left = Text(f"{escape_controls(state.spec, keep='')}: not loaded (see the pane)")  # the --model given
        else:
            info = self.model_info
            if self.selection and len(info) + len(self.selection) + 20 > (self.content_region.width or 80):
                info = info.split(" · ")[0]  # narrow: the model's name is enough next to the current token
            left = Text(info)
            if self.tuned:
                left.append(f" · {self.tuned}", style="bold reverse")
            if self.tokens_per_s is not None:
                left.append(f" · {self.tokens_per_s:.1f} tok/s", style="bold")
            if self.selection:  # Text, never markup: a token may hold '[' or control escapes
                left.append("  ▸ ", style="dim").append(self.selection, style="bold")
        return left

    def _fit(self, left: Text) -> Text:
        width = self.content_region.width or 80
        for keys in KEYS[self.in_text]:  # the longest that fits
            right = Text(keys, style="dim")
            if left.cell_len + right.cell_len + 2 <= width:
                left.append(" " * (width - left.cell_len - right.cell_len))
                left.append_text(right)
                break
        left.no_wrap = True
        left.overflow = "ellipsis"
        return left

    @staticmethod
    def describe(name: str, n_params: int, device: str, compute: str = "") -> str:
        return f"{name} · {human_count(n_params)} params · {device}" + (f" · {compute}" if compute else "")
