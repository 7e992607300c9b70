"""Export (ctrl+s): every pane writes an SVG and its data; the JSON read back equals what the pane shows."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import pytest
from app_fixtures import finished, greedy, ready, settle, wait_for

from llmtui.app.app import LLMTuiApp
from llmtui.export import ExportError, about_line, export_pane, to_csv, to_markdown


class TestWriting:
    def test_markdown_keeps_every_cell_in_its_column(self):
        md = to_markdown(["token", "p"], [["a|b", 0.5], ["line\nbreak", None]])
        lines = md.splitlines()
        assert lines[0] == "| token | p |" and lines[1] == "| --- | --- |"
        assert lines[2] == "| a\\|b | 0.5 |" and lines[3] == "| line\\nbreak |  |"

    def test_markdown_keeps_a_tokens_outer_spaces(self):
        """Bug 9: ' Paris' became 'Paris' (Markdown trims cells)."""
        md = to_markdown(["token"], [[" Paris"], ["a  "], ["  "], ["in side"]])
        assert md.splitlines()[2:] == ["| ␣Paris |", "| a␣␣ |", "| ␣␣ |", "| in side |"]

    def test_csv_round_trips(self):
        rows = [["a,b", 0.123456789], ['say "hi"\n', 2]]
        back = list(csv.reader(to_csv(["t", "p"], rows).splitlines(keepends=True)))
        assert back == [["t", "p"], ["a,b", "0.123456789"], ['say "hi"\n', "2"]]

    def test_files_are_named_and_never_overwritten(self, tmp_path):
        first = export_pane(tmp_path / "out", "generate", {"x": 1}, (["a"], [[1]]))
        second = export_pane(tmp_path / "out", "generate", {"x": 2}, None)
        assert [p.suffix for p in first] == [".json", ".md", ".csv"]
        assert first[0] != second[0] and json.loads(first[0].read_text()) == {"pane": "generate", "x": 1}
        assert json.loads(second[0].read_text())["x"] == 2

    def test_every_file_says_what_computed_it(self, tmp_path):
        about = {"model": "m\x1b[31m", "compute": {"precision": "int4", "weights": "int4, a scale per 32"}}
        paths = {p.suffix: p for p in export_pane(tmp_path, "generate", {"x": 1}, (["a"], [[1]]), about=about)}
        head = "m\\x1b[31m · precision int4 (int4, a scale per 32; probabilities are the int4 mode's own, not exact)"
        assert about_line(about) == head
        assert json.loads(paths[".json"].read_text())["compute"]["precision"] == "int4"
        assert paths[".md"].read_text().splitlines()[:3] == [head, "", "| a |"]
        lines = paths[".csv"].read_text().splitlines(keepends=True)
        assert lines[0] == f"# {head}\n" and list(csv.reader(lines[1:])) == [["a"], ["1"]]
        assert about_line({"model": "m", "compute": {"precision": "exact"}}) == "m · precision exact"

    def test_a_folder_that_is_a_file_is_a_clear_error(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(ExportError, match="Could not write to .*file"):
            export_pane(blocker, "layers", {"x": 1}, None)


def _notes(app: LLMTuiApp) -> list[tuple[str, str]]:
    """Record the app's notifications as (severity, message)."""
    notes: list[tuple[str, str]] = []
    original = app.notify

    def notify(message, *args, **kwargs):
        notes.append((kwargs.get("severity", "information"), str(message)))
        return original(message, *args, **kwargs)

    app.notify = notify  # type: ignore[method-assign]
    return notes


async def _export(pilot, notes, folder: Path, pane_id: str) -> dict:
    """Press ctrl+s; check the files and the message; return the JSON read back (and the table rows)."""
    before = set(folder.glob("*")) if folder.exists() else set()
    await pilot.press("ctrl+s")
    await pilot.pause()
    new = sorted(set(folder.glob("*")) - before)
    by_ext = {p.suffix: p for p in new}
    assert set(by_ext) == {".svg", ".json", ".md", ".csv"}, new
    assert all(p.name.startswith(f"{pane_id}-") for p in new)
    severity, message = notes[-1]
    assert severity == "information" and str(folder) in message and by_ext[".json"].name in message
    assert "<svg" in by_ext[".svg"].read_text()[:500]
    data = json.loads(by_ext[".json"].read_text())
    assert data["pane"] == pane_id
    assert data["compute"] == pilot.app.lm.compute and data["model"] == pilot.app.lm.name
    head = about_line(data)  # what computed the numbers heads each file
    assert html.escape(head).replace(" ", "&#160;") in by_ext[".svg"].read_text()
    csv_lines = by_ext[".csv"].read_text().splitlines(keepends=True)
    md_lines = by_ext[".md"].read_text().splitlines()
    assert csv_lines[0] == f"# {head}\n" and md_lines[:2] == [head, ""]
    rows = list(csv.reader(csv_lines[1:]))
    assert len(md_lines) - 2 == len(rows) + 1  # the header, its rule, one line per row
    data["_csv"] = rows
    return data


async def test_every_pane_exports_what_it_shows(tiny_lm, tmp_path):
    folder = tmp_path / "exports"
    app = LLMTuiApp(lm=tiny_lm, pane="tokenizer", settings=greedy(max_new_tokens=4), export_dir=folder)
    notes = _notes(app)
    async with app.run_test(size=(120, 36)) as pilot:
        gen = await ready(pilot)

        tok = app.pane("tokenizer")
        tok.set_prompt("Hello world! The capital")
        await wait_for(pilot, lambda: tok.tokens() is not None and tok.tokens().n_tokens > 3, what="tokens")
        data = await _export(pilot, notes, folder, "tokenizer")
        assert [t["id"] for t in data["tokens"]] == list(tok.tokens().ids)
        assert "".join(t["text"] for t in data["tokens"]) == "Hello world! The capital"
        assert [int(r[1]) for r in data["_csv"][1:]] == list(tok.tokens().ids)

        app.action_show_pane("embeddings")
        emb = app.pane("embeddings")
        await wait_for(pilot, lambda: emb.index is not None, what="the index")
        emb.query_input.value = "Hello"
        await emb.query_input.action_submit()
        await wait_for(pilot, lambda: emb.answer is not None and emb.answer.text == "Hello", what="neighbours")
        data = await _export(pilot, notes, folder, "embeddings")
        assert (data["view"], data["query"]) == ("vocab", "Hello")
        assert [(n["label"], n["similarity"]) for n in data["neighbours"]] == [(r.label, r.similarity) for r in emb.answer.rows]

        await pilot.press("f4")  # vectors in context: its own data, never the neighbour list exported before (bug 2)
        emb.query_one("#emb-sentence-a").value = "I sat by the river bank"
        emb.query_one("#emb-sentence-b").value = "I paid at the bank"
        emb.query_one("#emb-word").value = "bank"
        await wait_for(pilot, lambda: emb.context is not None and emb.context.word == "bank", 30, what="the context")
        await settle(pilot)
        data = await _export(pilot, notes, folder, "embeddings")
        assert (data["view"], data["word"], data["sentence_b"]) == ("context", "bank", "I paid at the bank")
        assert [r["cosine_a_b"] for r in data["by_layer"]] == list(emb.context.by_layer)
        assert [float(r[1]) for r in data["_csv"][1:]] == list(emb.context.by_layer)
        assert [n["id"] for n in data["next_token_readouts"]["a"]] == [n.id for n in emb.context.near_a]
        await pilot.press("f4")

        app.action_show_pane("attention")
        att = app.pane("attention")
        att.set_prompt("The capital of France")
        att.capture_text("The capital of France")
        await wait_for(pilot, lambda: att.attention is not None and att.attention.partial is None, what="attention")
        await pilot.press("f8")  # the advance key: the next head
        assert att.head_index == 1
        data = await _export(pilot, notes, folder, "attention")
        assert (data["layer"], data["head"]) == (att.layer_index, att.head_index)
        assert [t["label"] for t in data["tokens"]] == list(att.labels)
        assert data["weights"] == att.shown_weights.tolist()
        assert [float(x) for x in data["_csv"][2][1:]] == att.shown_weights[1].tolist()

        app.action_show_pane("layers")
        lay = app.pane("layers")
        lay.set_prompt("The capital of France")
        ids = tuple(tiny_lm.encode("The capital of France"))
        await wait_for(pilot, lambda: lay.data is not None and lay.data.ids == ids and lay.data.complete, what="the lens")
        await settle(pilot)
        data = await _export(pilot, notes, folder, "layers")
        assert len(data["grid"]) == lay.data.n_rows and len(data["tokens"]) == lay.data.n_positions
        for r, cells in enumerate(data["grid"]):
            assert [(c["id"], c["prob"]) for c in cells] == [lay.data.prediction(r, p) for p in range(lay.data.n_positions)]

        app.action_show_pane("generate")
        await pilot.pause()
        gen.set_prompt("The capital of France is")
        await wait_for(pilot, lambda: gen.table.view is not None and gen.table.view.preview, what="the preview")
        await settle(pilot)
        data = await _export(pilot, notes, folder, "generate")  # bug 9: the preview's export had no prompt
        assert data["prompt"] == {"text": "The capital of France is", "chat": False} and data["generation"] is None
        assert data["table"]["preview"] and data["table"]["candidates"]
        for n in (1, 2, 3):
            await pilot.press("f8")  # the advance key: one more token
            await finished(pilot, gen)
            assert len(gen.steps) == n
        data = await _export(pilot, notes, folder, "generate")
        assert data["prompt"]["text"] == "The capital of France is"
        steps = data["generation"]["steps"]
        assert [s["token"]["id"] for s in steps] == [s.token_id for s in gen.steps]
        assert [[c["id"] for c in s["candidates"]] for s in steps] == [[c.id for c in s.candidates] for s in gen.steps]
        view = gen.table.view
        assert [(c["id"], c["raw_prob"], c["prob"]) for c in data["table"]["candidates"]] == [
            (c.id, c.raw_prob, c.prob) for c in view.candidates]
        assert data["table"]["title"] == view.title
        await settle(pilot)


async def test_an_unwritable_folder_is_a_message_and_the_app_goes_on(tiny_lm, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    app = LLMTuiApp(lm=tiny_lm, pane="generate", export_dir=blocker / "sub")
    notes = _notes(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+s")
        await pilot.pause()
        severity, message = notes[-1]
        assert severity == "error" and "Could not write to" in message and "--export-dir" in message
        await pilot.press("x")
        assert app.pane("generate").editor.text.endswith("x")  # still running, still typing


async def test_tokenizer_export_of_a_text_longer_than_the_pane_tokenizes_says_where_its_tokens_stop(tiny_lm, tmp_path):
    """The whole text is kept; its tokens are those of the first MAX_LIVE_CHARS characters, and the JSON says so."""
    from llmtui.app.panes.tokenizer import MAX_LIVE_CHARS

    folder = tmp_path / "exports"
    app = LLMTuiApp(lm=tiny_lm, pane="tokenizer", export_dir=folder)
    notes = _notes(app)
    text = "The cat sat. " * (MAX_LIVE_CHARS // 10)
    async with app.run_test(size=(120, 36)) as pilot:
        await ready(pilot)
        tok = app.pane("tokenizer")
        tok.set_prompt(text)
        await wait_for(pilot, lambda: tok.tokens() is not None and tok.tokens().n_chars == MAX_LIVE_CHARS, what="tokens")
        data = await _export(pilot, notes, folder, "tokenizer")
        assert data["text"] == text and data["tokenized_chars"] == MAX_LIVE_CHARS < len(text)
        assert "".join(t["text"] for t in data["tokens"]) == text[: data["tokenized_chars"]]

        tok.set_prompt("Hello world")
        await wait_for(pilot, lambda: tok.tokens().n_chars == len("Hello world"), what="tokens")
        data = await _export(pilot, notes, folder, "tokenizer")
        assert data["text"] == "Hello world" and data["tokenized_chars"] == len("Hello world")
