"""The stack's secrets: what they are, how each is generated, and where a configured value wins.

Each runtime keeps them where it can use them and answers for them (`Runtime.secrets()`): the native runtime
in the state directory (secrets.json, mode 0600, `load_file` below), the compose runtime in the untracked
`stack/.env` (mode 0600) that compose interpolates. Both are generated on the first `up` and hold the same
secrets under the names below, so a host command (`workers`, `retrain`, the lake, ...) asks its runtime and
works against either stack. A value set in the configuration (file or FRAUDCTL_*
variable) wins over the generated one, so an operator can bring their own; nothing has a default password.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _random
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fraudctl.config import Config, value_at

SECRETS_FILE = "secrets.json"


@dataclass(frozen=True)
class Secrets:
    postgres_superuser_password: str
    postgres_password: str
    redis_password: str
    airflow_admin_password: str
    airflow_jwt_secret: str
    airflow_api_secret_key: str
    airflow_fernet_key: str
    flower_password: str
    objectstore_access_key: str  # the stack's S3 keys: its objectstore's (S3Proxy) in either runtime
    objectstore_secret_key: str


# Each secret's name in stack/.env (compose) and the config field that wins when set (None: generated only).
# One table, so the two runtimes cannot disagree on what a secret is called or where it may come from.
SOURCES: dict[str, tuple[str, str | None]] = {
    "postgres_superuser_password": ("POSTGRES_SUPERUSER_PASSWORD", None),  # only creates the app role
    "postgres_password": ("POSTGRES_PASSWORD", "postgres.password"),  # the app role, owner of both databases
    "redis_password": ("REDIS_PASSWORD", "redis.password"),
    "airflow_admin_password": ("AIRFLOW_ADMIN_PASSWORD", "airflow.admin_password"),
    "airflow_jwt_secret": ("AIRFLOW_JWT_SECRET", None),  # [api_auth] jwt_secret, shared by every component
    "airflow_api_secret_key": ("AIRFLOW_API_SECRET_KEY", None),  # [api] secret_key, shared likewise
    "airflow_fernet_key": ("AIRFLOW_FERNET_KEY", None),
    "flower_password": ("FLOWER_PASSWORD", "flower.password"),
    "objectstore_access_key": ("OBJECTSTORE_ACCESS_KEY", "storage.access_key_id"),
    "objectstore_secret_key": ("OBJECTSTORE_SECRET_KEY", "storage.secret_access_key"),
}


def fernet_key() -> str:
    """What cryptography's Fernet.generate_key() returns, without importing it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def generate(name: str) -> str:
    """A new value for the secret `name` (a Secrets field): URL-safe, so it fits in connection URLs."""
    if name == "airflow_fernet_key":
        return fernet_key()
    if name == "objectstore_access_key":
        return "fraudctl" + _random.token_hex(8)
    if name in ("airflow_jwt_secret", "airflow_api_secret_key"):
        return _random.token_urlsafe(32)
    return _random.token_urlsafe(24)  # 32 characters


def configured(config: Config) -> dict[str, str]:
    """The secrets the configuration sets, by Secrets field."""
    found = {}
    for name, (_, dotted) in SOURCES.items():
        value = value_at(config, dotted) if dotted else None
        if value is not None:
            found[name] = value.get_secret_value()
    return found


def write_private(path: Path, text: str) -> None:
    """Write a file that holds secrets: created owner-only (0600), never readable by others in between."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def load_file(path: Path, config: Config, *, create: bool) -> Secrets | None:
    """The secrets kept in the JSON file `path`; generated and saved (0600) on first use when `create`, else
    None when the file does not exist. Configured values win over stored ones."""
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    elif not create:
        return None
    missing = [f.name for f in fields(Secrets) if f.name not in stored]
    if missing:
        for name in missing:
            stored[name] = generate(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(stored, indent=2))
    stored.update(configured(config))
    return Secrets(**{f.name: stored[f.name] for f in fields(Secrets)})


# The stack's secrets a job started by fraudctl (the scorer) gets in its launch file even when the config
# leaves them null: the application role's password, for the rule store in PostgreSQL.
JOB_SECRETS = ("postgres_password",)


def config_with_secrets(config: Config, secrets: Secrets | None = None) -> dict[str, Any]:
    """The config as plain JSON data with the real secret values (model_dump masks SecretStr): what a job
    started by fraudctl (the scorer) reads from its launch file. With the stack's `secrets`, JOB_SECRETS too."""
    from pydantic import SecretStr

    data = config.model_dump(mode="json")
    for section_name in type(config).model_fields:
        section = getattr(config, section_name)
        for key in getattr(type(section), "model_fields", {}):
            value = getattr(section, key)
            if isinstance(value, SecretStr):
                data[section_name][key] = value.get_secret_value()
    for name in JOB_SECRETS if secrets is not None else ():
        section_name, key = SOURCES[name][1].split(".")
        data[section_name][key] = getattr(secrets, name)
    return data
