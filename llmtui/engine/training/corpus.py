"""Text to pretrain on: by default the docstrings of the Python standard library on this machine.

Every Python install carries a few MB of plain English about programming in its
docstrings, so nothing has to be shipped or downloaded: they are read at run time
from the running interpreter's own library (tests and site-packages left out).
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path

SKIPPED_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}
DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_docstrings(root: Path | None = None, max_chars: int = 4_000_000) -> Iterator[str]:
    """Docstrings of the standard library's modules, classes and functions, in a fixed order."""
    root = root or stdlib_root()
    total = 0
    for path in sorted(root.rglob("*.py")):
        if SKIPPED_DIRS.intersection(path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError, OSError):  # a file for another Python version, or unreadable
            continue
        for node in ast.walk(tree):
            if isinstance(node, DOCUMENTED) and (doc := ast.get_docstring(node)):
                yield doc
                total += len(doc)
                if total >= max_chars:
                    return


def read_documents(path: str | None, max_chars: int = 4_000_000) -> list[str]:
    """The corpus as documents: a text file's blank-line separated paragraphs, or the stdlib's docstrings."""
    if path is None:
        docs = list(stdlib_docstrings(max_chars=max_chars))
        if not docs:
            raise ValueError(f"found no docstrings under {stdlib_root()}; name a text file to train on")
        return docs
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")[:max_chars]
    except OSError as err:
        raise ValueError(f"can't read {path}: {err.strerror or err}") from err
    docs = [p.strip() for p in text.split("\n\n") if p.strip()]
    if not docs:
        raise ValueError(f"{path} holds no text to train on")
    return docs
