"""Load a study module from another checkout (`--baseline DIR`), to time the code before a change beside
the code after it in one process, rounds interleaved, on the same loaded model.

    git archive main llmtui | tar -x -C /tmp/before   # the code before, e.g. main
    .venv/bin/python benchmarks/layers_pane.py --baseline /tmp/before

The module is read from DIR/llmtui/engine/studies/NAME.py under its own name; what it imports
(the model, errors) comes from this checkout, so only the study's own code differs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def load_study(root: str, name: str) -> ModuleType:
    """llmtui/engine/studies/<name>.py of the checkout at root, as module baseline_<name>."""
    path = Path(root) / "llmtui" / "engine" / "studies" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"baseline_{name}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no study {name} at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
