"""The Attention pane's navigation: layer and head, the layer's mean, the overviews, and the nav line
that shows where it stands. Each move only redraws the captured weights (no model run)."""

from __future__ import annotations

from dataclasses import replace

from textual.widgets import Static

from llmtui.app.display import count
from llmtui.app.panes.attention import view
from llmtui.app.widgets.head_overview import HeadOverview


class NavigationPart:
    """Mixed into AttentionPane: the keys that move `showing`, and the redraw that follows."""

    def action_layer(self, delta: int) -> None:
        """The previous or next layer; at the first or last one, say so and stay."""
        if self._need_attention():
            assert self.attention is not None
            self._step(*view.step_layer(self.showing, delta, self.attention.n_layer))

    def action_head(self, delta: int) -> None:
        """The previous or next head (from the mean: back to one head); at either end, say so and stay."""
        if self._need_attention():
            assert self.attention is not None
            self._step(*view.step_head(self.showing, delta, self.attention.n_head))

    def action_toggle_average(self) -> None:
        if not self._need_attention():
            return
        self.showing = replace(self.showing, average=not self.showing.average)
        if self.view != "map":
            self._set_view("map")
        elif not self._redraw():
            return
        self.say(f"Showing {self._head_name()}.")

    def action_overview(self, which: view.View) -> None:
        """Every head of the layer (or of the model) small; the same key again goes back to the map."""
        if not self._need_attention():
            return
        if self.attention is not None and self.attention.partial is not None:
            self.say("The other layers are still running: a moment.", "busy")
            return
        self._set_view("map" if self.view == which else which)
        if self.view != "map":
            self.say("Arrows move, enter or a click opens a head · escape goes back to the map.")

    def action_back(self) -> None:
        """From an overview back to the map; from the prompt box back to the map."""
        if self.view != "map":
            self._set_view("map")
        elif self.app.focused is self.prompt and self.attention is not None:
            self.heatmap.focus()

    def show_head(self, layer: int, head: int) -> None:
        """Show one head (for demos); kept within the model's layers and heads."""
        self.showing = replace(self.showing, layer=max(0, layer), head=max(0, head), average=False)
        if self.attention is not None:
            self.showing = self.showing.within(self.attention.n_layer, self.attention.n_head)
            if self.view != "map":
                self._set_view("map")
            if self._redraw():
                self.say(f"Showing {self._head_name()}.")

    def advance(self) -> bool:
        """The advance key: the next head; after a layer's last head, the next layer's first."""
        if self.attention is None:
            return False
        self.show_head(*view.next_head(self.showing, self.attention.n_layer, self.attention.n_head))
        return True

    def _open_head(self, event: HeadOverview.Opened) -> None:
        """A thumbnail opened (enter or a click): that head on the map."""
        if self.attention is None:
            return
        shown = self.attention.n_head * (self.attention.n_layer if self.view == "all" else 1)
        if self.view not in ("layer", "all") or event.count != shown or not 0 <= event.index < shown:
            return  # a choice among thumbnails shown before (another view or text), still queued
        layer, head = self.showing.overview_head(event.index, self.attention.n_head)
        self.showing = replace(self.showing, layer=layer, head=head, average=False)
        self._set_view("map")
        self.say(f"Opened {self._head_name()}.")

    def _need_attention(self) -> bool:
        if self.attention is None:
            self.say("Nothing to show yet: type a prompt and press enter.", "error")
            return False
        return True

    def _step(self, showing: view.Showing, why_not: str | None) -> None:
        if why_not is not None:
            self.say(why_not)
            return
        self.showing = showing
        if self._redraw():
            self.say(f"Showing {self._head_name()}.")

    def _set_view(self, which: view.View) -> None:
        self.showing = replace(self.showing, view=which)
        self.set_class(which != "map", "-overview")
        self.maps.switch(self.showing)
        self._update_nav()

    def _redraw(self) -> bool:
        """The layer, head or mode changed: redraw from the captured weights (no model run). A layer whose
        block is still running (a partial map) is drawn when the whole map lands: False, and the pane says so."""
        drawn = self.maps.redraw(self.showing)
        self._update_nav()
        if not drawn:
            self.say(f"Layer {self.showing.layer} is still running: it shows in a moment.", "busy")
        return drawn

    def _head_name(self) -> str:
        if self.attention is None:
            return ""
        return view.head_name(self.attention, self.showing.layer, self.showing.head, self.showing.average)

    def _update_nav(self) -> None:
        """The line of clickable controls: ◀ layer ▶, ◀ head ▶, average, overviews."""
        nav = self.query_one("#att-nav", Static)
        if self.lm is None:
            nav.update("")
            return
        c, attention = self.lm.config, self.attention
        s = self.showing
        nav.update(view.nav_line(s.layer, s.head, attention.n_layer if attention else c.n_layer,
                                 attention.n_head if attention else c.n_head, s.average, s.view))
        self.heatmap.border_title = self._head_name() if attention else "Attention"
        if attention is not None:
            what = "every head of every layer" if self.view == "all" else f"layer {self.layer_index}: every head"
            self.overview.border_title = f"{what} · {count(attention.n_tokens, 'token')} · enter or a click opens one"
