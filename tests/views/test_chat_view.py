"""The chat turns screen's rows and system line, from hand-made chats."""

from llmtui.app.screens.chat.view import COLUMNS, WIDTH, rows, system_line
from llmtui.engine.chat import Chat


def test_one_row_per_turn_shown_literally_on_one_line():
    chat = Chat.of_history(None, [("hi\n[bold]there\x1b[2J", "hello"), ("x" * 100, "")])
    cells = [[c.plain for c in row] for row in rows(chat)]
    assert len(cells[0]) == len(COLUMNS)
    assert cells[0][0] == "1" and cells[0][1].startswith("hi↵[bold]there") and "\x1b" not in cells[0][1]
    assert cells[0][2] == "hello"
    assert len(cells[1][1]) == WIDTH and cells[1][1].endswith("…") and cells[1][2] == "(no reply)"


def test_the_system_line_says_whose_system_prompt_runs():
    assert system_line(Chat("Answer in French."), "I am SmolLM").plain == "System: Answer in French."
    assert "template's own (I am SmolLM)" in system_line(Chat(), "I am SmolLM").plain
    assert "none" in system_line(Chat(), None).plain
    assert system_line(Chat(), None, served=True).plain == "System: none sent (the server's template decides)"
    assert system_line(Chat("Be brief."), None, served=True).plain == "System: Be brief."
