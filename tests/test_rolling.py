"""The console's rolling figures (ussd/rolling.py): rates from cumulative counters at injected
times, latency tallies taken per interval, and a ring that never grows past its length."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ussd.events import DialogStarted, Screen, ScreenShown
from ussd.metrics import Metrics
from ussd.rolling import BindCounts, Counters, Rolling, Tally, totals


class Gateway:
    """Counters a test sets by hand."""

    def __init__(self) -> None:
        self.now = Counters()
        self.binds: list[BindCounts] = []

    def __call__(self) -> Counters:
        return self.now


def rolling(counters: Gateway, smpp: Tally | None = None, history: int = 600) -> Rolling:
    return Rolling(counters, lambda: counters.binds, smpp or Tally(), Tally(), history=history)


def test_tally_takes_count_mean_and_peak_then_starts_again() -> None:
    tally = Tally()
    assert tally.take() == (0, 0.0, 0.0)
    for seconds in (0.002, 0.004, 0.003):
        tally.add(seconds)
    count, mean, peak = tally.take()
    assert (count, round(mean, 6), peak) == (3, 0.003, 0.004)
    assert tally.take() == (0, 0.0, 0.0)


def test_rates_per_second_over_the_interval() -> None:
    counters = Gateway()
    smpp = Tally()
    r = rolling(counters, smpp)
    assert r.sample(100.0) is None  # nothing to compare with yet
    counters.now = Counters(steps=6, pdus=30, dialogs=2, app_seconds=0.5, app_answers=2)
    counters.binds = [BindCounts(1, 10, 10), BindCounts(2, 5, 5)]
    smpp.add(0.001)
    smpp.add(0.003)
    sample = r.sample(102.0)
    assert sample is not None
    assert (sample.steps, sample.pdus, sample.dialogs) == (3.0, 15.0, 2)
    assert (sample.smpp_count, sample.smpp_mean_ms, sample.smpp_max_ms) == (2, 2.0, 3.0)
    assert sample.http_count == 0
    assert (sample.app_count, sample.app_mean_ms) == (2, 250.0)
    # Binds new in the interval count from zero; a closed bind drops out.
    assert (r.rate(1), r.rate(2), r.rate(3)) == (10.0, 5.0, 0.0)
    counters.binds = [BindCounts(2, 9, 9)]
    r.sample(103.0)
    assert (r.rate(1), r.rate(2)) == (0.0, 8.0)
    assert [s.at for s in r.since(102.5)] == [103.0]


def test_a_clock_that_stands_still_or_goes_back_adds_no_sample() -> None:
    counters = Gateway()
    r = rolling(counters)
    r.sample(10.0)
    assert r.sample(10.0) is None and r.sample(9.0) is None
    assert list(r.samples) == []


def test_counters_come_from_the_gateway_metrics() -> None:
    m = Metrics()
    m.smpp_pdu("submit_sm")
    m.smpp_pdu("submit_sm_resp", "ESME_RINVDSTADR")
    m.on_event(DialogStarted("7916", "s1", "menu", "111"))
    m.on_event(ScreenShown("7916", Screen("s1", "Menu", end=False)))
    m.on_event(ScreenShown("7916", Screen("s1", "Bye", end=True)))
    names = ("ussd_screens_total", "ussd_smpp_pdus_total", "ussd_dialogs_open", "nothing")
    assert totals(m.registry, names) == {
        "ussd_screens_total": 2.0,
        "ussd_smpp_pdus_total": 2.0,
        "ussd_dialogs_open": 1.0,
        "nothing": 0.0,
    }


@given(
    st.lists(
        st.tuples(st.floats(0.001, 100), st.integers(0, 1000), st.integers(0, 1000)),
        max_size=60,
    ),
    st.integers(1, 20),
)
def test_the_ring_is_bounded_and_rates_never_negative(
    steps: list[tuple[float, int, int]], history: int
) -> None:
    counters = Gateway()
    r = rolling(counters, history=history)
    now = 0.0
    r.sample(now)
    for gap, steps_total, pdus_total in steps:
        now += gap
        counters.now = Counters(steps_total, pdus_total)  # counters may even "reset"
        r.sample(now)
        assert len(r.samples) <= history
        assert all(s.steps >= 0 and s.pdus >= 0 and s.app_mean_ms >= 0 for s in r.samples)
    assert [s.at for s in r.samples] == sorted(s.at for s in r.samples)
