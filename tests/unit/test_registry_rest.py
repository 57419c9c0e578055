"""The narrow MLflow REST client (fraudctl/model/registry/rest.py), against a tiny HTTP server of our own that
answers canned JSON in MLflow 3's shapes: what it reads out of the answers, and how it maps MLflow's errors
and silence to fraudctl's (not found 9, MLflow's own error 13, no answer 8). The real MLflow is in
tests/integration/test_registry.py and test_status_view.py."""

from __future__ import annotations

import subprocess
import sys
import time
import pytest

from fraudctl.errors import NotFoundError, ServiceError, UnavailableError
from fraudctl.model.registry import rest
from tests.local_http import LocalServer

NAME = "fraud-detector"


def mv(version, created=1_796_000_000_000, **tags):
    return {"name": NAME, "version": str(version), "creation_timestamp": created, "last_updated_timestamp": created,
            "run_id": f"run-{version}", "status": "READY",
            "tags": [{"key": f"fraudctl.{k}", "value": v} for k, v in tags.items()]}


class Canned(LocalServer):
    """A local server: `routes[endpoint]` is (status, body) or a function of the query giving it."""

    def __init__(self):
        self.routes: dict = {"/health": (200, "OK")}
        super().__init__(self._route)

    def _route(self, request):
        route = self.routes.get(request.path, (404, "<html>no such page</html>"))
        return route(request.params) if callable(route) else route

    @property
    def requests(self) -> list[tuple[str, dict]]:
        return [(r.path, r.params) for r in self.asked]

    def api(self, endpoint, answer):
        self.routes[rest.API.rstrip("/") + "/" + endpoint] = answer


@pytest.fixture
def server():
    canned = Canned()
    yield canned
    canned.close()


def registry(server, timeout=2.0):
    return rest.RestRegistry(server.uri, NAME, timeout=timeout, probe_timeout=1.0)


def test_list_versions_reads_the_alias_map_and_every_page(server):
    server.api("registered-models/get", (200, {"registered_model": {
        "name": NAME, "aliases": [{"alias": "champion", "version": "2"}, {"alias": "challenger", "version": "3"}]}}))
    pages = {None: {"model_versions": [mv(1, estimator="gbm"), mv(3, test_average_precision="0.55")],
                    "next_page_token": "p2"},
             "p2": {"model_versions": [mv(2, threshold="0.4", train_window="2018-04-01..2018-05-01",
                                          test_roc_auc="0.9", test_card_precision_at_100="not a number")]}}
    server.api("model-versions/search", lambda q: (200, pages[q.get("page_token")]))
    versions = registry(server).list_versions()
    assert [v["version"] for v in versions] == ["3", "2", "1"]
    three, two, one = versions
    assert three["aliases"] == ["challenger"] and two["aliases"] == ["champion"] and one["aliases"] == []
    assert two["threshold"] == 0.4 and two["test_roc_auc"] == 0.9 and two["test_card_precision_at_100"] is None
    assert two["train_window"] == "2018-04-01..2018-05-01" and one["estimator"] == "gbm"
    assert two["created"] == "2026-11-30T00:53:20+00:00" and two["run_id"] == "run-2"
    assert two["tags"]["fraudctl.threshold"] == "0.4"
    assert two["url"] == f"{server.uri}/#/models/{NAME}/versions/2"
    searches = [params for path, params in server.requests if path.endswith("model-versions/search")]
    assert searches[0]["filter"] == f"name='{NAME}'" and searches[1]["page_token"] == "p2"


def test_no_registered_model_is_no_versions(server):
    server.api("registered-models/get", (404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                               "message": f"Registered Model with name={NAME} not found"}))
    assert registry(server).list_versions() == []


def test_an_alias_reads_its_version_and_an_unset_one_is_none(server):
    answers = {"champion": (200, {"model_version": mv(4)}),
               # MLflow 3: 400 INVALID_PARAMETER_VALUE for an unset alias, 404 without a registered model
               "challenger": (400, {"error_code": "INVALID_PARAMETER_VALUE",
                                    "message": "Registered model alias challenger not found."}),
               "other": (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"})}
    server.api("registered-models/alias", lambda q: answers[q["alias"]])
    client = registry(server)
    assert client.alias_version("champion") == "4" and client.alias("champion")["run_id"] == "run-4"
    assert client.alias_version("challenger") is None and client.alias_version("other") is None
    assert [p for p, _ in server.requests].count("/health") == 1  # one ping per client, as the mlflow path


def test_an_error_mlflow_answers_with_is_a_service_error(server):
    server.api("registered-models/get", (403, {"error_code": "PERMISSION_DENIED", "message": "no"}))
    with pytest.raises(ServiceError, match=f"listing {NAME}: MLflow said PERMISSION_DENIED: no"):
        registry(server).list_versions()
    server.api("registered-models/alias", (400, {"error_code": "BAD_REQUEST", "message": "odd"}))
    with pytest.raises(ServiceError, match="reading alias champion: MLflow said BAD_REQUEST"):
        registry(server).alias_version("champion")


def test_a_missing_thing_elsewhere_is_not_found(server):
    server.api("registered-models/get", (200, {"registered_model": {"name": NAME}}))
    server.api("model-versions/search", (404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "gone"}))
    with pytest.raises(NotFoundError, match="gone"):
        registry(server).list_versions()


@pytest.mark.parametrize("answer", [(500, {"error_code": "INTERNAL_ERROR", "message": "boom"}),  # retried, then failed
                                    (502, "<html>bad gateway</html>"), (200, "not json")])
def test_a_failed_request_is_unavailable(server, answer):
    server.api("registered-models/get", answer)
    with pytest.raises(UnavailableError, match=f"listing {NAME}: MLflow at .* did not answer"):
        registry(server).list_versions()


def test_silence_is_unavailable_within_the_timeout(server):
    server.api("registered-models/get", ("hang", 3.0))
    started = time.monotonic()
    with pytest.raises(UnavailableError, match="did not answer: .*timed out"):
        registry(server, timeout=0.5).list_versions()
    assert time.monotonic() - started < 2.5


def test_a_server_that_is_not_there_fails_the_ping_as_the_mlflow_path_does():
    with pytest.raises(UnavailableError, match=r"MLflow at http://127.0.0.1:1 is not reachable \(.*refused"):
        rest.RestRegistry("http://127.0.0.1:1", NAME).list_versions()


def test_the_rest_client_imports_neither_mlflow_nor_pandas():
    code = ("import sys; import fraudctl.model.registry.rest, fraudctl.operate.overview, fraudctl.model.workflows; "
            "print(sorted(m for m in ('mlflow', 'pandas', 'numpy', 'pyarrow', 'httpx') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
