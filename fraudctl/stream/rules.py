"""The rules a running scorer applies: the store's set, re-read when its version moves (asked every
`scorer.rules_refresh_seconds` in a background thread), swapped between micro-batches, pinned by version for a
re-run batch. Pauses of rules over their cap are written to the store from the same thread (retried until
the store takes them). The store unreachable: the set in hand keeps applying and the holder says degraded.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from fraudctl.errors import FraudctlError
from fraudctl.rules.ruleset import ACTIVE, SHADOW, CompiledRules, RuleSet
from fraudctl.stream.refresh import Refresher

log = logging.getLogger("fraudctl.scorer")


class RuleSource(Protocol):
    def version(self) -> int: ...
    def current(self) -> RuleSet: ...
    def at(self, version: int) -> RuleSet: ...
    def pause(self, name: str, reason: str, *, rule_version: int) -> list: ...


class RulesHolder(Refresher):
    source_name = "rule store"

    def __init__(self, source: RuleSource, *, refresh_seconds: float = 1.0):
        super().__init__(refresh_seconds)
        self.source = source
        self.current = CompiledRules(RuleSet(0))
        self.paused: dict[str, str] = {}  # rule name -> why the scorer paused it
        self._pending: CompiledRules | None = None
        self._pinned: dict[int, CompiledRules] = {}
        self._pauses: list[tuple[str, str, int]] = []

    def start(self) -> None:
        """Read the set once, then keep asking for its version in the background."""
        self.check_now()
        self.for_batch()
        self._start_refreshing("rules-refresh")

    def for_batch(self) -> CompiledRules:
        with self._lock:
            if self._pending is not None:
                previous, self.current, self._pending = self.current.version, self._pending, None
                live = {rule.name for rule, _ in self.current.rules if rule.mode == ACTIVE}
                self.paused = {name: why for name, why in self.paused.items() if name not in live}  # re-enabled
                log.info("rule set version %s -> %s (%d live rules)", previous, self.current.version, len(self.current))
            return self.current

    def pinned(self, version: int | None) -> CompiledRules:
        """The set of a given version (what a re-run batch's first run used)."""
        if version is None or version == self.current.version:
            return self.current if version is not None else CompiledRules(RuleSet(0))
        if version not in self._pinned:
            self._pinned = {version: CompiledRules(self.source.at(version))}  # unreachable: the batch fails, re-runs
        return self._pinned[version]

    def report_over_cap(self, rules: CompiledRules, over_cap: dict[str, str]) -> None:
        """Rules a batch found over their cap: paused in the store by the background thread."""
        versions = {rule.name: rule.version for rule, _ in rules.rules}
        with self._lock:
            for name, reason in over_cap.items():
                if name not in self.paused:
                    log.warning("rule %s is %s: pausing it", name, reason)
                self.paused[name] = reason
                self._pauses.append((name, reason, versions[name]))

    def check_now(self) -> None:
        self.last_check = time.time()
        try:
            self._write_pauses()
            version = self.source.version()
            staged = self._pending.version if self._pending is not None else self.current.version
            if version != staged:
                self._pending_set(CompiledRules(self.source.current()))
            self._set_degraded(None)
        except FraudctlError as exc:
            self._set_degraded(f"rule store unreachable: {exc.message}")

    def _pending_set(self, rules: CompiledRules) -> None:
        with self._lock:
            self._pending = rules

    def _write_pauses(self) -> None:
        while self._pauses:
            name, reason, version = self._pauses[0]
            self.source.pause(name, reason, rule_version=version)
            with self._lock:
                self._pauses.pop(0)

    def describe(self) -> dict[str, Any]:
        """The newest set read (what the next batch applies; with no input no batch runs to swap it in), the
        version the last batch used, and the rules this scorer paused."""
        with self._lock:
            newest = self._pending if self._pending is not None else self.current  # an empty set is falsy
        rules = [rule for rule, _ in newest.rules]
        return {
            "version": newest.version,
            "last_batch_version": self.current.version,
            "active": sorted(r.name for r in rules if r.mode == ACTIVE),
            "shadow": sorted(r.name for r in rules if r.mode == SHADOW),
            "paused": dict(self.paused),
            "last_check": self.last_check,
            "degraded": self.degraded,
        }
