"""The probability colour scale: five bins, strong colours with their own text colour.

Each bin paints a background and picks black or white text on it, so the scale reads
the same on dark and light themes and survives a washed-out projector. The hues go
from blue (the model was sure) through yellow to red (a surprise), which stays
distinguishable for the common forms of colour blindness.

    >>> bin_of(0.77).label, bin_of(0.01).label
    ('≥50', '<5%')
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text


@dataclass(frozen=True)
class ProbabilityBin:
    low: float  # probabilities >= low (and below the previous bin's low) fall here
    background: str
    foreground: str
    label: str
    name: str  # the colour in words, for captions and help ("blue")

    @property
    def style(self) -> Style:
        return Style(color=self.foreground, bgcolor=self.background)

    @property
    def bar_style(self) -> Style:
        """The bin's colour as a foreground, for bars drawn with block characters."""
        return Style(color=self.background)


BINS: tuple[ProbabilityBin, ...] = (
    ProbabilityBin(0.80, "#1565c0", "#ffffff", "≥80", "blue"),
    ProbabilityBin(0.50, "#4fc3f7", "#000000", "≥50", "light blue"),
    ProbabilityBin(0.20, "#ffd54f", "#000000", "≥20", "yellow"),
    ProbabilityBin(0.05, "#ff8a3d", "#000000", "≥5", "orange"),
    ProbabilityBin(0.00, "#d32f2f", "#ffffff", "<5%", "red"),
)

CUT_STYLE = Style(dim=True, strike=True)
"""A candidate a knob removed: greyed and struck through, still legible."""


def bin_of(p: float) -> ProbabilityBin:
    """The colour bin of a probability."""
    for b in BINS:
        if p >= b.low:
            return b
    return BINS[-1]


def prob_style(p: float) -> Style:
    """Background and text colour for a token drawn with probability p."""
    return bin_of(p).style


def legend(title: str = "p ") -> Text:
    """A one-line key to the scale: 'p  ≥80  ≥50  ≥20  ≥5  <5% '."""
    text = Text(title, style="dim")
    for b in BINS:
        text.append(f" {b.label} ", style=b.style)
    return text


_EIGHTHS = " ▏▎▍▌▋▊▉"
GHOST_STYLE = Style(dim=True)
"""Where the model's own probability reached beyond the bar: a light shade in the text colour."""


def bar(p: float, width: int, ghost: float = 0.0) -> Text:
    """A horizontal bar of p (0..1) in `width` cells, in p's colour, with eighth-cell precision.

    `ghost` (another probability, e.g. the model's own before the knobs) is drawn as a
    light shade where it reaches beyond the solid bar, so a change is visible at a glance.
    """
    width = max(1, width)
    eighths = round(max(0.0, min(1.0, p)) * width * 8)
    full, part = divmod(eighths, 8)
    solid = "█" * full + (_EIGHTHS[part] if part and full < width else "")
    text = Text()
    text.append(solid, style=bin_of(p).bar_style)
    ghost_cells = round(max(0.0, min(1.0, ghost)) * width)
    if ghost_cells > len(solid):
        text.append("░" * (ghost_cells - len(solid)), style=GHOST_STYLE)
    text.pad_right(width - text.cell_len)
    return text
