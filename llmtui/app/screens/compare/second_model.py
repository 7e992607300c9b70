"""B's model in Compare: loaded on demand through the model service, and kept while the app runs.

The app holds one `SecondModel` (its `spec` is `--model-b`, if given) and every Compare screen
asks it for B's model. One model at a time: asking for another lets the last one go before
loading (two extra models need not fit together). The cache is read and written only on the
model thread, so a Compare worker cancelled mid-load (the user pressed enter again) still
leaves the loaded model for the next ask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from llmtui.app.model_thread import call, freeze_loaded_objects

if TYPE_CHECKING:
    from llmtui.engine.lm import LanguageModel

Progress = Callable[[str, float], None]


class SecondModel:
    """The Compare screens' B model: `spec` the one named on the command line (None: B is A's model)."""

    def __init__(self, spec: str | None = None, device: str = "cpu") -> None:
        self.spec = spec
        self.device = device
        self._loaded: tuple[str, LanguageModel] | None = None

    async def get(self, spec: str, progress: Progress | None = None) -> LanguageModel:
        """The model `spec` names (a catalogue name, a path or a repo id), loaded on the model thread if it is
        not the one kept. A ValueError (ModelLoadError) says in one line why it can't be loaded."""
        return await call(self._get_on_model_thread, spec, progress)

    def _get_on_model_thread(self, spec: str, progress: Progress | None) -> LanguageModel:
        from llmtui.engine.lm import LanguageModel
        from llmtui.engine.loading.fetch import catalogue, check_fits

        if self._loaded is not None and self._loaded[0] == spec:
            return self._loaded[1]
        self._loaded = None  # the last one goes first
        entry = catalogue().get(spec)
        if entry is not None:
            check_fits(entry)  # refused before anything is downloaded
        lm = LanguageModel.load(spec, device=self.device, progress=progress)
        freeze_loaded_objects()  # as for A's model: no long garbage-collector pauses while tokens stream
        self._loaded = (spec, lm)
        return lm
