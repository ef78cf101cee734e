"""The live line on a terminal: phase, elapsed/total, current rate. Nothing when stderr is
not a terminal or --quiet; then only one line per run start (unless quiet)."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = (not quiet) and sys.stderr.isatty()
        self._last = 0.0
        self._shown = False

    def note(self, text: str) -> None:
        """A line that stays (a run starting, a system skipped)."""
        if self.quiet:
            return
        self.clear()
        print(f"ringmta-bench: {text}", file=sys.stderr, flush=True)

    def update(self, phase: str, elapsed: float, total: float | None, rate: float | None,
               what: str = "msg/s") -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last < 0.25:
            return
        self._last = now
        tot = f"/{total:.0f}s" if total else "s"
        r = f"  {rate:,.0f} {what}" if rate is not None else ""
        sys.stderr.write(f"\r\033[K  {phase}  {elapsed:5.1f}{tot}{r}")
        sys.stderr.flush()
        self._shown = True

    def clear(self) -> None:
        if self.tty and self._shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._shown = False
