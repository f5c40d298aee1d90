"""Concurrent one-sample calls gathered into one scoring call: verl's reward manager calls a custom reward
function once per rollout, from a thread pool; here the calls that arrive together become one
`source.score(...)`, so a prompt's rollouts share its forward (or ride in one HTTP request) and the
model is used by one thread at a time.

    gather = Coalescer(source, window_s=0.005)
    reward, failure = gather.score(Sample(prompt, reply))     # from any thread

The first caller with nothing running becomes the leader: it waits `window_s` for the others, takes up to
`max_batch` waiting samples, scores them, hands every caller its result and lets the next leader go.
An exception in the scoring call reaches every caller of that batch.
"""
from __future__ import annotations

import threading
import time
from typing import Any

from rmkit.integrations.rewards import RewardSource, Sample


class _Slot:
    __slots__ = ("sample", "result", "error", "done")

    def __init__(self, sample: Sample):
        self.sample, self.result, self.error, self.done = sample, None, None, False


class Coalescer:
    def __init__(self, source: RewardSource, *, window_s: float = 0.005, max_batch: int = 256):
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s must be >= 0 and max_batch >= 1")
        self.source, self.window_s, self.max_batch = source, window_s, max_batch
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._leading = False
        self.calls = 0
        """Scoring calls made (fewer than samples when calls were gathered)."""

    def score(self, sample: Sample) -> tuple[float, str | None]:
        """(raw reward, None) or (NaN, why it could not be scored)."""
        slot = _Slot(sample)
        with self._cond:
            self._pending.append(slot)
            while not slot.done:
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                self._cond.release()
                try:
                    self._lead()
                finally:
                    self._cond.acquire()
                    self._leading = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _lead(self) -> None:
        if self.window_s:
            time.sleep(self.window_s)  # the step's other calls arrive meanwhile
        with self._cond:
            batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
        try:
            self.calls += 1
            scored = self.source.score([s.sample for s in batch])
            for k, s in enumerate(batch):
                s.result = (scored.rewards[k], scored.failures.get(k))
        except BaseException as e:  # noqa: BLE001 - handed to every caller of the batch
            for s in batch:
                s.error = e
        with self._cond:
            for s in batch:
                s.done = True

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a Coalescer holds threads' state; build one per process")
