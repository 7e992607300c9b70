"""The Layers pane's cursor: the side panel for the cell under it, its column picked as the app's current
token, and the keys that move it (answer layer, advance) or recolour the grid."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from llmtui.app.palette import legend
from llmtui.app.panes.layers import view
from llmtui.app.widgets.lens_grid import Cursor, LensGrid


class CursorPart:
    """Mixed into LayersPane: what the grid's cursor shows and picks.

    Named handlers, not `@on`: Textual registers `@on` only on widget classes, and this is a mixin."""

    # -- showing a cell ----------------------------------------------------------------------

    def _token_label(self, token_id: int) -> str:
        assert self.lm is not None
        return view.token_label(self.lm.tokenizer, token_id)

    def _show_side(self) -> None:
        cell_view = self.query_one("#lens-cell", Static)
        answer_view = self.query_one("#lens-answer", Static)
        side = self.query_one("#lens-side", VerticalScroll)
        data = self._data
        if data is None or self.lm is None:
            cell_view.update(Text(""))
            answer_view.update(Text(""))
            side.border_title = ""
            return
        cursor = self.grid.cursor
        row, pos = cursor.row, cursor.position
        width = max(20, cell_view.content_region.width or side.scrollable_content_region.width or 30)
        side.border_title = f"{view.layer_name(row)} · position {pos}"
        cell_view.update(view.cell_text(data, row, pos, width, self._token_label))
        answer_view.update(view.answer_text(data, row, pos, width, self._token_label))

    # -- selecting ---------------------------------------------------------------------------

    def on_lens_grid_cell_selected(self, event: LensGrid.CellSelected) -> None:
        """The user picked a cell: its column's token becomes the app's current token."""
        event.stop()
        data = self._data
        if data is not None and event.data is data:  # not a cell of a text the grid no longer shows
            self.select_token(data.ids, event.cursor.position)

    def _update_legend(self) -> None:
        self.grid.border_subtitle = legend("p top " if self.grid.colour_by == "top" else "p answer ")

    # -- actions ---------------------------------------------------------------------------

    def action_answer_layer(self) -> None:
        data = self._data
        if data is None:
            return
        row = data.answer_layer(self.grid.cursor.position)
        if row is not None:
            self.grid.cursor = Cursor(row, self.grid.cursor.position)

    def action_toggle_colour(self) -> None:
        self.grid.colour_by = "answer" if self.grid.colour_by == "top" else "top"
        self._update_legend()

    def advance(self) -> bool:
        """The advance key (F8): one layer down the selected column; after the last layer, the next column's first."""
        if self._data is None:
            return False
        self.grid.cursor = view.next_cell(self._data, self.grid.cursor)
        return True

    def on_resize(self) -> None:  # the side panel's width follows the pane's
        self._show_side()
