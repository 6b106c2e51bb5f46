"""A stop that hangs does not keep a bot process alive (bot/supervise.py ``exit_on_signals``):
a `golive work` child once outlived its stopped parent by 38 minutes, every thread waiting,
deaf to a second SIGTERM."""

from __future__ import annotations

import signal
import threading

from bot.supervise import exit_on_signals


class Timers:
    """The timers the handler arms, fired by hand (no waiting on real time)."""

    def __init__(self) -> None:
        self.armed: list[tuple[float, object]] = []

    def __call__(self, seconds: float, fn):
        self.armed.append((seconds, fn))
        return threading.Timer(3600, lambda: None)  # started, never fires within the test


def test_the_first_signal_asks_for_a_stop_and_a_hung_stop_ends_at_the_grace() -> None:
    stop, exits, timers = threading.Event(), [], Timers()
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        handler = exit_on_signals(stop, grace_s=20, exit=exits.append, timer=timers)
        assert signal.getsignal(signal.SIGTERM) is handler
        handler(signal.SIGTERM, None)
        assert stop.is_set() and exits == [], "first: a clean stop is asked for"
        [(seconds, fire)] = timers.armed
        assert seconds == 20
        fire()  # the stop hung past its grace
        assert exits == [128 + signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])


def test_a_second_signal_exits_at_once() -> None:
    stop, exits, timers = threading.Event(), [], Timers()
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        handler = exit_on_signals(stop, exit=exits.append, timer=timers)
        handler(signal.SIGTERM, None)
        handler(signal.SIGINT, None)
        assert exits == [128 + signal.SIGINT], "the second signal is not ignored"
    finally:
        signal.signal(signal.SIGTERM, before[0])
        signal.signal(signal.SIGINT, before[1])
