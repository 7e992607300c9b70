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
