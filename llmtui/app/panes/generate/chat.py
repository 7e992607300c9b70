"""The Generate pane's chat mode: what a message becomes (one turn after the earlier ones), the system prompt."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmtui.app.panes.generate.run import PromptRequest
from llmtui.app.screens.value_input import ValueInputScreen
from llmtui.engine.chat import Chat, default_system_prompt

if TYPE_CHECKING:
    from llmtui.app.screens.chat.screen import ChatRerun


class ChatPart:
    """Mixed into GeneratePane: plain or chat prompts, and whether a key goes on from the shown text."""

    def _new_prompt_request(self) -> PromptRequest | None:
        """The request for a fresh session from the editor, or None (with a message) when there is none."""
        text = self.editor.text
        if not self.chat_mode:
            if not text.strip():
                self.say("The prompt is empty: type some text first.", "error")
                return None
            return PromptRequest(text)
        if text.strip():
            return PromptRequest(text, chat=True, history=self._chat_so_far().history(), system=self.system_prompt)
        previous = self._session_prompt
        if previous is not None and previous.chat:
            return previous  # an empty message: draw the last reply again
        self.say("The message is empty: type what the user says first.", "error")
        return None

    def _chat_so_far(self) -> Chat:
        """The shown chat: its earlier turns and the last message with its reply (no turns when none is shown)."""
        previous = self._session_prompt
        if previous is None or not previous.chat or self._session is None:
            return Chat(self.system_prompt)
        return Chat.of_history(previous.system, previous.history + ((previous.text, self._reply_text()),))

    def action_chat_turns(self) -> None:
        """The chat's turns (screens/chat): edit a message and the chat runs again from that turn."""
        from llmtui.app.screens.chat.screen import ChatTurnsScreen

        if not self.need_model():
            return
        chat = self._chat_so_far()
        if not chat.turns:
            self.say("No chat yet: in chat mode (ctrl+t) send a message; ctrl+o then lists the turns to edit.")
        elif self.running:
            self.say("Stop the generation first (escape): a turn is re-run from its finished reply.")
        else:
            self.app.push_screen(ChatTurnsScreen(chat, self._template_system(), self.served), self._rerun_chat)

    def _rerun_chat(self, rerun: ChatRerun | None) -> None:
        """Send the chosen (maybe edited) message after the turns before it; what followed is dropped."""
        if rerun is None or self.running:
            return
        self._streaming = True
        self._start("generate", PromptRequest(rerun.text, chat=True, history=rerun.chat.history(),
                                              system=rerun.chat.system), new_session=True)

    def _reply_text(self) -> str:
        """The assistant's reply in the shown chat: the generated text without the stop token."""
        return self.backend.reply_text(self._steps) if self.backend is not None else ""

    def _template_system(self) -> str | None:
        """The system prompt the chat template adds by itself; None where it adds none or is the server's (unknown here)."""
        return None if self.served or self.lm is None else default_system_prompt(self.lm)

    def _can_go_on(self) -> bool:
        """Whether step/continue extend the shown session (rather than start one from the editor)."""
        prompt = self._session_prompt
        if self._session is None or prompt is None:
            return False
        if prompt.chat:
            return self.chat_mode and not self.editor.text.strip()
        return not self.chat_mode and self.editor.text == prompt.text

    def action_toggle_chat(self) -> None:
        self.chat_mode = not self.chat_mode

    def watch_chat_mode(self, chat: bool) -> None:
        self.editor.border_title = "Message (chat mode: you are the user)" if chat else "Prompt"
        self.editor.placeholder = (
            "Type a message as the user, then F5 to send it" if chat else "Type a prompt, then F5 to generate or F6 for one token"
        )
        self.set_class(chat, "-chat")
        self.say("Chat mode: your text is wrapped in the model's chat template." if chat else "Plain mode: the model continues your text.")
        if not self._steps:
            self._prompt_pieces = []
            self._show_idle_output()
            self._request_preview()

    def action_system_prompt(self) -> None:
        """Edit the chat's system prompt; empty gives the template's own back (a served model's: none is sent)."""
        if not self.need_model():
            return
        default = self._template_system()
        shown = self.system_prompt if self.system_prompt is not None else (default or "")
        hint = ("Sent as the chat's first message. Empty: none is sent (the server's template decides)." if self.served
                else f"The template's own: {default!r}. Empty brings it back." if default else
                "This model's template adds none of its own. Empty: none.")

        def done(result: tuple[Any] | None) -> None:
            if result is None:
                return
            text = result[0]
            self.system_prompt = text if text.strip() and text != default else None
            self.say("System prompt set: it applies from the next message." if self.system_prompt is not None
                     else "System prompt: none sent (the server's template decides)." if self.served
                     else "System prompt: the template's own.")
            self._request_preview()

        self.app.push_screen(ValueInputScreen("system prompt", shown, str, hint), done)
