"""The scorer's model holder: champion at start (or a clear error, or a bounded wait), staged swaps between
batches, refusal of models that break the contract, degraded while the registry is unreachable, pinned
versions for re-run batches. The registry is faked; the models are real (tiny scikit-learn ones)."""

from __future__ import annotations

import functools
import threading
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from fraudctl.errors import ContractError, NotFoundError, ServiceError, UnavailableError, WaitTimeoutError
from fraudctl.features import FEATURE_NAMES
from fraudctl.stream.model import LoadedModel, ModelHolder
from tests.conftest import wait_for

NAME = "fraud-detector"


@functools.cache
def tiny_model(seed: int, columns=tuple(FEATURE_NAMES)):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(60, len(columns))), columns=list(columns))
    y = (x.iloc[:, 0] + rng.normal(scale=0.5, size=60) > 0).astype(int)
    return LogisticRegression().fit(x, y)


class NaNModel:
    def predict_proba(self, x):
        return np.full((len(x), 2), np.nan)


class FakeRegistry:
    """A ModelSource: which version the alias names, what loading a version gives."""

    def __init__(self, champion: str | None = None):
        self.champion = champion
        self.down = False
        self.models = {"1": tiny_model(1), "2": tiny_model(2), "3": tiny_model(3)}
        self.failures: dict[str, Exception] = {}
        self.resolved = 0
        self.loaded: list[str] = []
        self.lock = threading.Lock()

    def resolve(self, alias: str) -> str | None:
        assert alias == "champion"
        with self.lock:
            self.resolved += 1
            if self.down:
                raise UnavailableError("cannot reach MLflow at http://127.0.0.1:5000")
            return self.champion

    def load(self, version: str) -> LoadedModel:
        with self.lock:
            self.loaded.append(version)
            if version in self.failures:
                raise self.failures[version]
            return LoadedModel(NAME, version, self.models[version], threshold=0.5)


@pytest.fixture
def holders():
    started = []

    def make(registry: FakeRegistry, refresh_seconds: float = 3600.0) -> ModelHolder:
        holder = ModelHolder(registry, refresh_seconds=refresh_seconds)
        started.append(holder)
        return holder

    yield make
    for holder in started:
        holder.stop()


def features(n: int = 5) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(0).normal(size=(n, len(FEATURE_NAMES))), columns=FEATURE_NAMES)


def test_no_champion_at_start_is_a_clear_error_at_once(holders):
    registry = FakeRegistry(champion=None)
    began = time.monotonic()
    with pytest.raises(NotFoundError, match="@champion") as caught:
        holders(registry).start(wait_for_model=False)
    assert time.monotonic() - began < 1.0 and registry.resolved == 1
    assert "--wait-for-model" in caught.value.hint


def test_an_unreachable_registry_at_start_is_an_error_without_waiting(holders):
    registry = FakeRegistry(champion="1")
    registry.down = True
    with pytest.raises(UnavailableError):
        holders(registry).start(wait_for_model=False)


def test_waiting_for_a_model_times_out(holders):
    registry = FakeRegistry(champion=None)
    began = time.monotonic()
    with pytest.raises(WaitTimeoutError, match="@champion"):
        holders(registry).start(wait_for_model=True, timeout=0.3, poll=0.05)
    assert 0.3 <= time.monotonic() - began < 2.0
    assert registry.resolved >= 3  # it kept asking


def test_waiting_for_a_model_ends_when_one_is_promoted(holders):
    registry = FakeRegistry(champion=None)
    registry.down = True  # an unreachable registry while waiting is waited out too
    holder = holders(registry)

    def promote_later():
        time.sleep(0.2)
        registry.down = False
        registry.champion = "2"

    threading.Thread(target=promote_later).start()
    model = holder.start(wait_for_model=True, timeout=10, poll=0.02)
    assert model.version == "2" and holder.for_batch() is model


def test_start_loads_the_champion_and_scores(holders):
    registry = FakeRegistry(champion="1")
    holder = holders(registry)
    model = holder.start(wait_for_model=False)
    assert (model.name, model.version, model.threshold) == (NAME, "1", 0.5)
    assert holder.for_batch() is model
    x = features()
    np.testing.assert_array_equal(model.score(x), registry.models["1"].predict_proba(x[FEATURE_NAMES])[:, 1])
    assert model.score(x.iloc[:0]).shape == (0,)
    # Columns are taken by name, in the contract's order.
    np.testing.assert_array_equal(model.score(x[FEATURE_NAMES[::-1]]), model.score(x))


def test_a_new_champion_is_staged_then_swapped_between_batches(holders):
    registry = FakeRegistry(champion="1")
    holder = holders(registry)
    first = holder.start(wait_for_model=False)
    holder.check_now()
    assert registry.loaded == ["1"]  # same version: nothing loaded again
    registry.champion = "2"
    holder.check_now()
    assert holder.current is first  # the running batch keeps its model
    assert holder.describe()["version"] == "1" and holder.describe()["staged"] == "2"  # what `scorer wait --champion` reads
    swapped = holder.for_batch()
    assert swapped.version == "2" and holder.current is swapped and swapped.since >= first.since
    assert holder.for_batch() is swapped
    holder.check_now()
    assert registry.loaded == ["1", "2"]
    assert holder.describe()["version"] == "2" and holder.describe()["staged"] is None
    # A rollback is a new swap too.
    registry.champion = "1"
    holder.check_now()
    assert holder.for_batch().version == "1"


@pytest.mark.parametrize("failure", [
    ContractError("model fraud-detector version 2 was trained on other features"),
    "nan",
    "other columns",
], ids=["contract check", "warm-up gives NaN", "estimator of other columns"])
def test_a_model_that_breaks_the_contract_is_refused_and_the_old_one_kept(holders, failure):
    registry = FakeRegistry(champion="1")
    if isinstance(failure, Exception):
        registry.failures["2"] = failure
    elif failure == "nan":
        registry.models["2"] = NaNModel()
    else:
        registry.models["2"] = tiny_model(2, columns=tuple(f"x{i}" for i in range(5)))
    holder = holders(registry)
    holder.start(wait_for_model=False)
    registry.champion = "2"
    holder.check_now()
    assert holder.for_batch().version == "1"
    assert set(holder.refused) == {"2"} and holder.refused["2"]
    assert holder.describe()["refused"] == holder.refused
    loads = len(registry.loaded)
    holder.check_now()  # not tried again every refresh
    assert len(registry.loaded) == loads and holder.for_batch().version == "1"
    # The next good version goes in.
    registry.champion = "3"
    holder.check_now()
    assert holder.for_batch().version == "3"


def test_a_champion_that_cannot_score_is_refused_at_start(holders):
    registry = FakeRegistry(champion="1")
    registry.models["1"] = NaNModel()
    with pytest.raises(ContractError, match="warm-up"):
        holders(registry).start(wait_for_model=False)


def test_an_unreachable_registry_degrades_and_scoring_goes_on(holders):
    registry = FakeRegistry(champion="1")
    holder = holders(registry)
    model = holder.start(wait_for_model=False)
    assert holder.degraded is None
    registry.down = True
    holder.check_now()
    assert holder.degraded and "unreachable" in holder.degraded
    assert holder.describe()["degraded"] == holder.degraded
    assert holder.for_batch() is model
    assert model.score(features()).shape == (5,)
    registry.down = False
    holder.check_now()
    assert holder.degraded is None


def test_loading_through_an_unreachable_store_degrades_and_is_retried(holders):
    registry = FakeRegistry(champion="1")
    holder = holders(registry)
    holder.start(wait_for_model=False)
    registry.champion = "2"
    registry.failures["2"] = UnavailableError("artifact store down")
    holder.check_now()
    assert holder.degraded and holder.for_batch().version == "1" and "2" not in holder.refused
    del registry.failures["2"]
    holder.check_now()
    assert holder.degraded is None and holder.for_batch().version == "2"


def test_another_registry_error_keeps_the_model_without_refusing_for_good(holders):
    registry = FakeRegistry(champion="1")
    holder = holders(registry)
    holder.start(wait_for_model=False)
    registry.champion = "2"
    registry.failures["2"] = ServiceError("MLflow answered 500")
    holder.check_now()
    assert holder.for_batch().version == "1" and not holder.refused
    del registry.failures["2"]
    holder.check_now()
    assert holder.for_batch().version == "2"


def test_pinned_loads_the_version_a_batch_first_ran_with(holders):
    registry = FakeRegistry(champion="2")
    holder = holders(registry)
    current = holder.start(wait_for_model=False)
    assert holder.pinned("2") is current
    old = holder.pinned("1")
    assert old.version == "1" and holder.current is current  # pinning does not swap
    assert holder.pinned("1") is old and registry.loaded == ["2", "1"]  # loaded once


def test_the_background_refresh_swaps_without_being_asked(holders):
    registry = FakeRegistry(champion="1")
    holder = holders(registry, refresh_seconds=0.02)
    holder.start(wait_for_model=False)
    registry.champion = "3"
    wait_for(lambda: holder.for_batch().version == "3", 5, "the refresher to stage version 3", every=0.01)
    assert holder.last_check is not None
    holder.stop()
