"""A clock for the wait loops that moves only when slept on, so waits run instantly in tests."""

from __future__ import annotations


class FakeClock:
    def __init__(self, start: float = 0.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
