"""The thin MLflow client: find, describe, list and load model versions, resolve and move aliases.

Nothing here decides anything: the training report (`report`), the feature-contract rules (`contract`), the
promotion gate (`gate`) and promote/rollback (`lifecycle`) are built on it. The streaming scorer needs only
this module: `alias_version("champion")`, `load(version)` (model, threshold, feature spec, contract check
on what was loaded), or `check_contract(version)` without downloading the model.

Models are saved with skops (no pickle) and loaded here with OUR allow-list of types (`TRUSTED_TYPES`),
not the list the model's own MLmodel file declares, which a crafted model could widen.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from fraudctl.errors import FraudctlError, NotFoundError, ServiceError
from fraudctl.features import FeatureSpec
from fraudctl.model.registry.rest import (  # noqa: F401 (CHAMPION ... TAG: names of this module too)
    CHALLENGER, CHAMPION, NO_SUCH_THING, PROBE_TIMEOUT, TAG, describe, ping, unreachable, version_url,
)
from fraudctl.model.registry.contract import (
    THRESHOLD_METADATA, ContractMismatchError, UntrustedModelError, check_model_contract, recorded_feature_spec,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from fraudctl.config import Config

MODEL_ARTIFACT = "model"
HOLDOUT_DIR = "holdout"
HOLDOUT_FILE = "holdout.parquet"
# skops refuses any type not listed when loading. Gradient boosting and random forest hold sklearn's tree
# structure; logistic regression needs nothing beyond skops' defaults. LightGBM's classifier holds its Booster,
# which skops rebuilds from LightGBM's own text model format (no pickle), and an OrderedDict of its parameters.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree", "lightgbm.sklearn.LGBMClassifier", "lightgbm.basic.Booster",
                 "collections.OrderedDict")
UNREACHABLE_WORDS = ("Max retries", "Connection", "timed out", "API request")


# ------------------------------------------------------------------------------------------- helpers


def _configure_http(config: "Config") -> None:
    # MLflow reads these on every request; its defaults (7 retries, 120 s timeout) make an unreachable
    # server look like a hang.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(config.mlflow.request_max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(max(1, config.mlflow.request_timeout)))
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    # fraudctl prints its own links to the run and the version, in its own output format.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    # Artifacts come through the tracking server (proxied). MLflow 3 otherwise downloads them from presigned
    # URLs of the store as the server names it, which the client may not reach: under compose that is
    # http://objectstore:9000, an address only containers resolve.
    os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD"] = "false"


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """MLflow's INFO chatter ("Registered model ... already exists", "Created version") and its stdout
    prints would mix into fraudctl's output (and break `--output json`): send stdout to stderr and
    raise MLflow's log level while we call it."""
    import logging

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


_unreachable = unreachable


@contextlib.contextmanager
def mlflow_errors(what: str, uri: str) -> Iterator[None]:
    """Turn MLflow and HTTP failures into FraudctlErrors with the operator's words: not found (9),
    unreachable (8), or an error MLflow answered with (13)."""
    from mlflow.exceptions import MlflowException, RestException

    try:
        yield
    except FraudctlError:
        raise
    except RestException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"{what}: {exc.message}") from None
        raise ServiceError(f"{what}: MLflow said {exc.error_code}: {exc.message}") from None
    except MlflowException as exc:
        text = str(exc)
        if "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower():
            raise NotFoundError(f"{what}: {text}") from None
        if any(word in text for word in UNREACHABLE_WORDS):
            raise _unreachable(what, uri, text.splitlines()[0]) from None
        raise ServiceError(f"{what}: {text}") from None
    except OSError as exc:  # requests' ConnectionError is an OSError
        raise _unreachable(what, uri, str(exc)) from None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass
class LoadedModel:
    """A version as the scorer holds it: the fitted estimator and what its MLmodel file records."""

    name: str
    version: str
    model: Any  # the scikit-learn estimator (predict_proba over FEATURE_NAMES)
    mlmodel: Any  # mlflow.models.Model: signature, flavors, metadata

    @property
    def threshold(self) -> float | None:
        """The decision threshold chosen at training time (score >= threshold is an alert)."""
        return _float((self.mlmodel.metadata or {}).get(THRESHOLD_METADATA))

    @property
    def feature_spec(self) -> FeatureSpec | None:
        """The feature windows and label delay the model was trained on."""
        return recorded_feature_spec(self.mlmodel.metadata)

    def check_contract(self, expected: FeatureSpec) -> None:
        """ContractMismatchError unless this model fits the features `expected` computes."""
        check_model_contract(self.mlmodel, expected, what=f"model {self.name} version {self.version}")

    def scores(self, frame: "pd.DataFrame") -> "np.ndarray":
        """P(fraud) per row of a frame holding FEATURE_NAMES."""
        from fraudctl.features import FEATURE_NAMES
        from fraudctl.model.training import fraud_scores

        return fraud_scores(self.model, frame, FEATURE_NAMES)


# ---------------------------------------------------------------------------------------------- client


class Registry:
    """fraudctl's narrow view of the MLflow tracking server and model registry, built from config."""

    def __init__(self, config: "Config"):
        self.config = config
        self.name = config.model.name
        self.uri = config.mlflow.tracking_uri
        _configure_http(config)
        self._client = None

    # -- connection

    def ping(self) -> None:
        """Fail in seconds with UnavailableError when the server does not answer /health."""
        ping(self.uri, min(PROBE_TIMEOUT, self.config.mlflow.request_timeout))

    @property
    def client(self):
        """The MlflowClient, after a ping (module-level MLflow helpers then use the same server)."""
        if self._client is None:
            self.ping()
            import mlflow
            from mlflow import MlflowClient

            # Module-level helpers (get_model_info, log_model) use the global URIs: without these they
            # would quietly create ./mlflow.db and look there.
            mlflow.set_tracking_uri(self.uri)
            mlflow.set_registry_uri(self.uri)
            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def errors(self, what: str):
        return mlflow_errors(what, self.uri)

    def expected_spec(self) -> FeatureSpec:
        """The features this deployment computes (what a model must have been trained on)."""
        return FeatureSpec(delay_days=self.config.model.label_delay_days)

    # -- links

    def version_url(self, version: str) -> str:
        return version_url(self.uri, self.name, version)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.uri}/#/experiments/{experiment_id}/runs/{run_id}"

    # -- versions and aliases

    def version(self, version: str):
        """The MLflow ModelVersion, or NotFoundError naming it."""
        with self.errors(f"model {self.name} version {version}"):
            from mlflow.exceptions import MlflowException

            try:
                return self.client.get_model_version(self.name, str(version))
            except MlflowException as exc:
                if getattr(exc, "error_code", "") in NO_SUCH_THING:
                    raise NotFoundError(f"model {self.name} has no version {version}",
                                        hint="`fraudctl models list` shows the versions") from None
                raise

    def alias_version(self, alias: str) -> str | None:
        """The version an alias (e.g. `champion`) points at, or None when it points nowhere."""
        with self.errors(f"reading alias {alias}"):
            from mlflow.exceptions import MlflowException

            try:
                return str(self.client.get_model_version_by_alias(self.name, alias).version)
            except MlflowException as exc:
                if getattr(exc, "error_code", "") in NO_SUCH_THING:
                    return None
                raise

    def ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        with self.errors(f"creating registered model {self.name}"):
            try:
                self.client.get_registered_model(self.name)
            except MlflowException as exc:
                if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                    raise
                self.client.create_registered_model(
                    self.name, description="Fraud score per transaction (P(fraud)), trained by `fraudctl train`. "
                                           "Serve @champion; @challenger is the newest candidate.")

    def register(self, model_uri: str, run_id: str, model_id: str | None, tags: dict[str, str]) -> str:
        """A new version of a logged model, with its tags, as @challenger; returns the version."""
        with self.errors(f"registering {self.name}"):
            # Through the client rather than log_model(registered_model_name=...), which prints to stderr
            # past any log level; the tags arrive with the version, not after it.
            version = str(self.client.create_model_version(
                self.name, source=model_uri, run_id=run_id, model_id=model_id, tags=tags,
                await_creation_for=60).version)
            self.client.set_registered_model_alias(self.name, CHALLENGER, version)
        return version

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, newest first, with aliases, metrics, windows, creation time and links."""
        with self.errors(f"listing {self.name}"):
            from mlflow.exceptions import MlflowException

            try:
                aliases = self.client.get_registered_model(self.name).aliases or {}
            except MlflowException as exc:
                if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                    return []
                raise
            by_version: dict[str, list[str]] = {}
            for alias, version in aliases.items():
                by_version.setdefault(str(version), []).append(alias)
            # search results do not carry aliases; the registered model's alias map does.
            versions = self.client.search_model_versions(f"name='{self.name}'")
            described = [self._describe(v, by_version.get(str(v.version), [])) for v in versions]
            return sorted(described, key=lambda d: -int(d["version"]))

    def show(self, version: str) -> dict[str, Any]:
        """One version in full: tags, run metrics and params, artifacts, and its contract check."""
        mv = self.version(version)
        with self.errors(f"model {self.name} version {version}"):
            described = self._describe(mv)
            run = self.client.get_run(mv.run_id) if mv.run_id else None
            if run is not None:
                described["metrics"] = dict(sorted(run.data.metrics.items()))
                described["params"] = dict(sorted(run.data.params.items()))
                described["run_url"] = self.run_url(run.info.experiment_id, run.info.run_id)
                described["artifacts"] = sorted(self._artifact_paths(mv.run_id))
        try:
            self.check_contract(str(mv.version))
            described["contract"] = "ok"
        except ContractMismatchError as exc:
            described["contract"] = exc.message
        return described

    def _artifact_paths(self, run_id: str, path: str | None = None) -> list[str]:
        found = []
        for item in self.client.list_artifacts(run_id, path):
            if item.is_dir:
                if item.path != MODEL_ARTIFACT:  # the model's files are its own business
                    found += self._artifact_paths(run_id, item.path)
                else:
                    found.append(item.path + "/")
            else:
                found.append(item.path)
        return found

    def _describe(self, mv, aliases: list[str] | None = None) -> dict[str, Any]:
        return describe(self.uri, mv.name, str(mv.version), mv.creation_timestamp, mv.run_id, dict(mv.tags or {}),
                        list(aliases if aliases is not None else (mv.aliases or [])))

    # -- what a version records, its contract, loading

    def threshold(self, version: str) -> float | None:
        """The decision threshold recorded on the version (tag fraudctl.threshold)."""
        return _float((self.version(version).tags or {}).get(f"{TAG}threshold"))

    def model_info(self, version: str):
        """The version's MLmodel (signature, flavors, metadata) without downloading the model."""
        from mlflow.models import get_model_info

        mv = self.version(version)  # also connects, setting the global URIs get_model_info uses
        with self.errors(f"reading the signature of {self.name} version {version}"):
            return get_model_info(f"models:/{self.name}/{mv.version}")

    def feature_spec(self, version: str) -> FeatureSpec | None:
        """The feature windows and label delay the version was trained on (None if it records none)."""
        return recorded_feature_spec(self.model_info(version).metadata)

    def check_contract(self, version: str) -> None:
        """ContractMismatchError unless the version takes FEATURE_NAMES (float64), gives P(fraud) and was
        trained on the features this deployment computes."""
        check_model_contract(self.model_info(version), self.expected_spec(),
                             what=f"model {self.name} version {version}")

    def load(self, version: str) -> LoadedModel:
        """Download a version and load its estimator with skops and our trusted types."""
        import skops.io
        from mlflow.models import Model

        mv = self.version(version)
        with self.errors(f"downloading {self.name} version {version}"), tempfile.TemporaryDirectory() as tmp:
            import mlflow.artifacts

            local = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{self.name}/{mv.version}", dst_path=tmp, tracking_uri=self.uri))
            mlmodel = Model.load(str(local / "MLmodel"))
            flavor = (mlmodel.flavors or {}).get("sklearn") or {}
            if flavor.get("serialization_format") != "skops":
                raise UntrustedModelError(
                    f"model {self.name} version {version} is not saved with skops "
                    f"({flavor.get('serialization_format', 'no sklearn flavor')}); fraudctl does not unpickle models")
            try:
                model = skops.io.load(local / flavor.get("pickled_model", "model.skops"), trusted=list(TRUSTED_TYPES))
            except Exception as exc:  # skops raises UntrustedTypesFoundException with the types
                raise UntrustedModelError(f"refusing to load {self.name} version {version}: {exc}") from None
        return LoadedModel(self.name, str(mv.version), model, mlmodel)

    def load_model(self, version: str):
        """The fitted scikit-learn estimator of a version (`load(version).model`)."""
        return self.load(version).model

    def holdout(self, version: str) -> "pd.DataFrame":
        """The featured test rows the version was evaluated on, stored with its run."""
        import mlflow.artifacts
        import pandas as pd

        mv = self.version(version)
        with self.errors(f"downloading the holdout of {self.name} version {version}"), \
                tempfile.TemporaryDirectory() as tmp:
            # Not found is decided by listing, so that a network error stays "unavailable".
            stored = {item.path for item in self.client.list_artifacts(mv.run_id, HOLDOUT_DIR)} if mv.run_id else set()
            if f"{HOLDOUT_DIR}/{HOLDOUT_FILE}" not in stored:
                raise NotFoundError(f"{self.name} version {version} has no holdout artifact "
                                    f"({HOLDOUT_DIR}/{HOLDOUT_FILE}); was it trained by `fraudctl train`?")
            path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=f"{HOLDOUT_DIR}/{HOLDOUT_FILE}",
                                                       dst_path=tmp, tracking_uri=self.uri)
            return pd.read_parquet(path)
