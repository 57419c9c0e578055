"""The scorer reads its rules from the stack's PostgreSQL: the password reaches it in the launch file's
config (0600), as the objectstore's keys do, never in a process argument or a log line."""

from __future__ import annotations

import logging

from fraudctl.config import Config
from fraudctl.errors import UnavailableError
from fraudctl.rules.store import PostgresRuleStore
from fraudctl.stack.native import NativeRuntime


def test_the_native_launch_config_carries_the_generated_postgres_password(tmp_path):
    config = Config.model_validate({"runtime": {"kind": "native", "state_dir": str(tmp_path)},
                                    "storage": {"kind": "local"}})
    runtime = NativeRuntime(config)
    secrets = runtime.secrets(create=True)
    job = Config.model_validate(runtime.job_config())
    assert job.postgres.password.get_secret_value() == secrets.postgres_password
    assert secrets.postgres_password not in repr(job) and secrets.postgres_password not in str(job.model_dump())


def test_an_unreachable_store_names_where_not_the_password(caplog):
    config = Config.model_validate({"postgres": {"host": "127.0.0.1", "port": 1}})
    store = PostgresRuleStore(config.postgres, "s3cret-pw", timeout=1)
    caplog.set_level(logging.DEBUG)
    try:
        store.version()
    except UnavailableError as exc:
        message = exc.message + (exc.hint or "")
    else:
        raise AssertionError("a store on port 1 answered")
    assert "127.0.0.1:1" in message and "database fraudctl" in message
    assert "s3cret-pw" not in message and "s3cret-pw" not in caplog.text
