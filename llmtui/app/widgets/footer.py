"""The key footer: Textual's, minus a leak that kept every old key alive."""

from __future__ import annotations

from textual.dom import DOMNode
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    """Textual's Footer, which rebuilds its keys whenever the bindings change.

    The bindings change at the start and the end of every generation. Each FooterKey
    follows the footer's `compact` with `data_bind`, which adds a watcher to the footer;
    Textual 8 prunes a closed widget's watcher only when `compact` changes, which it
    never does here, so every old key stayed alive with its styles and render caches
    (about 1,500 objects per generation: benchmarks/long_session.py). After each
    rebuild, the watchers of keys that are gone are dropped.
    """

    async def recompose(self) -> None:
        await super().recompose()
        drop_closed_watchers(self)


def drop_closed_watchers(node: DOMNode) -> None:
    """Forget watchers on node's reactives that belong to widgets since removed."""
    watchers: dict[str, list[tuple[DOMNode, object]]] = getattr(node, "__watchers", {})
    for entries in watchers.values():
        entries[:] = [(owner, callback) for owner, callback in entries if not (owner._closing or owner._closed)]
