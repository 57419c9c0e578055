"""Secrets generated on first `up` and kept in the state directory (secrets.json, mode 0600).

A value set in the configuration (file or FRAUDCTL_* variable) wins over the generated one, so an operator
can bring their own; nothing has a default password.
"""

from __future__ import annotations

import base64
import json
import os
import secrets as _random
from dataclasses import dataclass, fields
from pathlib import Path

from fraudctl.config import Config

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
    objectstore_access_key: str  # the native objectstore's S3 keys (fraudctl.objectstore)
    objectstore_secret_key: str


def fernet_key() -> str:
    """What cryptography's Fernet.generate_key() returns, without importing it."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def write_private(path: Path, text: str) -> None:
    """Write a file that holds secrets: created owner-only (0600), never readable by others in between."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


_GENERATORS = {f.name: (lambda: _random.token_urlsafe(24)) for f in fields(Secrets)}
_GENERATORS["airflow_fernet_key"] = fernet_key
_GENERATORS["objectstore_access_key"] = lambda: "fraudctl" + _random.token_hex(8)

# Secrets an operator may set in the configuration instead.
_FROM_CONFIG = {
    "postgres_password": lambda c: c.postgres.password,
    "redis_password": lambda c: c.redis.password,
    "airflow_admin_password": lambda c: c.airflow.admin_password,
    "flower_password": lambda c: c.flower.password,
    "objectstore_access_key": lambda c: c.storage.access_key_id,
    "objectstore_secret_key": lambda c: c.storage.secret_access_key,
}


def secrets_path(config: Config) -> Path:
    return config.state_dir / SECRETS_FILE


def load_secrets(config: Config, *, create: bool = True) -> Secrets | None:
    """The stack's secrets; generated and saved (0600) on first use when `create`."""
    path = secrets_path(config)
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    elif not create:
        return None
    missing = [f.name for f in fields(Secrets) if f.name not in stored]
    if missing:
        for name in missing:
            stored[name] = _GENERATORS[name]()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(stored, indent=2))
    for name, getter in _FROM_CONFIG.items():
        configured = getter(config)
        if configured is not None:
            stored[name] = configured.get_secret_value()
    return Secrets(**{f.name: stored[f.name] for f in fields(Secrets)})
