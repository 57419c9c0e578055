"""The model a running scorer uses: `@champion` pinned by version, re-resolved in the background every
`scorer.model_refresh_seconds`, swapped between micro-batches after a contract check and a warm-up
prediction. The registry unreachable: the loaded model keeps scoring and the holder reports degraded."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np
import pandas as pd

from fraudctl.contracts import CHAMPION
from fraudctl.errors import ContractError, FraudctlError, NotFoundError, UnavailableError, WaitTimeoutError
from fraudctl.features import FEATURE_NAMES
from fraudctl.stream.refresh import Refresher

log = logging.getLogger("fraudctl.scorer")


@dataclass
class LoadedModel:
    name: str
    version: str
    estimator: Any
    threshold: float
    since: float = field(default_factory=time.time)  # when this scorer started using it

    def score(self, featured: pd.DataFrame) -> np.ndarray:
        if not len(featured):
            return np.zeros(0)
        return self.estimator.predict_proba(featured[FEATURE_NAMES])[:, 1]

    def warm_up(self) -> None:
        """One prediction before the swap, so a model that cannot score never reaches a batch."""
        row = pd.DataFrame([[0.0] * len(FEATURE_NAMES)], columns=FEATURE_NAMES)
        try:
            score = self.score(row)
        except Exception as exc:  # e.g. an estimator fitted on other columns: refused like a contract mismatch
            raise ContractError(f"model {self.name} version {self.version} cannot score a warm-up row: "
                                f"{type(exc).__name__}: {exc}") from exc
        if score.shape != (1,) or not np.isfinite(score).all():
            raise ContractError(f"model {self.name} version {self.version} gave {score!r} for a warm-up row")


class ModelSource(Protocol):
    def resolve(self, alias: str) -> str | None: ...
    def load(self, version: str) -> LoadedModel: ...


class ModelHolder(Refresher):
    source_name = "model registry"

    def __init__(self, source: ModelSource, *, refresh_seconds: float, alias: str = CHAMPION,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(refresh_seconds)
        self.source = source
        self.alias = alias
        self.clock = clock
        self.current: LoadedModel | None = None
        self.refused: dict[str, str] = {}  # version -> why it was not swapped in
        self._pending: LoadedModel | None = None
        self._pinned: dict[str, LoadedModel] = {}

    def start(self, *, wait_for_model: bool, timeout: float | None = None, poll: float = 2.0) -> LoadedModel:
        """Load the champion (or wait for one), then keep re-resolving it in a background thread."""
        deadline = None if timeout is None else self.clock() + timeout
        while True:
            try:
                version = self.source.resolve(self.alias)
            except UnavailableError:
                if not wait_for_model:
                    raise
                version = None
            if version is not None:
                self.current = self.source.load(version)
                self.current.warm_up()
                break
            if not wait_for_model:
                raise NotFoundError(f"no model has the alias @{self.alias}",
                                    hint="promote one (`fraudctl promote VERSION`), or start with --wait-for-model")
            if deadline is not None and self.clock() > deadline:
                raise WaitTimeoutError(f"no @{self.alias} model after {timeout:.0f}s")
            log.info("waiting for a model with the alias @%s", self.alias)
            if self._stop.wait(poll):
                raise WaitTimeoutError("stopped while waiting for a model")
        self._start_refreshing("model-refresh")
        return self.current

    def for_batch(self) -> LoadedModel:
        """The model for the next batch: a staged swap happens here, between batches."""
        with self._lock:
            if self._pending is not None:
                previous, self.current, self._pending = self.current, self._pending, None
                self.current.since = time.time()
                log.info("swapped model %s version %s -> %s", self.current.name,
                         previous.version if previous else None, self.current.version)
            return self.current

    def pinned(self, version: str) -> LoadedModel:
        """A given version (a re-run batch must score with what its first run used)."""
        if self.current is not None and self.current.version == version:
            return self.current
        if version not in self._pinned:
            self._pinned = {version: self.source.load(version)}
        return self._pinned[version]

    def check_now(self) -> None:
        """Re-resolve the alias once; stage a new version after its contract check and warm-up."""
        self.last_check = time.time()
        try:
            version = self.source.resolve(self.alias)
        except UnavailableError as exc:
            self._set_degraded(f"model registry unreachable: {exc.message}")
            return
        self._set_degraded(None)
        staged = self._pending.version if self._pending else None
        if version is None or version in (self.current.version, staged) or version in self.refused:
            return
        try:
            candidate = self.source.load(version)
            candidate.warm_up()
        except ContractError as exc:
            self.refused[version] = exc.message
            log.warning("refusing model version %s, keeping %s: %s", version, self.current.version, exc.message)
            return
        except UnavailableError as exc:
            self._set_degraded(f"model registry unreachable: {exc.message}")
            return
        except FraudctlError as exc:
            log.warning("could not load model version %s, keeping %s: %s", version, self.current.version, exc.message)
            return
        with self._lock:
            self._pending = candidate

    def describe(self) -> dict[str, Any]:
        current = self.current
        return {
            "name": current.name if current else None,
            "version": current.version if current else None,
            "threshold": current.threshold if current else None,
            "since": current.since if current else None,
            "staged": self._pending.version if self._pending else None,  # swapped in before the next batch
            "alias": self.alias,
            "last_check": self.last_check,
            "degraded": self.degraded,
            "refused": dict(self.refused),
        }
