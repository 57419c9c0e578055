"""A narrow MLflow REST client (stdlib only) for what the operator's views read: an alias, the registered
model's alias map, the versions. `fraudctl status` and `fraudctl models list` go through it; the full
`mlflow` client (`client.Registry`) stays for training, registration, promotion, loading: importing it
costs about 2 s (mlflow, pandas, pyarrow), a lookup here costs milliseconds.

The answers are MLflow 3's REST API as is (`/api/2.0/mlflow/...`, JSON), described here in fraudctl's own
words (`describe`, which `client.Registry` shares). Failures map as `client.mlflow_errors` maps the mlflow
client's: what MLflow says is missing is NotFoundError (9), another error it answers with ServiceError
(13), no answer (refused, timed out, a transient 5xx) UnavailableError (8).

Nothing here imports more than the standard library and fraudctl.errors.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from fraudctl.clock import utc_seconds
from fraudctl.contracts import CHALLENGER, CHAMPION, TAG_PREFIX  # noqa: F401 (re-exported)
from fraudctl.errors import NotFoundError, ServiceError, UnavailableError

if TYPE_CHECKING:
    from fraudctl.config import Config

TAG = TAG_PREFIX
PROBE_TIMEOUT = 3.0
NO_SUCH_THING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # MLflow's answers to an unknown version
# Statuses the mlflow client retries and then reports as a failed request (not as MLflow's answer).
TRANSIENT_STATUSES = frozenset((408, 429, 500, 502, 503, 504))
SEARCH_PAGE = 10_000  # the mlflow client's default max_results for search_model_versions
API = "/api/2.0/mlflow/"


class MlflowAnswer(Exception):
    """MLflow answered a request with an error of its own (`error_code`, `message`), as the mlflow
    client's RestException."""

    def __init__(self, status: int, error_code: str, message: str, body: str = ""):
        super().__init__(f"{error_code}: {message}")
        self.status, self.error_code, self.message, self.body = status, error_code, message, body


class BadStatus(OSError):
    """An HTTP status that is no answer of MLflow's own (a transient 5xx, a proxy's page): the mlflow client
    retries these and then reports the request as failed."""

    def __init__(self, endpoint: str, status: int, body: str):
        super().__init__(f"API request to {endpoint} failed with error code {status} != 200: {body[:200]}")
        self.status, self.body = status, body


def unreachable(what: str, uri: str, text: str) -> UnavailableError:
    return UnavailableError(f"{what}: MLflow at {uri} did not answer: {text}", hint="is the stack up? `fraudctl status`")


def ping(uri: str, timeout: float) -> None:
    """Fail in seconds with UnavailableError when the server does not answer /health."""
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=timeout) as response:
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise UnavailableError(f"MLflow at {uri} is not reachable ({problem})",
                           hint="start the stack with `fraudctl up`, or check mlflow.host/port in the config")


def get(uri: str, endpoint: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """GET `API + endpoint` and its JSON body. MlflowAnswer when MLflow answers with an error of its own;
    OSError (urllib's URLError, a timeout, BadStatus) or ValueError (not JSON) when there is no usable answer."""
    url = f"{uri}{API}{endpoint}?{urllib.parse.urlencode(params, doseq=True)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read().decode("utf-8", "replace")
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if exc.code not in TRANSIENT_STATUSES and isinstance(answer, dict) and answer.get("error_code"):
            raise MlflowAnswer(exc.code, str(answer["error_code"]),
                               str(answer.get("message", f"Response: {answer}")), body) from None
        raise BadStatus(endpoint, exc.code, body) from None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def tag_map(tags: Any) -> dict[str, str]:
    """Version tags as a dict: the REST API's [{"key": k, "value": v}] or the mlflow client's dict."""
    if isinstance(tags, dict):
        return dict(tags)
    return {tag["key"]: tag.get("value", "") for tag in tags or []}


def version_url(uri: str, name: str, version: str) -> str:
    return f"{uri}/#/models/{name}/versions/{version}"


def describe(uri: str, name: str, version: str, creation_timestamp: int | str, run_id: str | None,
             tags: dict[str, str], aliases: list[str]) -> dict[str, Any]:
    """One version as `fraudctl models list|show` give it: aliases, windows, threshold, test metrics
    (from the `fraudctl.*` tags training writes), creation time, run and link."""
    return {
        "name": name,
        "version": str(version),
        "aliases": sorted(aliases),
        "created": utc_seconds(int(creation_timestamp) / 1000),
        "run_id": run_id,
        "estimator": tags.get(f"{TAG}estimator"),
        "train_window": tags.get(f"{TAG}train_window"),
        "test_window": tags.get(f"{TAG}test_window"),
        "threshold": _float(tags.get(f"{TAG}threshold")),
        "test_roc_auc": _float(tags.get(f"{TAG}test_roc_auc")),
        "test_average_precision": _float(tags.get(f"{TAG}test_average_precision")),
        "test_card_precision_at_100": _float(tags.get(f"{TAG}test_card_precision_at_100")),
        "tags": dict(tags),
        "url": version_url(uri, name, str(version)),
    }


class RestRegistry:
    """The registry's read side over plain HTTP: the same answers and errors as `client.Registry`'s
    `alias_version` and `list_versions`, for model `name` at `uri`."""

    def __init__(self, uri: str, name: str, *, timeout: float = 10.0, probe_timeout: float = PROBE_TIMEOUT):
        self.uri = uri
        self.name = name
        self.timeout = timeout
        self.probe_timeout = probe_timeout
        self._pinged = False

    @classmethod
    def from_config(cls, config: "Config") -> "RestRegistry":
        timeout = max(1.0, float(config.mlflow.request_timeout))
        return cls(config.mlflow.tracking_uri, config.model.name, timeout=timeout,
                   probe_timeout=min(PROBE_TIMEOUT, config.mlflow.request_timeout))

    def ping(self) -> None:
        ping(self.uri, self.probe_timeout)

    def _get(self, what: str, endpoint: str, **params: Any) -> dict[str, Any]:
        """A request after one /health ping (as the mlflow client path does), errors in the operator's words.
        MlflowAnswer other than "not found" is left to the caller (some mean "nothing there")."""
        if not self._pinged:
            self.ping()
            self._pinged = True
        try:
            return get(self.uri, endpoint, params, self.timeout)
        except MlflowAnswer:
            raise
        except (OSError, ValueError) as exc:
            raise unreachable(what, self.uri, str(getattr(exc, "reason", None) or exc)) from None

    @staticmethod
    def _answered(what: str, exc: MlflowAnswer) -> Exception:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return NotFoundError(f"{what}: {exc.message}")
        return ServiceError(f"{what}: MLflow said {exc.error_code}: {exc.message}")

    def alias(self, alias: str) -> dict[str, Any] | None:
        """The model version (MLflow's JSON) an alias points at, or None when it points nowhere (or there
        is no registered model yet)."""
        what = f"reading alias {alias}"
        try:
            answer = self._get(what, "registered-models/alias", name=self.name, alias=alias)
        except MlflowAnswer as exc:
            if exc.error_code in NO_SUCH_THING:  # MLflow 3: 400 INVALID_PARAMETER_VALUE for an unset alias
                return None
            raise self._answered(what, exc) from None
        return answer.get("model_version") or None

    def alias_version(self, alias: str) -> str | None:
        """The version an alias (e.g. `champion`) points at, or None when it points nowhere."""
        found = self.alias(alias)
        return str(found["version"]) if found else None

    def list_versions(self) -> list[dict[str, Any]]:
        """Every version, newest first, with aliases, metrics, windows, creation time and links."""
        what = f"listing {self.name}"
        try:
            model = self._get(what, "registered-models/get", name=self.name).get("registered_model") or {}
        except MlflowAnswer as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise self._answered(what, exc) from None
        by_version: dict[str, list[str]] = {}
        for entry in model.get("aliases") or []:
            by_version.setdefault(str(entry["version"]), []).append(entry["alias"])
        described = [describe(self.uri, v.get("name", self.name), v["version"], v.get("creation_timestamp", 0),
                              v.get("run_id", ""), tag_map(v.get("tags")), by_version.get(str(v["version"]), []))
                     for v in self._search_versions(what)]
        return sorted(described, key=lambda d: -int(d["version"]))

    def _search_versions(self, what: str) -> list[dict[str, Any]]:
        """Every version of the model (search results carry no aliases), page by page."""
        versions: list[dict[str, Any]] = []
        token = None
        while True:
            params: dict[str, Any] = {"filter": f"name='{self.name}'", "max_results": SEARCH_PAGE}
            if token:
                params["page_token"] = token
            try:
                page = self._get(what, "model-versions/search", **params)
            except MlflowAnswer as exc:
                raise self._answered(what, exc) from None
            versions += page.get("model_versions") or []
            token = page.get("next_page_token")
            if not token:
                return versions
