"""A plain HTTP GET over the standard library, for the clients the operator's views poll (Flower, Airflow's
health): urllib costs nothing to import, where httpx costs ~0.2 s of every `fraudctl status`."""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request


def get(url: str, *, params: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
        timeout: float) -> tuple[int, str]:
    """(status, body) of a GET; any status is an answer. OSError (refused, timed out, DNS) when there is none."""
    if params:
        url += "?" + urllib.parse.urlencode(params)
    headers = {"Accept": "application/json"}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode("utf-8", "replace")
