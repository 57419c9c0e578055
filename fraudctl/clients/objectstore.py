"""The object store: which S3 endpoint and keys fraudctl's storage uses, and a real probe of it.

With `storage.kind: s3` and `storage.endpoint_url: null`, the native runtime runs its own S3 server (S3Proxy,
the `objectstore` service, on storage.host:storage.port) and everything that stores objects uses it, with the
keys generated into the state dir's secrets.json on first `up` (or storage.access_key_id/secret_access_key
when set). `storage.objectstore: false` turns that off: a null endpoint then means AWS and its default
credential chain. A set `endpoint_url` (MinIO, a managed S3, AWS) is always used as given.

Every S3 client fraudctl builds takes its settings from `effective_storage(config)`, never from
`config.storage` directly.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fraudctl.errors import UnavailableError

if TYPE_CHECKING:
    from fraudctl.config import Config, StorageConfig
    from fraudctl.stack.secrets import Secrets

SERVICE = "objectstore"
PROBE_TIMEOUT = 3.0

# S3-compatible servers (S3Proxy among them) refuse the checksum trailers that newer AWS SDKs (boto3 >= 1.36,
# the C++ SDK inside pyarrow) send by default; "when_required" is what S3 itself accepts too.
CHECKSUM_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}


def stack_store(config: "Config") -> bool:
    """Whether the storage is the stack's own S3 server: the native objectstore (S3Proxy) or, under compose,
    MinIO, both published on storage.host:storage.port with keys generated on the first `up`."""
    from fraudctl.stack import active_kind

    storage = config.storage
    if storage.kind != "s3" or storage.endpoint_url is not None:
        return False
    return storage.objectstore or active_kind(config) == "compose"


def uses_objectstore(config: "Config") -> bool:
    """Whether the storage is the native runtime's own S3 server (the `objectstore` service)."""
    from fraudctl.stack import active_kind

    return stack_store(config) and config.storage.objectstore and active_kind(config) == "native"


def endpoint_url(config: "Config") -> str:
    return f"http://{config.storage.host}:{config.storage.port}"


def effective_storage(config: "Config", secrets: "Secrets | None" = None) -> "StorageConfig":
    """config.storage with the endpoint and keys filled in when they are the stack's own store's (read
    through the active runtime: the native objectstore's, or MinIO's under compose)."""
    storage = config.storage
    if not stack_store(config):
        return storage
    if secrets is None:
        from fraudctl.stack.secrets import load_secrets

        secrets = load_secrets(config, create=False)
    update: dict[str, Any] = {"endpoint_url": endpoint_url(config)}
    if secrets is not None:
        from pydantic import SecretStr

        update["access_key_id"] = SecretStr(secrets.objectstore_access_key)
        update["secret_access_key"] = SecretStr(secrets.objectstore_secret_key)
    return storage.model_copy(update=update)


def describe(storage: "StorageConfig") -> str:
    """How an error names the store: the service and its endpoint."""
    return f"the object store ({SERVICE}) at {storage.endpoint_url}" if storage.endpoint_url else "AWS S3"


def relax_checksums() -> None:
    """Before any S3 client is built in this process: no checksum trailers (see CHECKSUM_ENV)."""
    for name, value in CHECKSUM_ENV.items():
        os.environ.setdefault(name, value)


def client(storage: "StorageConfig", timeout: float = PROBE_TIMEOUT):
    """A boto3 S3 client for the storage's endpoint and keys, failing fast (no retries)."""
    import boto3
    from botocore.config import Config as BotoConfig

    relax_checksums()
    kwargs: dict[str, Any] = {"region_name": storage.region}
    if storage.endpoint_url:
        kwargs["endpoint_url"] = storage.endpoint_url
    if storage.access_key_id and storage.secret_access_key:
        kwargs["aws_access_key_id"] = storage.access_key_id.get_secret_value()
        kwargs["aws_secret_access_key"] = storage.secret_access_key.get_secret_value()
    return boto3.client("s3", config=BotoConfig(connect_timeout=timeout, read_timeout=timeout,
                                                retries={"max_attempts": 1},
                                                request_checksum_calculation="when_required",
                                                response_checksum_validation="when_required"), **kwargs)


def probe(storage: "StorageConfig", *, bucket: bool = True) -> str:
    """An authenticated S3 call (head-bucket, or list-buckets before the bucket exists): raises
    UnavailableError naming the store when it does not answer or refuses the keys."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client(storage)
    try:
        if bucket:
            s3.head_bucket(Bucket=storage.bucket)
            return f"bucket {storage.bucket} reachable"
        count = len(s3.list_buckets().get("Buckets", []))
        return f"S3 API answers, {count} bucket(s)"
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code") or str(exc)
        if bucket and code in ("404", "NoSuchBucket", "NotFound"):
            raise UnavailableError(f"{describe(storage)} has no bucket {storage.bucket}",
                                   hint="`fraudctl up` creates it") from None
        raise UnavailableError(f"{describe(storage)} refused the request ({code})",
                               hint="check storage.access_key_id/secret_access_key") from None
    except (BotoCoreError, OSError) as exc:
        raise UnavailableError(f"{describe(storage)} is unavailable: {exc}",
                               hint="`fraudctl status` shows whether the objectstore service runs; `fraudctl up`"
                               ) from None


def ensure_bucket(storage: "StorageConfig") -> None:
    """Create the configured bucket unless it exists (idempotent)."""
    from botocore.exceptions import ClientError

    s3 = client(storage, timeout=10.0)
    try:
        s3.head_bucket(Bucket=storage.bucket)
        return
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    s3.create_bucket(Bucket=storage.bucket)


def ping(config: "Config") -> None:
    """Before work that stores objects in the native objectstore: fail in seconds, naming it, when it is
    not there (an external S3 is left to its own errors: its keys may not allow head-bucket)."""
    if uses_objectstore(config):
        probe(effective_storage(config))
