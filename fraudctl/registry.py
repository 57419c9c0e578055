"""The MLflow client of fraudctl: log training runs, register models, list them, promote, roll back.

Conventions in the registry (model `config.model.name`, "fraud-detector" by default):
- aliases only, never the deprecated stages: the newest trained version gets `challenger`, the one the
  scorer serves is `champion`;
- every version's run holds its holdout (the featured test rows, `holdout/holdout.parquet`), so `promote V`
  scores V and the current champion on the SAME rows and compares average precision (the gate);
- the registered model tag `fraudctl.champion_history` lists earlier champions, oldest first;
  `promote` pushes the outgoing champion, `rollback` pops it back;
- version tags `fraudctl.*` carry what the scorer needs without opening the run: the decision threshold,
  the feature spec version and the test metrics.

Models are saved with skops (no pickle) and loaded here with OUR allow-list of types (`TRUSTED_TYPES`),
not the list the model's own MLmodel file declares, which a crafted model could widen.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from fraudctl.contracts import CUSTOMER_ID, IS_FRAUD, TRANSACTION_ID, TX_DATETIME
from fraudctl.errors import ContractError, FraudctlError, NotFoundError, RefusedError, UnavailableError
from fraudctl.features import FEATURE_NAMES, FEATURE_SPEC_VERSION, FeatureSpec

if TYPE_CHECKING:
    import pandas as pd

    from fraudctl.config import Config
    from fraudctl.training import LoadedData, TrainingResult

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
HOLDOUT_DIR = "holdout"
HOLDOUT_FILE = "holdout.parquet"
PLOTS_DIR = "plots"
PLOTS = ("pr_curve.png", "roc_curve.png", "score_distribution.png", "feature_importance.png")
HISTORY_TAG = "fraudctl.champion_history"
TAG = "fraudctl."
# skops refuses any type not listed when loading. Gradient boosting and random forest hold sklearn's tree
# structure; logistic regression needs nothing beyond skops' defaults.
TRUSTED_TYPES = ("sklearn.tree._tree.Tree",)
PREDICT_FN = "predict_proba"  # the pyfunc flavor returns [P(legit), P(fraud)] per row; column 1 is the score
PROBE_TIMEOUT = 3.0


class ContractMismatchError(ContractError):
    """The model's input signature or output does not fit the feature contract (exit code CONTRACT)."""


# ------------------------------------------------------------------------------------------- helpers


def _configure_http(config: "Config") -> None:
    # MLflow reads these on every request; its defaults (7 retries, 120 s timeout) make an unreachable
    # server look like a hang.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(config.mlflow.request_max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(max(1, config.mlflow.request_timeout)))
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    # fraudctl prints its own links to the run and the version, in its own output format.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
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


@contextlib.contextmanager
def _mlflow_errors(what: str, uri: str) -> Iterator[None]:
    """Turn MLflow and HTTP failures into FraudctlErrors with the operator's words."""
    from mlflow.exceptions import MlflowException, RestException

    try:
        yield
    except FraudctlError:
        raise
    except RestException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"{what}: {exc.message}") from None
        raise FraudctlError(f"{what}: MLflow said {exc.error_code}: {exc.message}") from None
    except MlflowException as exc:
        text = str(exc)
        if "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower():
            raise NotFoundError(f"{what}: {text}") from None
        if any(word in text for word in ("Max retries", "Connection", "timed out", "API request")):
            raise UnavailableError(f"{what}: MLflow at {uri} did not answer: {text.splitlines()[0]}",
                                   hint="is the stack up? `fraudctl status`") from None
        raise FraudctlError(f"{what}: {text}") from None
    except OSError as exc:  # requests' ConnectionError is an OSError
        raise UnavailableError(f"{what}: MLflow at {uri} did not answer: {exc}",
                               hint="is the stack up? `fraudctl status`") from None


def git_revision(start: Path | None = None) -> dict[str, str]:
    """The commit of the code that trained (and whether the tree had changes), or 'unknown'."""
    where = str(start or Path(__file__).resolve().parent)
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)
        status = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return {"commit": "unknown", "dirty": "unknown"}
    return {
        "commit": commit.stdout.strip() if commit.returncode == 0 else "unknown",
        "dirty": ("true" if status.stdout.strip() else "false") if status.returncode == 0 else "unknown",
    }


@dataclass
class Comparison:
    """Candidate and champion scored on the candidate's holdout."""

    candidate: str
    champion: str | None
    holdout: dict[str, Any]  # rows, frauds, days, window
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    margin: float
    passes: bool
    reason: str
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- client


class Registry:
    """fraudctl's narrow view of the MLflow tracking server and model registry, built from config."""

    def __init__(self, config: "Config"):
        self.config = config
        self.name = config.model.name
        self.uri = config.mlflow.tracking_uri
        self.margin = config.model.promotion_margin
        _configure_http(config)
        self._client = None

    # -- connection

    def ping(self) -> None:
        """Fail in seconds with UnavailableError when the server does not answer /health."""
        timeout = min(PROBE_TIMEOUT, self.config.mlflow.request_timeout)
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=timeout) as response:
                if response.status == 200:
                    return
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = str(getattr(exc, "reason", exc))
        raise UnavailableError(f"MLflow at {self.uri} is not reachable ({problem})",
                               hint="start the stack with `fraudctl up`, or check mlflow.host/port in the config")

    @property
    def client(self):
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

    def _errors(self, what: str):
        return _mlflow_errors(what, self.uri)

    # -- links

    def version_url(self, version: str) -> str:
        return f"{self.uri}/#/models/{self.name}/versions/{version}"

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.uri}/#/experiments/{experiment_id}/runs/{run_id}"

    # -- logging a training run

    def log_training(self, result: "TrainingResult", data: "LoadedData | None" = None,
                     run_name: str | None = None) -> dict[str, Any]:
        """Log the run (params, metrics, plots, holdout, lineage, model) and register it as challenger."""
        import mlflow
        import mlflow.sklearn
        import sklearn
        import skops
        import skops.io
        from mlflow.models import infer_signature

        client = self.client
        with self._errors("logging the training run"), _quiet_mlflow():
            experiment = mlflow.set_experiment(self.config.mlflow.experiment)
            self._ensure_registered_model()
            untrusted = set(skops.io.get_untrusted_types(data=skops.io.dumps(result.model)))
            if not untrusted <= set(TRUSTED_TYPES):
                raise FraudctlError(f"the {result.estimator} model holds types fraudctl does not trust to load: "
                                    f"{', '.join(sorted(untrusted - set(TRUSTED_TYPES)))}")
            lineage = {
                "data": data.lineage() if data else None,
                "window": result.split.as_dict(),
                "features": result.spec.as_dict(),
                "git": git_revision(),
            }
            features = result.feature_names
            x_example = result.test[features].head(5).astype("float64")
            signature = infer_signature(x_example, result.model.predict_proba(x_example))
            with mlflow.start_run(run_name=run_name or f"{result.estimator}-{result.split.train_start}") as run:
                mlflow.log_params(self._params(result, lineage))
                mlflow.log_metrics(self._metrics(result))
                for step, value in enumerate(result.metrics.get("card_precision_at_100_daily", [])):
                    mlflow.log_metric("test_card_precision_at_100_by_day", value, step=step)
                mlflow.set_tags({
                    f"{TAG}git_commit": lineage["git"]["commit"], f"{TAG}git_dirty": lineage["git"]["dirty"],
                    f"{TAG}feature_spec_version": str(result.spec.version),
                    f"{TAG}estimator": result.estimator,
                    f"{TAG}data_fingerprint": data.fingerprint if data else "",
                    **{f"{TAG}warning_{i}": w[:500] for i, w in enumerate(result.warnings)},
                })
                mlflow.log_dict(lineage, "lineage.json")
                mlflow.log_dict(result.summary(), "summary.json")
                self._log_datasets(result, data)
                importances = permutation_importances(result)
                mlflow.log_dict(importances, "feature_importance.json")
                figures = make_figures(result, importances)
                try:
                    for name, figure in figures.items():
                        mlflow.log_figure(figure, f"{PLOTS_DIR}/{name}")
                finally:
                    figures_closed(figures)
                with tempfile.TemporaryDirectory() as tmp:
                    path = Path(tmp) / HOLDOUT_FILE
                    holdout_frame(result.test, features).to_parquet(path, index=False)
                    mlflow.log_artifact(str(path), HOLDOUT_DIR)
                info = mlflow.sklearn.log_model(
                    result.model, name=MODEL_ARTIFACT, signature=signature, input_example=x_example,
                    pyfunc_predict_fn=PREDICT_FN, serialization_format="skops",
                    skops_trusted_types=sorted(untrusted),
                    # Explicit requirements: inference would load the model in a subprocess (slow, and
                    # refused without MLFLOW_ALLOW_PICKLE_DESERIALIZATION).
                    pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"skops=={skops.__version__}",
                                      "pandas<3", "numpy"],
                    metadata={"fraudctl_feature_spec": result.spec.as_dict(), "fraudctl_threshold":
                              result.threshold.threshold},
                )
            metrics = result.metrics
            tags = {
                f"{TAG}threshold": repr(result.threshold.threshold),
                f"{TAG}threshold_policy": result.threshold.policy,
                f"{TAG}feature_spec_version": str(result.spec.version),
                f"{TAG}estimator": result.estimator,
                f"{TAG}train_window": f"{result.split.train_start}..{result.split.train_end}",
                f"{TAG}test_window": f"{result.split.test_start}..{result.split.test_end}",
                f"{TAG}test_roc_auc": f"{metrics['roc_auc']:.6f}",
                f"{TAG}test_average_precision": f"{metrics['average_precision']:.6f}",
                f"{TAG}test_card_precision_at_100": f"{metrics['card_precision_at_100']:.6f}",
                f"{TAG}git_commit": lineage["git"]["commit"],
            }
            # Registered through the client rather than log_model(registered_model_name=...), which
            # prints to stderr past any log level; the tags arrive with the version, not after it.
            version = str(client.create_model_version(
                self.name, source=info.model_uri, run_id=run.info.run_id, model_id=info.model_id, tags=tags,
                await_creation_for=60).version)
            client.set_registered_model_alias(self.name, CHALLENGER, version)
        return {
            "name": self.name, "version": version, "alias": CHALLENGER, "run_id": run.info.run_id,
            "experiment_id": experiment.experiment_id,
            "run_url": self.run_url(experiment.experiment_id, run.info.run_id),
            "version_url": self.version_url(version),
        }

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
                raise
            self.client.create_registered_model(
                self.name, description="Fraud score per transaction (P(fraud)), trained by `fraudctl train`. "
                                       "Serve @champion; @challenger is the newest candidate.")

    @staticmethod
    def _params(result: "TrainingResult", lineage: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {"estimator": result.estimator}
        params.update({f"model.{k}": v for k, v in result.params.items()})
        params.update({f"window.{k}": v for k, v in result.split.as_dict().items()})
        params.update({f"threshold.{k}": v for k, v in asdict(result.threshold).items() if k != "note"})
        params.update({f"features.{k}": v for k, v in result.spec.as_dict().items()})
        params["features.names"] = ",".join(result.feature_names)
        for key, value in (lineage.get("data") or {}).items():
            params[f"data.{key}"] = value
        # MLflow caps a param value at 6000 characters.
        return {k: (str(v)[:6000] if v is not None else "") for k, v in params.items()}

    @staticmethod
    def _metrics(result: "TrainingResult") -> dict[str, float]:
        values: dict[str, float] = {"threshold": result.threshold.threshold,
                                    "fit_seconds": result.fit_seconds, "train_total_seconds": result.total_seconds,
                                    "train_transactions": float(len(result.train)),
                                    "train_frauds": float(result.train[IS_FRAUD].sum())}
        for prefix, metrics in (("test_", result.metrics), ("validation_", result.validation_metrics or {})):
            for key, value in metrics.items():
                if isinstance(value, (int, float)):
                    values[prefix + key] = float(value)
        return values

    @staticmethod
    def _log_datasets(result: "TrainingResult", data: "LoadedData | None") -> None:
        """Record the training and test slices as MLflow dataset inputs: source, window, schema, digest.

        A metadata-only dataset: MLflow's pandas dataset would scan every row to infer the schema (about
        10 s for a week of transactions) and the rows are already described by the source fingerprint.
        """
        import hashlib

        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.types import ColSpec, DataType, Schema

        import mlflow

        if data is None:  # trained on an in-memory frame: nothing to point at
            return
        source = resolve_dataset_source(data.source)
        schema = Schema([ColSpec(DataType.string, TRANSACTION_ID), ColSpec(DataType.datetime, TX_DATETIME),
                         ColSpec(DataType.string, CUSTOMER_ID),
                         *[ColSpec(DataType.double, name) for name in result.feature_names],
                         ColSpec(DataType.long, IS_FRAUD)])
        window = result.split.as_dict()
        for context, frame, start, end in (("training", result.train, window["train_start"], window["train_end"]),
                                           ("test", result.test, window["test_start"], window["test_end"])):
            key = f"{data.fingerprint}|{context}|{start}|{end}|{len(frame)}"
            dataset = MetaDataset(source, name=f"{context} {start}..{end} ({len(frame)} rows)", schema=schema,
                                  digest=hashlib.sha256(key.encode()).hexdigest()[:16])
            mlflow.log_input(dataset, context=context)

    # -- reading

    def _version(self, version: str):
        with self._errors(f"model {self.name} version {version}"):
            from mlflow.exceptions import MlflowException

            try:
                return self.client.get_model_version(self.name, str(version))
            except MlflowException as exc:
                if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise NotFoundError(f"model {self.name} has no version {version}",
                                        hint="`fraudctl models list` shows the versions") from None
                raise

    def alias_version(self, alias: str) -> str | None:
        with self._errors(f"reading alias {alias}"):
            from mlflow.exceptions import MlflowException

            try:
                return str(self.client.get_model_version_by_alias(self.name, alias).version)
            except MlflowException as exc:
                if getattr(exc, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, newest first, with aliases, metrics, windows, creation time and links."""
        with self._errors(f"listing {self.name}"):
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
        mv = self._version(version)
        with self._errors(f"model {self.name} version {version}"):
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
        tags = dict(mv.tags or {})
        created = dt.datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=dt.timezone.utc)
        return {
            "name": mv.name,
            "version": str(mv.version),
            "aliases": sorted(aliases if aliases is not None else (mv.aliases or [])),
            "created": created.isoformat(timespec="seconds"),
            "run_id": mv.run_id,
            "estimator": tags.get(f"{TAG}estimator"),
            "train_window": tags.get(f"{TAG}train_window"),
            "test_window": tags.get(f"{TAG}test_window"),
            "threshold": float(tags[f"{TAG}threshold"]) if f"{TAG}threshold" in tags else None,
            "test_roc_auc": _float(tags.get(f"{TAG}test_roc_auc")),
            "test_average_precision": _float(tags.get(f"{TAG}test_average_precision")),
            "test_card_precision_at_100": _float(tags.get(f"{TAG}test_card_precision_at_100")),
            "tags": dict(tags),
            "url": self.version_url(str(mv.version)),
        }

    # -- contract and loading

    def check_contract(self, version: str) -> None:
        """Raise ContractMismatchError unless the version takes FEATURE_NAMES (float64) and gives P(fraud)."""
        from mlflow.models import get_model_info

        mv = self._version(version)  # also connects, setting the global URIs get_model_info uses
        with self._errors(f"reading the signature of {self.name} version {version}"):
            info = get_model_info(f"models:/{self.name}/{mv.version}")
        problems = []
        signature = info.signature
        if signature is None or signature.inputs is None:
            problems.append("it has no input signature")
        else:
            names = signature.inputs.input_names()
            if list(names) != FEATURE_NAMES:
                missing = [n for n in FEATURE_NAMES if n not in names]
                extra = [n for n in names if n not in FEATURE_NAMES]
                detail = []
                if missing:
                    detail.append(f"missing {', '.join(missing)}")
                if extra:
                    detail.append(f"unknown {', '.join(map(str, extra))}")
                if not detail:
                    detail.append("columns in another order")
                problems.append(f"its inputs do not match the feature contract ({'; '.join(detail)})")
            else:
                types = {spec.name: str(spec.type) for spec in signature.inputs.inputs}
                wrong = [f"{n}: {t}" for n, t in types.items() if "double" not in t.lower()]
                if wrong:
                    problems.append(f"inputs must be double: {', '.join(wrong)}")
        pyfunc = (info.flavors or {}).get("python_function", {})
        if pyfunc.get("predict_fn", "predict") != PREDICT_FN:
            problems.append(f"its pyfunc predict function is {pyfunc.get('predict_fn', 'predict')!r}, "
                            f"the scorer needs {PREDICT_FN!r}")
        spec = (info.metadata or {}).get("fraudctl_feature_spec")
        expected = FeatureSpec(delay_days=self.config.model.label_delay_days)  # what the scorer computes
        if spec is None:
            problems.append("it records no feature spec (metadata fraudctl_feature_spec)")
        elif int(spec.get("version", -1)) != FEATURE_SPEC_VERSION:
            problems.append(f"it was trained on feature spec version {spec.get('version')}, "
                            f"this fraudctl computes version {FEATURE_SPEC_VERSION}")
        elif FeatureSpec.from_dict(spec) != expected:
            problems.append(f"it was trained with feature windows/delay {spec}, this deployment computes "
                            f"{expected.as_dict()} (model.label_delay_days)")
        if problems:
            raise ContractMismatchError(
                f"model {self.name} version {version} does not fit the feature contract: {'; '.join(problems)}",
                hint="retrain it with `fraudctl train` so it takes the current features")

    def load_model(self, version: str):
        """The fitted scikit-learn estimator of a version, loaded with skops and our trusted types."""
        import skops.io
        import yaml

        mv = self._version(version)
        with self._errors(f"downloading {self.name} version {version}"), tempfile.TemporaryDirectory() as tmp:
            import mlflow.artifacts

            local = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{self.name}/{mv.version}", dst_path=tmp, tracking_uri=self.uri))
            flavor = (yaml.safe_load((local / "MLmodel").read_text()).get("flavors") or {}).get("sklearn") or {}
            if flavor.get("serialization_format") != "skops":
                raise ContractMismatchError(
                    f"model {self.name} version {version} is not saved with skops "
                    f"({flavor.get('serialization_format', 'no sklearn flavor')}); fraudctl does not unpickle models")
            try:
                return skops.io.load(local / flavor.get("pickled_model", "model.skops"), trusted=list(TRUSTED_TYPES))
            except Exception as exc:  # skops raises UntrustedTypesFoundException with the types
                raise FraudctlError(f"refusing to load {self.name} version {version}: {exc}") from None

    def holdout(self, version: str) -> "pd.DataFrame":
        import mlflow.artifacts
        import pandas as pd

        mv = self._version(version)
        with self._errors(f"downloading the holdout of {self.name} version {version}"), \
                tempfile.TemporaryDirectory() as tmp:
            try:
                path = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=f"{HOLDOUT_DIR}/{HOLDOUT_FILE}",
                                                           dst_path=tmp, tracking_uri=self.uri)
            except Exception as exc:
                raise NotFoundError(f"{self.name} version {version} has no holdout artifact "
                                    f"({HOLDOUT_DIR}/{HOLDOUT_FILE}); was it trained by `fraudctl train`?",
                                    detail=str(exc)[:300]) from None
            return pd.read_parquet(path)

    # -- promotion

    def compare(self, version: str) -> Comparison:
        """Score the candidate and the current champion on the candidate's holdout; apply the gate."""
        from fraudctl.training import evaluate, fraud_scores

        candidate = str(self._version(version).version)
        self.check_contract(candidate)
        champion = self.alias_version(CHAMPION)
        holdout = self.holdout(candidate)
        cand_model = self.load_model(candidate)
        cand_metrics = _headline(evaluate(holdout, fraud_scores(cand_model, holdout, FEATURE_NAMES)))
        info = {"rows": int(len(holdout)), "frauds": int(holdout[IS_FRAUD].sum()),
                "first_tx": str(holdout[TX_DATETIME].min()), "last_tx": str(holdout[TX_DATETIME].max()),
                "of_version": candidate}
        warnings: list[str] = []
        if champion is None:
            return Comparison(candidate, None, info, cand_metrics, None, self.margin, True,
                              "no champion yet: the first promotion needs no gate", warnings)
        if champion == candidate:
            return Comparison(candidate, champion, info, cand_metrics, cand_metrics, self.margin, False,
                              f"version {candidate} is already the champion", warnings)
        try:
            self.check_contract(champion)
        except ContractMismatchError as exc:
            return Comparison(candidate, champion, info, cand_metrics, None, self.margin, False,
                              f"the champion (version {champion}) cannot be scored on the current features, so no "
                              f"comparison on the same holdout is possible: {exc.message}", warnings)
        champ_model = self.load_model(champion)
        champ_metrics = _headline(evaluate(holdout, fraud_scores(champ_model, holdout, FEATURE_NAMES)))
        champ_train = (self._version(champion).tags or {}).get(f"{TAG}train_window", "")
        if champ_train and ".." in champ_train and champ_train.split("..")[1] > info["first_tx"][:10]:
            warnings.append(f"the champion was trained on data up to {champ_train.split('..')[1]} (exclusive), "
                            f"which overlaps this holdout: the comparison favours the champion")
        gain = cand_metrics["average_precision"] - champ_metrics["average_precision"]
        passes = gain > 0 and gain >= self.margin
        reason = (f"average precision {cand_metrics['average_precision']:.4f} vs champion "
                  f"{champ_metrics['average_precision']:.4f}: gain {gain:+.4f}, required > 0 and >= {self.margin:g}")
        return Comparison(candidate, champion, info, cand_metrics, champ_metrics, self.margin, passes, reason,
                          warnings)

    def promote(self, version: str, *, force: bool = False, comparison: Comparison | None = None) -> dict[str, Any]:
        """Move `champion` to `version` if it passes the gate (or `force`); remember the previous champion."""
        comparison = comparison or self.compare(version)
        candidate, previous = comparison.candidate, comparison.champion
        if previous == candidate:
            return {"changed": False, "champion": candidate, "previous": None, "forced": False,
                    "reason": comparison.reason}
        if not comparison.passes and not force:
            raise RefusedError(f"promotion of {self.name} version {candidate} refused: {comparison.reason}",
                               hint="use --force to promote anyway")
        with self._errors(f"promoting {self.name} version {candidate}"):
            client = self.client
            if previous is not None:
                # The history is written before the alias moves: a crash in between leaves an entry equal
                # to the champion, which rollback skips.
                history = self._history() + [previous]
                client.set_registered_model_tag(self.name, HISTORY_TAG, ",".join(history))
            client.set_registered_model_alias(self.name, CHAMPION, candidate)
            if self.alias_version(CHALLENGER) == candidate:
                client.delete_registered_model_alias(self.name, CHALLENGER)
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            for key, value in {
                "promoted_at": now, "promoted_over": previous or "", "promotion_forced": str(bool(force)).lower(),
                "promotion_reason": comparison.reason[:500],
            }.items():
                client.set_model_version_tag(self.name, candidate, TAG + key, value)
        return {"changed": True, "champion": candidate, "previous": previous,
                "forced": bool(force and not comparison.passes), "reason": comparison.reason}

    def _history(self) -> list[str]:
        tags = self.client.get_registered_model(self.name).tags or {}
        return [v for v in tags.get(HISTORY_TAG, "").split(",") if v]

    def rollback(self) -> dict[str, Any]:
        """Give `champion` back to the previous champion recorded by `promote`."""
        with self._errors(f"rolling back {self.name}"):
            client = self.client
            current = self.alias_version(CHAMPION)
            history = self._history()
            while history and history[-1] == current:
                history.pop()
            if not history:
                raise NotFoundError(f"no previous champion recorded for {self.name}",
                                    hint="rollback undoes a `fraudctl promote`; there has been none to undo")
            target = history[-1]
            self.check_contract(target)  # also a NotFoundError naming it, when it was deleted since
            client.set_registered_model_alias(self.name, CHAMPION, target)
            client.set_registered_model_tag(self.name, HISTORY_TAG, ",".join(history[:-1]))
            now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            client.set_model_version_tag(self.name, target, f"{TAG}restored_at", now)
            if current is not None:
                client.set_model_version_tag(self.name, current, f"{TAG}rolled_back_at", now)
        return {"champion": target, "replaced": current, "history": history[:-1]}


# ----------------------------------------------------------------------------------- holdout and plots


def holdout_frame(test: "pd.DataFrame", features: list[str]) -> "pd.DataFrame":
    """What a later comparison needs: ids for card precision, the day, the features, the label."""
    return test[[TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID, *features, IS_FRAUD]].reset_index(drop=True)


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in ("roc_auc", "average_precision", "card_precision_at_100")}


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def permutation_importances(result: "TrainingResult", max_rows: int = 20_000) -> dict[str, float]:
    """Average-precision drop when each feature is shuffled, on (a sample of) the test rows.

    One method for every estimator (HistGradientBoosting has no impurity importances), measured on the
    test rows because it describes the model, it selects nothing.
    """
    from sklearn.inspection import permutation_importance

    test = result.test
    if len(test) > max_rows:
        test = test.sample(max_rows, random_state=0)
    if test[IS_FRAUD].nunique() < 2:
        return {name: 0.0 for name in result.feature_names}
    found = permutation_importance(result.model, test[result.feature_names], test[IS_FRAUD].astype(int),
                                   scoring="average_precision", n_repeats=3, random_state=0)
    return {name: float(v) for name, v in zip(result.feature_names, found.importances_mean)}


def make_figures(result: "TrainingResult", importances: dict[str, float]) -> dict[str, Any]:
    """The four PNG plots of a training run, as matplotlib figures (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import precision_recall_curve, roc_curve

    labels = result.test[IS_FRAUD].to_numpy().astype(int)
    scores = result.test["score"].to_numpy()
    threshold = result.threshold.threshold
    m = result.metrics
    last_day = result.split.test_end - dt.timedelta(days=1)
    title = f"{result.estimator}, test {result.split.test_start}..{last_day}"
    figures = {}

    fig, ax = plt.subplots(figsize=(6, 5))
    precision, recall, _ = precision_recall_curve(labels, scores)
    ax.plot(recall, precision, label=f"AP = {m['average_precision']:.3f}")
    alerts = scores >= threshold
    if alerts.any():
        ax.scatter([alerts[labels == 1].mean()], [labels[alerts].mean()], color="red", zorder=3,
                   label=f"threshold {threshold:.3f}")
    ax.axhline(labels.mean(), color="grey", linestyle=":", label=f"fraud rate {labels.mean():.4f}")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall, {title}", xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="upper right")
    figures["pr_curve.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 5))
    fpr, tpr, _ = roc_curve(labels, scores)
    ax.plot(fpr, tpr, label=f"AUC = {m['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {title}")
    ax.legend(loc="lower right")
    figures["roc_curve.png"] = fig

    fig, ax = plt.subplots(figsize=(6, 5))
    bins = np.linspace(0, 1, 51)
    ax.hist(scores[labels == 0], bins=bins, alpha=0.6, density=True, label=f"legitimate ({(labels == 0).sum()})")
    ax.hist(scores[labels == 1], bins=bins, alpha=0.6, density=True, label=f"fraud ({(labels == 1).sum()})")
    ax.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_yscale("log")
    ax.set(xlabel="score P(fraud)", ylabel="density (log)", title=f"Scores by class, {title}")
    ax.legend()
    figures["score_distribution.png"] = fig

    fig, ax = plt.subplots(figsize=(7, 6))
    ordered = sorted(importances.items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in ordered], [v for _, v in ordered])
    ax.set(xlabel="drop in average precision when shuffled", title=f"Permutation importance, {result.estimator}")
    figures["feature_importance.png"] = fig
    for figure in figures.values():
        figure.tight_layout()
    return figures


def figures_closed(figures: dict[str, Any]) -> None:
    import matplotlib.pyplot as plt

    for figure in figures.values():
        plt.close(figure)


__all__ = [
    "CHAMPION", "CHALLENGER", "Comparison", "ContractMismatchError", "Registry", "TRUSTED_TYPES",
    "git_revision", "holdout_frame", "make_figures", "permutation_importances",
]
