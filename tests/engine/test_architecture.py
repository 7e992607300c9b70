"""The engine is headless: importing it must not pull in textual or rich."""

import pkgutil
import subprocess
import sys

import llmtui.engine

# Every module under llmtui/engine, found by walking the package (a new module is covered without editing a list).
ENGINE_MODULES = sorted(m.name for m in pkgutil.walk_packages(llmtui.engine.__path__, "llmtui.engine."))


def test_the_walk_finds_the_engine():
    assert {"llmtui.engine.model.transformer", "llmtui.engine.sampling", "llmtui.engine.studies.lens"} <= set(ENGINE_MODULES)


def test_engine_imports_neither_textual_nor_rich():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in ENGINE_MODULES)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))\n"
        + "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_does_not_import_torch():
    # `llmtui --help` should answer at once; torch is imported only by commands that need it.
    code = "import sys, llmtui.cli; llmtui.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _pane_imports() -> dict[str, set[str]]:
    """For each pane (a module or a package under llmtui/app/panes), the other panes its files import."""
    import ast
    from pathlib import Path

    import llmtui.app.panes as panes

    root = Path(panes.__path__[0])
    shared = {"base", "__init__"}
    owners = {p.stem if p.is_file() else p.name for p in root.iterdir()
              if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.stem not in shared}
    found: dict[str, set[str]] = {}
    for pane in owners:
        files = [root / f"{pane}.py"] if (root / f"{pane}.py").exists() else sorted((root / pane).rglob("*.py"))
        imported = set()
        for file in files:
            for node in ast.walk(ast.parse(file.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                for name in names:
                    parts = name.split(".")
                    if parts[:3] == ["llmtui", "app", "panes"] and len(parts) > 3 and parts[3] not in shared | {pane}:
                        imported.add(parts[3])
        found[pane] = imported
    return found


def test_the_walk_finds_every_pane():
    assert {"tokenizer", "embeddings", "attention", "layers", "generate"} <= set(_pane_imports())


def test_no_pane_imports_another():
    # Panes talk through the app (messages up, data down): a pane importing another would tie them together.
    assert {pane: others for pane, others in _pane_imports().items() if others} == {}


def test_panes_read_nothing_of_the_app_but_textuals_own():
    """Data down: a pane gets the app's state through set_model / set_prompt / set_export_dir /
    follow_selection, never by reading the app's attributes (Textual's own API is fine)."""
    import ast
    from pathlib import Path

    import llmtui.app.panes as panes

    textual_app = {"focused", "push_screen", "size", "screen", "notify", "call_later", "exit", "bell"}
    read = set()
    for file in Path(panes.__path__[0]).rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "app" and node.attr not in textual_app:
                read.add(f"{file.name}: app.{node.attr}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" and node.args \
                    and isinstance(node.args[0], ast.Attribute) and node.args[0].attr == "app":
                read.add(f"{file.name}: getattr(app, ...)")
    assert read == set()


def test_no_pane_module_is_over_300_lines():
    """A pane's part with a life of its own goes in a module named for it (ARCHITECTURE.md: Panes), so
    that every module under llmtui/app/panes reads in one sitting."""
    from pathlib import Path

    import llmtui.app.panes as panes

    root = Path(panes.__path__[0])
    long = {str(f.relative_to(root)): n for f in sorted(root.rglob("*.py")) if (n := len(f.read_text().splitlines())) > 300}
    assert long == {}
