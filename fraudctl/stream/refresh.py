"""What the scorer's holders of outside state (the model, the rule set) share: a daemon thread that asks the
source again every `refresh_seconds` (`check_now`, which stages what changed for the next micro-batch), and
`degraded`, why the source could not be asked, logged once when it changes."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("fraudctl.scorer")


class Refresher:
    source_name = "source"  # e.g. "model registry": "... reachable again" in the log

    def __init__(self, refresh_seconds: float):
        self.refresh_seconds = refresh_seconds
        self.degraded: str | None = None
        self.last_check: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_now(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()

    def _start_refreshing(self, thread_name: str) -> None:
        self._thread = threading.Thread(target=self._refresh_loop, name=thread_name, daemon=True)
        self._thread.start()

    def _set_degraded(self, reason: str | None) -> None:
        if reason != self.degraded:
            (log.warning if reason else log.info)("%s", reason or f"{self.source_name} reachable again")
        self.degraded = reason

    def _refresh_loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.check_now()
            except Exception:  # never let the refresher die: the next round tries again
                log.exception("%s refresh failed", self.source_name)
