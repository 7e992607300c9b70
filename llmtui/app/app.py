"""The app shell: one tab per pane, a status line, the footer, and the model loaded in a worker.

The screen is drawn at once; the model loads in a thread that posts its progress,
and every pane shows "loading" until the app hands it the model (`Pane.set_model`, the
one channel for the model's state). A load error is shown in the panes, with what to
do, and the app keeps running. Data goes down (the app sets the model, the selection
and the prompt on panes); messages come up (panes post `TokenSelected`, ...).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterable

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.theme import Theme
from textual.widgets import ContentSwitcher, Tab, Tabs

from llmtui.app import textual_workarounds
from llmtui.app.demo_runner import DemoBar, DemoRunner
from llmtui.app.display import safe
from llmtui.app.messages import (LocalModelWanted, ModelLoaded, ModelLoadFailed, ModelLoadProgress, OpenModel,
                                 ReconnectWanted, RemoteConnected, RemoteFailed, RemoteTraffic, ShowTokenInEmbeddings,
                                 TextWanted, Throughput, WeightsChanged)
from llmtui.app.model_thread import freeze_loaded_objects, run_on_model_thread, thaw_frozen_objects
from llmtui.app.screens.compare.second_model import SecondModel
from llmtui.app.panes import PANES, Pane
from llmtui.app.panes.remote import REMOTE_PANES, NeedsWeightsPane
from llmtui.app.panes.remote.view import status_text
from llmtui.app.screens.command_palette import CommandPalette
from llmtui.app.screens.help import HelpScreen
from llmtui.app.screens.live_hits import MainScreen
from llmtui.app.selection import TokenSelected, TokenSelection
from llmtui.app.state import ModelState
from llmtui.app.widgets.footer import Footer
from llmtui.app.widgets.status_line import StatusLine
from llmtui.app.widgets.text_box import is_text_box
from llmtui.engine.text import escape_controls

textual_workarounds.install()  # pastes are read whole (see textual_workarounds.py)

if TYPE_CHECKING:
    from textual.notifications import SeverityLevel

    from llmtui.demo import Demo
    from llmtui.engine.lm import LanguageModel
    from llmtui.engine.remote.client import RemoteModel
    from llmtui.engine.remote.endpoint import Endpoint
    from llmtui.engine.settings import SamplingSettings

THEMES = {"dark": "textual-dark", "light": "textual-light"}


def tab_labels(width: int | None = None, padding: int = 2) -> list[str]:
    """The pane tabs' labels: "1 Tokenizer" where `width` columns hold them all, else "1 Tok", else "1".

    Without the shorter labels, a terminal under 62 columns cut off the Layers and Generate tabs.
    """
    ladder = [[f"{n} {p.TITLE}" for n, p in enumerate(PANES, start=1)],
              [f"{n} {p.SHORT_TITLE}" for n, p in enumerate(PANES, start=1)],
              [str(n) for n in range(1, len(PANES) + 1)]]
    if width is None:
        return ladder[0]
    return next((labels for labels in ladder if sum(len(label) + padding for label in labels) <= width), ladder[-1])


APP_KEYS = [
    (f"alt+1 … {len(PANES)}", "Switch pane, from anywhere (or click its tab)"),
    (f"1 … {len(PANES)}", "Switch pane, outside a text box (in one, digits are typed)"),
    ("escape", "Leave the text box (in Generate, while generating: stop first)"),
    ("ctrl+l", "Put the cursor in the pane's text box"),
    ("F1, ?", "This help"),
    ("ctrl+p", "Command palette: every action, and the themes"),
    ("F8", "Advance: the demo's next step, or the pane's (next token, next head)"),
    ("shift+F8", "The demo's previous step"),
    ("F9", "Presentation mode on/off (high contrast, keys always shown)"),
    ("ctrl+s", "Export this pane: SVG screenshot, JSON data, Markdown and CSV table"),
    ("ctrl+q", "Quit"),
]

PRESENT_THEMES = {
    True: Theme("llmtui-present-dark", primary="#4da6ff", secondary="#ffd700", accent="#ffd700", warning="#ffd700",
                error="#ff5555", success="#55ff55", foreground="#ffffff", background="#000000", surface="#000000",
                panel="#202020", dark=True, variables={"text-muted": "#ffffff", "footer-key-foreground": "#ffd700"}),
    False: Theme("llmtui-present-light", primary="#0040c0", secondary="#a000a0", accent="#c05000", warning="#a05000",
                 error="#c00000", success="#006000", foreground="#000000", background="#ffffff", surface="#ffffff",
                 panel="#e0e0e0", dark=False, variables={"text-muted": "#000000", "footer-key-foreground": "#0040c0"}),
}
"""Presentation mode's themes: pure black/white and a few saturated colours, no greys (dark and light)."""


class LLMTuiApp(App[None]):
    """See inside a real language model, one concept per pane."""

    TITLE = "llmtui"
    CSS_PATH = str(Path(__file__).with_name("app.tcss"))  # absolute: subclasses elsewhere find it too
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-narrow"), (100, "-normal"), (150, "-wide")]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-tiny"), (20, "-short"), (30, "-tall"),
                                                             (45, "-very-tall")]

    BINDINGS = [
        *(
            Binding(str(n), f"show_pane('{pane.PANE_ID}')", pane.TITLE, show=False)
            for n, pane in enumerate(PANES, start=1)
        ),
        *(  # terminals send alt+digit as ESC then the digit, which a text box never takes
            Binding(f"alt+{n}", f"show_pane('{pane.PANE_ID}')", pane.TITLE, show=False, priority=True)
            for n, pane in enumerate(PANES, start=1)
        ),
        Binding("ctrl+l", "focus_text", "Edit text", show=False, priority=True),
        Binding("f1", "help", "Help", priority=True),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("f8", "advance", "Advance", show=False, priority=True),
        Binding("shift+f8", "demo_back", "Demo: back", show=False, priority=True),
        Binding("f9", "toggle_present", "Presentation", show=False, priority=True),
        Binding("ctrl+s", "export", "Export", show=False, priority=True),
    ]

    model_state: reactive[ModelState] = reactive(ModelState)
    """Where the model is: loading (with progress), ready, or failed (with the reason)."""
    selection: reactive[TokenSelection | None] = reactive(None, init=False)
    """The app's current token, selected in one pane and followed by the others; None until the user picks one."""

    def __init__(
        self,
        model: str | None = None,
        device: str = "cpu",
        pane: str | None = None,
        prompt: str | None = None,
        *,
        precision: str = "exact",
        lm: LanguageModel | None = None,
        theme: str | None = None,
        settings: SamplingSettings | None = None,
        present: bool = False,
        demo: Demo | None = None,
        export_dir: str | Path | None = None,
        endpoint: Endpoint | None = None,
        model_b: str | None = None,
    ) -> None:
        """model: a catalogue name, a path or a repo id (None: the default model); model_b: Compare's B model
        (loaded when Compare first opens; None: B is the same model); lm: one already loaded;
        precision: exact or a faster mode (model/precision.py) for the model loaded here;
        present: presentation mode; demo: a walk-through (llmtui.demo.load_demo); export_dir: where ctrl+s writes;
        endpoint: a served model (Generate and Tokenizer through its server; no local model unless asked for)."""
        super().__init__()
        self.endpoint = endpoint
        self.remote: RemoteModel | None = None
        for theme_ in PRESENT_THEMES.values():
            self.register_theme(theme_)
        self.present = present
        self._theme_before_present: str | None = None
        self.demo_runner = DemoRunner(self, demo) if demo is not None else None
        self.export_dir = Path(export_dir) if export_dir is not None else Path("llmtui-exports")
        self.model_spec = model  # None: the default model (its name is read in the loading thread: torch is slow to import)
        self.device_name = device
        self.precision = precision
        self.second_model = SecondModel(model_b, device)
        """Compare's B model, loaded on demand and kept (one at a time)."""
        self.start_pane = pane or "generate"
        self.start_prompt = prompt
        self.lm: LanguageModel | None = None
        self._followed: dict[str, TokenSelection] = {}  # the selection each pane was last shown
        self._injected = lm
        self._settings = settings
        if theme is not None:
            self.theme = THEMES.get(theme, theme)
        self.set_reactive(LLMTuiApp.model_state, ModelState(spec=lm.name if lm else model or "the default model"))

    # -- layout ----------------------------------------------------------------------------

    def get_default_screen(self) -> Screen:
        return MainScreen(id="_default")  # Textual's Screen, with mouse hits only on live widgets

    def compose(self) -> ComposeResult:
        yield Tabs(*(Tab(label, id=f"tab-{p.PANE_ID}") for label, p in zip(tab_labels(), PANES)), id="tabs")
        with ContentSwitcher(id="panes", initial=self.start_pane):
            for pane_class in REMOTE_PANES if self.endpoint is not None else PANES:
                if pane_class.PANE_ID == "generate":  # on the server's model when there is one, else on the local one
                    yield pane_class(settings=self._settings, served=self.endpoint is not None)  # type: ignore[call-arg]
                else:
                    yield pane_class()
        yield DemoBar(id="demo-bar")
        yield StatusLine(id="status")
        yield Footer()

    def on_unmount(self) -> None:
        thaw_frozen_objects()  # this app's widgets and the loaded model can be collected once it is gone

    def on_mount(self) -> None:
        tabs = self.query_one(Tabs)
        tabs.can_focus = False  # keys stay in the pane; tabs switch by number keys and clicks
        self._fit_tab_labels(self.size.width)
        tabs.active = f"tab-{self.start_pane}"
        for pane in self.panes:
            pane.set_export_dir(self.export_dir)
            if self.start_prompt is not None:
                pane.set_prompt(self.start_prompt)
        self._hand_down_model(self.model_state)
        self.watch(self.screen, "focused", self._focus_changed)  # the status line says which keys apply
        self.current_pane.focus_default()
        if self.present:
            self._set_present(True)
        if self.demo_runner is not None:
            self.demo_runner.next()
        self.refresh_demo_bar()
        if self.endpoint is not None:
            self.status.remote_info = f"connecting to {self.endpoint.url}…"
            self.connect_remote()
        elif self._injected is not None:
            self.call_after_refresh(self._model_ready, self._injected)
        else:
            self._load_model()

    @property
    def panes(self) -> list[Pane]:
        return list(self.query(Pane))

    @property
    def current_pane(self) -> Pane:
        switcher = self.query_one("#panes", ContentSwitcher)
        return self.query_one(f"#{switcher.current}", Pane)

    @property
    def status(self) -> StatusLine:
        return self.query_one("#status", StatusLine)

    def pane(self, pane_id: str) -> Pane:
        return self.query_one(f"#{pane_id}", Pane)

    # -- panes -----------------------------------------------------------------------------

    def on_resize(self, event: events.Resize) -> None:
        self._fit_tab_labels(event.size.width)

    def _fit_tab_labels(self, width: int) -> None:
        """Every tab stays on screen: shorter labels where the full ones would run off a narrow terminal."""
        tabs = list(self.query_one(Tabs).query(Tab))
        padding = max((tab.styles.gutter.width for tab in tabs), default=0)
        for label, tab in zip(tab_labels(width, padding), tabs):
            if tab.label_text != label:
                tab.label = label

    def action_show_pane(self, pane_id: str) -> None:
        self.query_one(Tabs).active = f"tab-{pane_id}"

    def action_focus_text(self) -> None:
        self.current_pane.focus_text()

    def _focus_changed(self, focused: Widget | None) -> None:
        self.status.in_text = is_text_box(focused)

    @on(Tabs.TabActivated, "#tabs")
    def _tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab.id != event.tabs.active:
            return  # stale: a later pane key (or click) made another tab active; its own message follows
        pane_id = event.tab.id.removeprefix("tab-") if event.tab.id else self.start_pane
        switcher = self.query_one("#panes", ContentSwitcher)
        if switcher.current != pane_id:
            switcher.current = pane_id
            self.current_pane.focus_main()  # not its text box: the next digit switches panes again
            self._follow(self.current_pane)

    # -- the current token, shared by the panes ---------------------------------------------

    @on(TokenSelected)
    def _token_selected(self, message: TokenSelected) -> None:
        message.stop()
        selection, current = message.selection, self.selection
        if current is not None and current.same_text(selection.ids) and current.position == selection.position:
            return  # the token already current (a pane's cursor landing on the token it follows): its source stays
        if not selection.source_title:  # the panes that follow it say where it came from
            titles = {p.PANE_ID: p.TITLE for p in PANES}
            selection = replace(selection, source_title=titles.get(selection.source, selection.source))
        self._followed[selection.source] = selection  # what the source pane shows now
        self.selection = selection  # a reactive: a selection equal to the current one changes nothing

    def watch_selection(self, selection: TokenSelection | None) -> None:
        for pane in self.panes:
            pane.selection = selection
        if selection is None:
            return
        titles = {p.PANE_ID: p.TITLE for p in PANES}
        tokenizer = self.lm.tokenizer if self.lm is not None else None
        for status in self.query(StatusLine):
            status.selection = selection.describe(tokenizer, titles.get(selection.source))
        self._follow(self.current_pane)

    def _follow(self, pane: Pane) -> None:
        """Show the current token in `pane`, unless the user selected it there or the pane has followed it already
        (so text typed in a pane since is never overwritten by the same selection again)."""
        selection = self.selection
        if selection is None or selection.source == pane.PANE_ID or self._followed.get(pane.PANE_ID) == selection:
            return
        self._followed[pane.PANE_ID] = selection
        pane.follow_selection(selection)

    def action_command_palette(self) -> None:
        """Textual's palette, in a version that closes at most once (see screens/command_palette.py)."""
        if self.use_command_palette and not CommandPalette.is_open(self):
            self.push_screen(CommandPalette(id="--command-palette"))

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        pane = self.current_pane
        self.push_screen(HelpScreen(f"{pane.TITLE} — help", pane.HELP, pane.help_keys() + APP_KEYS))

    # -- presentation mode, demos, export ----------------------------------------------------

    def action_toggle_present(self) -> None:
        self._set_present(not self.present)

    def _set_present(self, on: bool) -> None:
        """High contrast (a presentation theme matching the current one's darkness), bold text, keys on screen."""
        self.present = on
        self.set_class(on, "-present")
        if on and not self.theme.startswith("llmtui-present"):
            self._theme_before_present = self.theme
            self.theme = PRESENT_THEMES[self.current_theme.dark].name
        elif not on and self.theme.startswith("llmtui-present"):
            self.theme = self._theme_before_present or ("textual-dark" if self.current_theme.dark else "textual-light")
        self.refresh_demo_bar()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Textual's notify, plain text by default: messages quote file names, model names and typed text,
        and Textual would read a '[/]' in them as markup (MarkupError when the toast is drawn: the app ended)."""
        if not markup:
            message, title = safe(message), escape_controls(title, keep="")
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def refresh_demo_bar(self) -> None:
        runner = self.demo_runner
        self.query_one(DemoBar).show(runner.demo if runner else None, runner.step if runner else None, self.present)

    def action_advance(self) -> None:
        """The demo's next step; after its last (or without a demo) the current pane's own next step."""
        if self.demo_runner is not None and self.demo_runner.next():
            return
        if not self.current_pane.advance():
            note = "End of the demo. " if self.demo_runner is not None else ""
            self.notify(f"{note}Nothing to advance in the {self.current_pane.TITLE} pane.", timeout=3)

    def action_demo_back(self) -> None:
        if self.demo_runner is None:
            self.notify("No demo is open: start one with llmtui --demo NAME.", timeout=3)
        elif not self.demo_runner.previous():
            self.notify("This is the demo's first step.", timeout=3)

    def action_export(self) -> None:
        """Write the current pane's screenshot (SVG) and data (JSON; its table as Markdown and CSV) to export_dir."""
        from llmtui.export import ExportError, about_line, export_pane

        pane = self.current_pane
        about = {"model": self.lm.name, "compute": self.lm.compute} if self.lm is not None else None

        def screenshot(folder: Path, name: str) -> None:  # titled with what computed the numbers
            title = about_line(about) if about is not None else self.title
            (folder / name).write_text(self.export_screenshot(title=title), encoding="utf-8")

        try:
            paths = export_pane(self.export_dir, pane.PANE_ID, pane.export_data(), pane.export_table(), screenshot,
                                about=about)
        except ExportError as e:
            self.notify(str(e), title="Export failed", severity="error", timeout=10)
            return
        names = ", ".join(p.name for p in paths)
        self.notify(f"Wrote {names} to {paths[0].parent}", title=f"{pane.TITLE} exported", timeout=8)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for n, pane in enumerate(PANES, start=1):
            yield SystemCommand(f"Show the {pane.TITLE} pane", f"key {n}", lambda p=pane.PANE_ID: self.action_show_pane(p))
        yield SystemCommand("Help for this pane", "F1 or ?", self.action_help)
        yield SystemCommand("Dark theme", "textual-dark", lambda: setattr(self, "theme", THEMES["dark"]))
        yield SystemCommand("Light theme", "textual-light", lambda: setattr(self, "theme", THEMES["light"]))
        yield SystemCommand("Presentation mode on/off", "F9: high contrast, keys always shown", self.action_toggle_present)
        yield SystemCommand("Export this pane", f"ctrl+s: SVG, JSON, Markdown, CSV into {self.export_dir}", self.action_export)
        yield SystemCommand("Advance", "F8: the demo's next step, or the pane's next token / head", self.action_advance)
        for pane in self.panes:
            for title, help_text, callback in pane.commands():
                yield SystemCommand(title, help_text, callback)
        yield from self._model_commands()

    def _model_commands(self) -> Iterable[SystemCommand]:
        """One "Switch to" entry per catalogue model, saying what it needs and whether it is here and fits."""
        from llmtui.engine.loading.fetch import available_memory, catalogue, describe, download_label, gigabytes

        try:
            entries = catalogue()
        except Exception:  # noqa: BLE001 - a broken catalogue file: no entries, the palette still opens
            return
        available = available_memory()
        for name, entry in entries.items():
            row = describe(entry, available)
            needs = f"needs {gigabytes(row['memory_needed'])}" if row["memory_needed"] else "memory unknown"
            where = "downloaded" if row["downloaded"] else f"downloads {download_label(row['download_mb'])}"
            where += "; loaded now" if self.lm is not None and self.lm.name == entry.display_name else ""
            fits = "; too big for this machine" if row["fits"] is False else ""
            yield SystemCommand(f"Switch to {entry.display_name}", f"{entry.family}, {needs}, {where}{fits}",
                                lambda spec=name: self.switch_model(spec))  # fmt: skip

    def switch_model(self, spec: str) -> None:
        """Load another model in place of this one; the panes reload when it is ready.

        A catalogue model that cannot fit is refused before anything is downloaded; a load that
        fails leaves the current model in place.
        """
        from llmtui.engine.loading.fetch import catalogue, check_fits
        from llmtui.engine.loading.load import ModelLoadError

        if self.model_state.phase == "loading":
            self.notify("A model is loading already: wait for it, then switch.", severity="warning")
            return
        entry = catalogue().get(spec)
        if entry is not None:
            try:
                check_fits(entry)
            except ModelLoadError as e:
                self.notify(str(e), title="Not switched", severity="error", timeout=10)
                return
        self.model_spec = spec
        self.model_state = ModelState("loading", spec, "starting", 0.0)
        self._load_model()

    # -- a served model (--endpoint) -------------------------------------------------------

    @work(thread=True, exclusive=True, group="remote", exit_on_error=False)
    def connect_remote(self) -> None:
        """Ask the server for its models (in a thread); only post messages from here."""
        from llmtui.engine.errors import RemoteError
        from llmtui.engine.remote.client import RemoteModel

        assert self.endpoint is not None
        try:
            self.post_message(RemoteConnected(RemoteModel.connect(self.endpoint)))
        except RemoteError as e:
            self.post_message(RemoteFailed(str(e)))
        except Exception as e:  # a bug: one line, the app keeps running
            self.post_message(RemoteFailed(f"internal error ({type(e).__name__}: {e}); rerun with LLMTUI_DEBUG=1"))

    @on(RemoteConnected)
    def _remote_connected(self, message: RemoteConnected) -> None:
        self.remote = message.remote
        self.status.remote_info = status_text(message.remote, None)
        for pane in self.panes:
            pane.post_message(RemoteConnected(message.remote))

    @on(RemoteFailed)
    def _remote_failed(self, message: RemoteFailed) -> None:
        assert self.endpoint is not None
        self.status.remote_info = f"{self.endpoint.url}: not attached (see the pane)"
        for pane in self.panes:
            pane.post_message(RemoteFailed(message.error))

    @on(RemoteTraffic)
    def _remote_traffic(self, message: RemoteTraffic) -> None:
        message.stop()
        status = next(self.query("#status").results(StatusLine), None)  # None while the app shuts down
        if self.remote is not None and status is not None:
            status.remote_info = status_text(self.remote, message.traffic)

    @on(ReconnectWanted)
    def _reconnect(self, message: ReconnectWanted) -> None:
        message.stop()
        if self.endpoint is not None:
            self.connect_remote()

    @on(LocalModelWanted)
    async def open_local_model(self, message: LocalModelWanted | None = None) -> None:
        """Beside a served model: load the default (or --model) one here for the panes that need weights."""
        stand_ins = list(self.query(NeedsWeightsPane))
        if not stand_ins:
            return
        switcher = self.query_one("#panes", ContentSwitcher)
        for stand_in in stand_ins:
            real = stand_in.REAL()
            await stand_in.remove()
            await switcher.mount(real)
            real.display = real.id == switcher.current
        self.status.local_started = True
        self._load_model()
        self.current_pane.focus_default()

    # -- the model -------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def _load_model(self) -> None:
        """Load the model in a thread; only post messages from here."""

        def progress(message: str, fraction: float) -> None:
            self.post_message(ModelLoadProgress(message, fraction))

        try:
            progress("starting", 0.0)
            from llmtui.engine.errors import USER_ERRORS
            from llmtui.engine.lm import DEFAULT_MODEL, LanguageModel

            try:
                lm = run_on_model_thread(
                    LanguageModel.load, self.model_spec or DEFAULT_MODEL, device=self.device_name, progress=progress,
                    precision=self.precision,
                )
            except USER_ERRORS as e:
                self.post_message(ModelLoadFailed(str(e)))
                return
            freeze_loaded_objects()  # no long garbage-collector pauses while tokens stream
        except Exception as e:  # a bug, or a broken install: one line, the app keeps running
            self.post_message(ModelLoadFailed(f"internal error ({type(e).__name__}: {e}); rerun with LLMTUI_DEBUG=1"))
            if __import__("os").environ.get("LLMTUI_DEBUG"):
                raise
            return
        self.post_message(ModelLoaded(lm))

    @on(ModelLoadProgress)
    def _load_progress(self, message: ModelLoadProgress) -> None:
        if self.model_state.phase == "loading":
            self.model_state = ModelState("loading", self.model_state.spec, message.message, message.fraction)

    @on(ModelLoadFailed)
    def _load_failed(self, message: ModelLoadFailed) -> None:
        if self.lm is not None:  # a switch that failed: the model already shown stays
            self.model_state = ModelState("ready", self.lm.name, "ready", 1.0)
            self.notify(message.error, title="Not switched", severity="error", timeout=10)
            return
        self.model_state = ModelState("failed", self.model_state.spec, "failed", 0.0, message.error)
        self.notify(message.error, title="The model could not be loaded", severity="error", timeout=10)

    @on(ModelLoaded)
    def _loaded(self, message: ModelLoaded) -> None:
        self._model_ready(message.lm)

    def _model_ready(self, lm: LanguageModel) -> None:
        self.lm = lm
        self.status.tuned = ""
        freeze_loaded_objects(collect=False)  # the widgets too: full collections skip them from now on
        self.status.model_info = StatusLine.describe(lm.name, lm.n_params, str(lm.device), lm.compute_label)
        self.model_state = ModelState("ready", lm.name, "ready", 1.0)
        for note in lm.notes:
            self.notify(note, title="Note", severity="warning", timeout=10)

    @on(WeightsChanged)
    def _weights_changed(self, message: WeightsChanged) -> None:
        """Training changed the model's weights (or put them back): mark it, and every other pane computes again."""
        message.stop()
        self.status.tuned = message.tuned
        if self.lm is not None:
            for pane in self.panes:
                if pane.PANE_ID != "train":  # the pane that trained knows
                    pane.model_ready(self.lm)  # the same model object, new weights: compute again

    @on(OpenModel)
    def _open_model(self, message: OpenModel) -> None:
        """Load another model (a folder the Train pane saved) for every pane, as --model would."""
        message.stop()
        self.model_spec = message.spec
        self.model_state = ModelState(spec=message.spec)
        self._load_model()

    def watch_model_state(self, state: ModelState) -> None:
        if self.is_mounted:
            self._hand_down_model(state)

    def _hand_down_model(self, state: ModelState) -> None:
        self.status.model_state = state
        for pane in self.panes:
            pane.set_model(state, self.lm if state.ready else None)

    @on(ShowTokenInEmbeddings)
    def _show_token_in_embeddings(self, message: ShowTokenInEmbeddings) -> None:
        self.action_show_pane("embeddings")
        show_token = getattr(self.pane("embeddings"), "show_token", None)
        if callable(show_token):
            show_token(message.token_id)

    @on(TextWanted)
    def _text_wanted(self, message: TextWanted) -> None:
        message.stop()
        message.reply(self.pane(message.pane_id).shown_ids())

    @on(Throughput)
    def _throughput(self, message: Throughput) -> None:
        # Many times a second: no DOM query (it walks every widget), the status line found once.
        status = getattr(self, "_status_line", None)
        if status is None:
            statuses = self.query("#status").results(StatusLine)
            status = self._status_line = next(statuses, None)
            if status is None:
                return
        if status.is_attached:  # not while the app shuts down
            status.tokens_per_s = message.tokens_per_s
            if self.lm is not None:  # the kernels may have finished building since the model loaded
                status.model_info = StatusLine.describe(self.lm.name, self.lm.n_params, str(self.lm.device),
                                                        self.lm.compute_label)
