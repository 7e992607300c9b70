"""The decoder's run-time choice of threads and waiting (thread_tuner.py), on made-up step timings, and in a real
model: the choice never changes a number and leaves torch's thread count as it found it."""

from __future__ import annotations

import pytest
import torch

from llmtui.engine.model.thread_tuner import FIRST_GAP, LONGEST_GAP, Setting, ThreadTuner, settings_for


def run(tuner: ThreadTuner, cost, steps: int) -> list[Setting]:
    """Decode `steps` steps whose time is cost(setting); the settings used, in order."""
    used = []
    for _ in range(steps):
        setting = tuner.setting()
        tuner.record(setting, cost(setting))
        used.append(setting)
    return used


IDLE = {Setting(2, 50): 6.5, Setting(2, 0): 9.0, Setting(1, 0): 11.5}  # ms a step (busy_machine.py, no neighbour)
BUSY = {Setting(2, 50): 19.6, Setting(2, 0): 12.1, Setting(1, 0): 11.3}  # one busy neighbour


def test_settings_go_from_spinning_on_every_thread_to_one_thread():
    assert settings_for(2) == [Setting(2, 50), Setting(2, 0), Setting(1, 0)]
    assert settings_for(1) == [Setting(1, 0)]
    assert [s.threads for s in settings_for(4)] == [4, 4, 3, 3, 2, 2, 1]


def test_an_idle_machine_keeps_spinning_on_every_thread_and_probes_ever_more_rarely():
    tuner = ThreadTuner(2)
    used = run(tuner, IDLE.get, 2000)
    assert tuner.current == Setting(2, 50) and tuner.switches == 0
    probing = [i for i, s in enumerate(used) if s != Setting(2, 50)]
    assert len(probing) <= 9  # each losing probe ends after its first step, the gaps double up to 512
    assert probing[0] == FIRST_GAP and probing[-1] - probing[-2] > LONGEST_GAP


def test_a_busy_machine_moves_to_the_fastest_setting_and_stays():
    tuner = ThreadTuner(2)
    used = run(tuner, BUSY.get, 200)
    assert tuner.current == Setting(1, 0)
    settled = used.index(Setting(1, 0))
    assert settled < 40
    assert used[100:].count(Setting(1, 0)) >= 90  # the probes back are rare and short


def test_a_machine_that_gets_busy_mid_generation_is_noticed_soon():
    tuner = ThreadTuner(2)
    run(tuner, IDLE.get, 3000)  # the probes are 512 steps apart by now
    used = run(tuner, BUSY.get, 60)  # a test suite starts beside the app: a step takes 3x longer
    assert tuner.current == Setting(1, 0)
    assert used.index(Setting(1, 0)) < 25


def test_one_thread_has_nothing_to_choose():
    tuner = ThreadTuner(1)
    assert set(run(tuner, lambda s: 10.0, 100)) == {Setting(1, 0)}


def test_noise_within_the_margin_changes_nothing():
    """Two settings a few percent apart (timing noise): the tuner keeps the one it has."""
    tuner = ThreadTuner(2)
    run(tuner, {Setting(2, 50): 10.0, Setting(2, 0): 9.7, Setting(1, 0): 20.0}.get, 500)
    assert tuner.switches == 0


@pytest.mark.default_model
def test_the_tuned_steps_give_the_same_numbers_and_leave_torch_s_threads_alone(default_lm, monkeypatch):
    """Every setting a probe may try gives the very same logits (each row and head computed by the same code),
    and torch's thread count is as the caller set it after each step."""
    from llmtui.engine.kernels import native
    from llmtui.engine.model import decode_step, packed

    if native.find_compiler() is None:
        pytest.skip("no C++ compiler on this machine: no fused step to tune (the torch path is tested elsewhere)")
    assert packed.KERNELS.wait().name == "native"  # built in the background: a fresh checkout builds it now
    monkeypatch.setattr(decode_step, "ADAPTIVE", True)
    model = default_lm.model
    prompt = torch.tensor([default_lm.encode("The capital of France is")])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        logits = {}
        for setting in settings_for(2):
            with torch.inference_mode():
                cache = model.new_cache(initial=16)
                model(prompt, cache, last_only=True)
                decoder = decode_step.fused_decoder(model, cache)
                assert decoder is not None
                monkeypatch.setattr(decoder.tuner, "setting", lambda setting=setting: setting)
                out = [model(torch.tensor([[token]]), cache, last_only=True).logits for token in (9, 10, 11)]
                assert torch.get_num_threads() == 2
            logits[setting] = torch.cat(out)
        first = logits[Setting(2, 50)]
        assert all(torch.equal(first, other) for other in logits.values())
    finally:
        torch.set_num_threads(before)


def test_a_single_slow_step_is_a_burst_of_other_work_not_a_busy_machine():
    """The app draws now and then: one step in a while takes twice as long. That brings no probe."""
    tuner = ThreadTuner(2)
    run(tuner, IDLE.get, 3000)
    steps = iter(range(10**6))
    used = run(tuner, lambda s: 2 * IDLE[s] if next(steps) % 10 == 0 else IDLE[s], 400)
    assert used.count(Setting(2, 50)) >= 398
