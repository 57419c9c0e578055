"""The compose runtime's secrets file (`stack/.env`, 0600): which secrets it holds, how it is created once
and only ever completed, and how a configured secret must look to be used unescaped in URLs and the file."""

from __future__ import annotations

import os
import re
from pathlib import Path

from fraudctl.config import Config, value_at
from fraudctl.errors import ConfigError
from fraudctl.stack.secrets import SOURCES, Secrets, generate

# Every secret stack/.env holds and the config field that wins when set (fraudctl.stack.secrets.SOURCES, shared
# with the native runtime). A config secret is used as-is in connection URLs and in .env, hence the rule.
SECRETS: dict[str, str | None] = {env: dotted for env, dotted in SOURCES.values()}
_FIELD_OF = {env: field for field, (env, _) in SOURCES.items()}
SAFE_SECRET = re.compile(r"^[A-Za-z0-9._~-]+$")  # URL-unreserved: safe in user:password@host and .env


def _configured_secrets(config: Config) -> dict[str, str]:
    """The secrets the config sets, by .env name, checked so they can go into URLs and .env unescaped."""
    found = {}
    for name, dotted in SECRETS.items():
        if dotted is None:
            continue
        value = value_at(config, dotted)
        if value is None:
            continue
        plain = value.get_secret_value()
        if not SAFE_SECRET.match(plain):
            raise ConfigError(
                f"{dotted}: the compose runtime puts this secret in connection URLs; "
                "use only letters, digits and . _ ~ -",
                hint="or leave it empty and fraudctl generates one",
            )
        found[name] = plain
    return found


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines ignored. Values are never quoted by fraudctl."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def ensure_env_file(path: Path, config: Config) -> dict[str, str]:
    """Create `path` with every secret on first use; afterwards only add missing ones. Returns the values.

    An existing value is never replaced: the databases and volumes were initialised with it. A config
    secret that disagrees with the file is an error rather than a silent choice between the two.
    """
    configured = _configured_secrets(config)
    existing = read_env_file(path) if path.exists() else {}

    for name, value in configured.items():
        if name in existing and existing[name] != value:
            raise ConfigError(
                f"{SECRETS[name]} differs from {name} in {path}, which the running stack was created with",
                hint=f"unset {SECRETS[name]}, or remove {path} together with the volumes (`fraudctl down --purge`)",
            )

    missing = {name: configured.get(name) or generate(_FIELD_OF[name]) for name in SECRETS if name not in existing}
    if not missing:
        return existing

    if path.exists():
        header = ""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.fchmod(fd, 0o600)  # a hand-made file may have been readable by others
    else:
        header = (
            "# fraudctl compose runtime secrets, generated on the first `up --runtime compose`.\n"
            "# Untracked (.gitignore), mode 0600. The volumes were initialised with these values:\n"
            "# remove this file only together with them (`fraudctl down --purge`).\n"
        )
        # O_EXCL: never clobber a file that appeared meanwhile; 0600 from the start, not after a chmod.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(header + "".join(f"{name}={value}\n" for name, value in missing.items()))
    return {**existing, **missing}


def secrets_from_env(values: dict[str, str], path: Path) -> Secrets:
    missing = [env for env in SECRETS if env not in values]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}", hint="`fraudctl up --runtime compose` adds them")
    return Secrets(**{field: values[env] for field, (env, _) in SOURCES.items()})
