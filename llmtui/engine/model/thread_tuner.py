"""How the next token is decoded: on how many threads, and whether they spin or sleep while they wait.

Chosen at run time, by timing the steps themselves. A decoding step is about a hundred
small parallel parts a token, the threads meeting after each (decode_step.cpp). On an
idle machine every thread has a core: two threads decode ~1.5x faster than one, and a
thread that spins while it waits for its partner beats one that sleeps (a meeting every
~50 microseconds; a wake-up costs about as much). Once another process wants a core,
a spinning thread takes the core its partner waits for, and even sleeping threads hold
each other up: one thread decodes faster (benchmarks/busy_machine.py). Which case holds
changes while the app runs (a test suite starts beside it), so the decoder measures
instead of guessing: every so often it times a few steps with a neighbouring setting
(`settings_for`: spinning, sleeping, one thread fewer ...) and keeps whichever was faster.
No setting changes a number (every row and head is computed by the same code, whoever
runs it), only the speed.

Probes cost the slower setting's time, so they grow rare while the choice holds (8, 16,
32 ... 512 steps apart); a probe whose first step is clearly slower ends there; and a
few steps in a row much slower than the ones before (the machine changed; one slow step is
only the app drawing) bring the next probe near.

    >>> tuner = ThreadTuner(most=2)
    >>> tuner.setting()
    Setting(threads=2, spin_us=50)
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import NamedTuple

SPIN_US = 50  # how long a waiting thread spins before it sleeps (a step's meetings are ~50 us apart)
FIRST_GAP = 8  # steps before the first probe, and after a change
LONGEST_GAP = 512  # probes that keep losing space out to this
PROBE_STEPS = 3  # steps timed with the other setting
WINDOW = 8  # recent steps with the current setting: the probe's yardstick
BETTER = 0.95  # the other setting must be this much faster (a margin against noise)
WORSE = 1.15  # a probe's first step this much slower ends the probe at once
JUMP = 1.5  # steps this much slower than the recent ones: something changed, probe soon
JUMP_STEPS = 3  # ... this many in a row (one slow step is a burst of other work, the app's redraw)


class Setting(NamedTuple):
    threads: int
    spin_us: int  # 0: a waiting thread sleeps at once


def settings_for(most: int) -> list[Setting]:
    """From the fastest on an idle machine to the most modest: each thread count spinning, then sleeping."""
    out = []
    for n in range(max(1, most), 0, -1):
        out += [Setting(n, SPIN_US), Setting(n, 0)] if n > 1 else [Setting(1, 0)]  # one thread never waits
    return out


class ThreadTuner:
    """Picks the setting of each decoding step among `settings_for(most)`, from the steps' timings."""

    def __init__(self, most: int) -> None:
        self.most = max(1, most)
        self.settings = settings_for(self.most)
        self._at = 0  # index of the current setting
        self.switches = 0  # times the current setting changed (for benchmarks and tests)
        self._recent: deque[float] = deque(maxlen=WINDOW)  # seconds per step with the current setting
        self._gap = FIRST_GAP
        self._until_probe = FIRST_GAP
        self._probe: int | None = None  # index of the setting being tried, during a probe
        self._probe_times: list[float] = []
        self._slow = 0  # steps in a row much slower than the recent ones
        self._toward = 1  # which neighbour of the current setting the next probe tries: +1 the more modest one

    @property
    def current(self) -> Setting:
        """The setting decoding uses between probes."""
        return self.settings[self._at]

    def setting(self) -> Setting:
        """The setting for the next step."""
        return self.settings[self._probe if self._probe is not None else self._at]

    def record(self, used: Setting, seconds: float) -> None:
        """A step took `seconds` with `used` (the setting `setting()` gave for it)."""
        if self._probe is not None:
            if used == self.settings[self._probe]:
                self._probe_times.append(seconds)
                if len(self._probe_times) >= PROBE_STEPS or seconds > WORSE * statistics.median(self._recent):
                    self._settle()
            return
        if used != self.current:
            return
        self._slow = self._slow + 1 if len(self._recent) == WINDOW and seconds > JUMP * statistics.median(self._recent) else 0
        if self._slow:
            if self._slow < JUMP_STEPS:
                return  # not counted: a burst of other work should not move the yardstick
            self._recent.clear()  # the old timings no longer describe the machine
            self._slow = 0
            self._gap = FIRST_GAP
            self._until_probe = PROBE_STEPS
        self._recent.append(seconds)
        self._until_probe -= 1
        if self._until_probe <= 0 and len(self._recent) >= PROBE_STEPS:
            self._start_probe()

    def _start_probe(self) -> None:
        options = [i for i in (self._at + self._toward, self._at - self._toward) if 0 <= i < len(self.settings)]
        self._toward = -self._toward  # the probe after a losing one tries the other neighbour
        if not options:  # one setting only (one thread): nothing to choose
            self._until_probe = LONGEST_GAP
            return
        self._probe, self._probe_times = options[0], []

    def _settle(self) -> None:
        assert self._probe is not None
        if statistics.median(self._probe_times) < BETTER * statistics.median(self._recent):
            self._toward = self._probe - self._at  # a move that paid: the next probe goes on that way
            self._at = self._probe
            self.switches += 1
            self._recent = deque(self._probe_times, maxlen=WINDOW)
            self._gap = FIRST_GAP
        else:
            self._gap = min(2 * self._gap, LONGEST_GAP)
        self._until_probe = self._gap
        self._probe, self._probe_times = None, []
