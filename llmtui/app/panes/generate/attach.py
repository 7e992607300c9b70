"""The Generate pane's model: the local one the app loads, or a served one the app connects to (--endpoint).

The app hands either down (`set_model`, `RemoteConnected`); the pane wraps it in a
backend (backend.py) and runs the same way on both. A served pane ignores a local
model opened beside the server (for the panes that need weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmtui.app.messages import ReconnectWanted, RemoteConnected, RemoteFailed
from llmtui.app.panes.generate.backend import LocalBackend, ServedBackend

if TYPE_CHECKING:
    from llmtui.app.state import ModelState
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.remote.client import RemoteModel


class AttachPart:
    """Mixed into GeneratePane: the model it runs on, and what it says before there is one."""

    @property
    def ready(self) -> bool:
        """Whether a model is attached (what a demo step waits for)."""
        return self.backend is not None

    @property
    def remote(self) -> RemoteModel | None:
        """The served model, when the pane runs on one."""
        return self.backend.remote if isinstance(self.backend, ServedBackend) else None

    def set_model(self, state: ModelState, lm: LanguageModel | None = None) -> None:
        if not self.served:
            super().set_model(state, lm)  # type: ignore[misc]

    def model_state_changed(self, state: ModelState) -> None:
        if state.phase == "ready":
            return
        self.output.set_placeholder(
            state.describe() + ("\n\nQuit with ctrl+q and start again with --model NAME|PATH." if state.phase == "failed" else ""),
            "error" if state.phase == "failed" else "placeholder",
        )
        super().model_state_changed(state)  # type: ignore[misc]

    def model_ready(self, lm: LanguageModel) -> None:
        self.backend = LocalBackend(lm)
        self.say(f"Ready · {lm.config.context_length} tokens of context · F5 generate · F6 one token")
        self._show_idle_output()
        self._request_preview()

    def on_remote_connected(self, message: RemoteConnected) -> None:
        if not self.served:
            return
        self.backend = ServedBackend(message.remote)
        self.output.set_placeholder(f"Attached to {message.remote.name}. F5 generates, F6 adds one token.\n"
                                    "A served model gives no next-token preview and no context window here: "
                                    "they need its weights.")
        self.say(f"Ready · {message.remote.name} · F5 generate · F6 one token")

    def on_remote_failed(self, message: RemoteFailed) -> None:
        if not self.served:
            return
        self.output.set_placeholder(message.error, "error")
        self.say(f"{message.error} · F5 tries again (your prompt is kept)", "error")

    def need_model(self, then: str = "runs", where: str | None = None) -> bool:
        """As every pane's, and on a served model that is not attached: ask the app to connect again."""
        if self.served and self.backend is None:
            self.post_message(ReconnectWanted())
            self.say("Connecting to the server… your prompt is kept.", "busy")
            return False
        return super().need_model(then, where)  # type: ignore[misc]

    def _local_only(self, what: str) -> bool:
        """Whether `what` can run: on a served model it cannot (it needs the weights here), and the pane says so."""
        if self.backend is not None and self.backend.served:
            self.say(f"{what}: not available on a served model (it needs the model here: start llmtui with --model).")
            return False
        return True
