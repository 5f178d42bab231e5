"""A dependency-free progress bar for long runs (stderr, at most ~5 updates per second)."""
from __future__ import annotations

import sys
import time


class Progress:
    """Text progress bar: ``[####....] it/total  rate  ETA  key=value ...``."""

    def __init__(self, total, enabled=None, start=0, width=28, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.total, self.width = total, width
        self.t0 = time.perf_counter()
        self.start = start
        self.last = 0.0

    def update(self, done, **fields):
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.last < 0.2 and done < self.total:
            return
        self.last = now
        frac = done / self.total
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        bar = "#" * int(frac * self.width) + "." * (self.width - int(frac * self.width))
        info = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
        self.stream.write(f"\r[{bar}] {done}/{self.total} {rate:.1f} it/s ETA {eta:.0f}s {info}   ")
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
