"""fraudctl_smoke: two trivial tasks that prove the scheduler, the Celery worker and XCom work."""

from __future__ import annotations

import socket
from datetime import timedelta

from airflow.sdk import dag, task

DEFAULT_ARGS = {"retries": 1, "retry_delay": timedelta(seconds=10), "owner": "fraudctl"}


@dag(schedule=None, catchup=False, tags=["fraudctl", "smoke"], default_args=DEFAULT_ARGS,
     doc_md=__doc__)
def fraudctl_smoke():
    @task
    def where() -> str:
        return socket.gethostname()

    @task
    def check(host: str) -> str:
        if not host:
            raise ValueError("the first task returned no hostname")
        return f"ran on {host}"

    check(where())


fraudctl_smoke()
