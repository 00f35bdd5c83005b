"""The legs' stride rhythm (stage 2's walking test): its false-alarm chance holds on jitter alone, it finds a
rhythm a few times the jitter, and it reads the stride period. Pure numpy, no video."""
import numpy as np
import pytest

from igait_pipeline.stages.tracking import WALKER, stride_rhythm


def _found(r) -> bool:
    return r.false_alarm <= WALKER.max_false_alarm and r.snr >= WALKER.min_rhythm_snr and r.cycles >= WALKER.min_cycles


@pytest.mark.parametrize("hz,seconds", [(6, 3), (6, 5), (12, 3), (6, 15)])
def test_jitter_alone_is_rarely_a_rhythm(hz, seconds):
    """White jitter on a drifting offset: the stated false-alarm chance (1 %) holds, within sampling error."""
    rng = np.random.default_rng(hz * 100 + seconds)
    t = np.arange(0, seconds, 1 / hz)
    hits = [_found(stride_rhythm(t, rng.normal(0, 1, len(t)) + 0.3 * t, "x", WALKER, tests=4)) for _ in range(600)]
    assert np.mean(hits) <= 0.025


@pytest.mark.parametrize("hz,seconds,snr,rate", [(6, 5, 2.0, 0.97), (12, 3, 1.5, 0.9), (6, 15, 1.5, 0.97)])
def test_a_stride_rhythm_a_little_above_the_jitter_is_found(hz, seconds, snr, rate):
    """Sinusoids of random phase and stride period 0.7–1.4 s (a child at 170 to an adult at 86 steps/min)."""
    rng = np.random.default_rng(int(hz * seconds * snr))
    t = np.arange(0, seconds, 1 / hz)
    found, errors = [], []
    for _ in range(300):
        period = rng.uniform(0.7, 1.4)
        y = snr * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 1, len(t))
        r = stride_rhythm(t, y, "x", WALKER, tests=4)
        found.append(_found(r))
        if _found(r):
            errors.append(abs(r.period_s / period - 1))
    assert np.mean(found) >= rate
    assert np.median(errors) < 0.05  # the frequency grid is 1/(4·window): ±4 % at 1 Hz over 3 s


def test_the_issue_front_view_offsets_are_a_rhythm():
    """The issue's real front view: the vertical ankle offset swings between −0.05 and +0.07 body heights with a
    stride near 1.3 s over 4.7 s (the old fixed 0.04 hysteresis counted one alternation). Sampled at 6 Hz with
    jitter of 0.015 body heights, unevenly (missed detections)."""
    rng = np.random.default_rng(16)
    t = np.sort(rng.choice(np.arange(0, 4.7, 1 / 6), size=24, replace=False))
    y = 0.01 + 0.06 * np.sin(2 * np.pi * t / 1.3) + rng.normal(0, 0.015, len(t))
    r = stride_rhythm(t, y, "ankle_y", WALKER, tests=4)
    assert _found(r) and abs(r.period_s - 1.3) < 0.1 and r.snr > 2
