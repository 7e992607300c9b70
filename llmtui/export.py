"""Writing a pane's export: its data as JSON, its table as Markdown and CSV, next to its SVG screenshot (no UI here).

Files are named `<pane>-<YYYYmmdd-HHMMSS>.<ext>` (with -2, -3, ... when that name is taken) in a
folder the user chooses; every failure (a read-only folder, a full disk) is one `ExportError`
that says which folder and why.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmtui.engine.text import escape_controls, without_lone_surrogates

# Only inside JSON strings can a surrogate appear: json.dumps writes everything else as ASCII syntax.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

Table = tuple[Sequence[str], Sequence[Sequence[Any]]]


class ExportError(OSError):
    """The export could not be written; the message names the folder and the reason."""


def export_stem(folder: Path, pane_id: str, now: float | None = None) -> str:
    """A file stem for this export that no file in `folder` uses yet."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    stem, n = f"{pane_id}-{stamp}", 1
    while any(folder.glob(f"{stem}.*")):
        n += 1
        stem = f"{pane_id}-{stamp}-{n}"
    return stem


def _cell(value: Any) -> str:
    return "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))


def to_markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; '|', line breaks and other controls in cells are escaped, so any token text
    stays one cell and nothing in the file acts on a terminal that shows it. A cell's leading and trailing
    spaces, which Markdown would drop, are written as ␣, as the app shows them (' Paris' -> '␣Paris')."""

    def cell(value: Any) -> str:
        text = escape_controls(_cell(value).replace("\\", "\\\\"), keep="")  # \n, \x1b, \u202e, \ud800
        stripped = text.strip(" ")  # Markdown trims a cell's outer spaces: ' Paris' would read 'Paris'
        lead = len(text) - len(text.lstrip(" "))
        text = "␣" * lead + stripped + "␣" * (len(text) - lead - len(stripped)) if stripped else "␣" * len(text)
        return text.replace("|", "\\|").replace("`", "\\`")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _unicode(value: Any) -> Any:
    # A lone surrogate (a str may hold one) has no UTF-8: U+FFFD, as the tokenizer reads it.
    return without_lone_surrogates(value) if isinstance(value, str) else value


def to_json(data: dict) -> str:
    """JSON that keeps every string exactly: readable UTF-8, with a lone surrogate written as its \\u escape."""
    text = json.dumps(data, ensure_ascii=False, indent=1)
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_csv(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV with full-precision numbers (csv quotes cells holding commas, quotes or line breaks)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([_unicode(h) for h in header])
    writer.writerows([["" if v is None else _unicode(v) for v in row] for row in rows])
    return out.getvalue()


def about_line(about: dict[str, Any]) -> str:
    """One line saying what computed an export's numbers: 'SmolLM2-135M-Instruct · precision int8 (...)'.

    about is {"model": name, "compute": LanguageModel.compute}; a faster mode's probabilities are
    said to be its own, so a reader never takes them for the exact model's.
    """
    compute = about.get("compute") or {}
    precision = compute.get("precision", "exact")
    line = f"{about.get('model') or 'no model'} · precision {precision}"
    if precision != "exact":
        line += f" ({compute.get('weights', '')}; probabilities are the {precision} mode's own, not exact)"
    return escape_controls(line, keep="")


def export_pane(
    folder: Path,
    pane_id: str,
    data: dict | None,
    table: Table | None,
    screenshot: Callable[[Path, str], object] | None = None,
    *,
    about: dict[str, Any] | None = None,
) -> list[Path]:
    """Write `<stem>.json` (+ `.md`, `.csv` when there is a table, + `.svg` via `screenshot(folder, name)`).

    about ({"model", "compute"}: what computed the numbers) heads every file: keys of the JSON,
    a first line of the Markdown and of the CSV ('# ' then `about_line`); the SVG's title is the
    screenshot's to set. Returns the paths written; raises ExportError when the folder cannot be
    made or written to.
    """
    head = about_line(about) if about is not None else None
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stem = export_stem(folder, pane_id)
        paths: list[Path] = []
        if screenshot is not None:
            screenshot(folder, f"{stem}.svg")
            paths.append(folder / f"{stem}.svg")
        if data is not None:
            path = folder / f"{stem}.json"
            path.write_text(to_json({"pane": pane_id, **(about or {}), **data}) + "\n", encoding="utf-8")
            paths.append(path)
        if table is not None:
            header, rows = table
            tables = {"md": to_markdown(header, rows), "csv": to_csv(header, rows)}
            if head is not None:  # a paragraph above the Markdown table; a comment line CSV readers can skip
                tables = {"md": f"{head}\n\n{tables['md']}", "csv": f"# {head}\n{tables['csv']}"}
            for ext, text in tables.items():
                path = folder / f"{stem}.{ext}"
                path.write_text(text, encoding="utf-8")
                paths.append(path)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ExportError(f"Could not write to {folder}: {reason}. Choose another folder with --export-dir.") from None
    return paths
