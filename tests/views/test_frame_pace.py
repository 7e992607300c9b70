"""How far apart a stream's frames come: POST_EVERY while drawing is cheap, further where it costs the UI thread more
than its budget of a core, never further than LONGEST_GAP."""

from __future__ import annotations

import pytest

from llmtui.app.panes.generate.runner import LONGEST_GAP, POST_EVERY, UI_BUDGET, FramePace


def frames(pace: FramePace, costs: list[float], start: float = 10.0) -> list[float]:
    """Draw frames that each cost the UI thread `cost` seconds of CPU; the gap after each."""
    cpu, gaps = start, []
    pace.drawn(cpu)
    for cost in costs:
        cpu += cost
        pace.drawn(cpu)
        gaps.append(pace.gap)
    return gaps


def test_cheap_frames_come_every_post_every():
    assert frames(FramePace(), [0.002] * 5) == [POST_EVERY] * 5


def test_a_costly_frame_spaces_the_next_ones_to_keep_within_the_budget():
    cost = 0.012  # 12 ms a frame: at 10 a second, 12% of a core
    gaps = frames(FramePace(), [cost] * 5)
    assert gaps[-1] == pytest.approx(cost / UI_BUDGET)
    assert POST_EVERY < gaps[-1] < LONGEST_GAP


def test_the_gap_is_never_longer_than_the_longest():
    assert frames(FramePace(), [0.5] * 3) == [LONGEST_GAP] * 3


def test_frames_speed_up_again_when_drawing_gets_cheap():
    gaps = frames(FramePace(), [0.015] * 3 + [0.001] * 6)
    assert gaps[2] > POST_EVERY
    assert gaps[-1] == POST_EVERY


def test_what_came_before_the_first_frame_does_not_count():
    """The run's start (its message, the footer's keys) costs the UI thread before the first frame."""
    pace = FramePace()
    pace.drawn(5.0)  # 5 s of CPU before the stream: not a frame's cost
    assert pace.gap == POST_EVERY
    pace.drawn(5.001)
    assert pace.gap == POST_EVERY
