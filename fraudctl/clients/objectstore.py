"""An S3 object store, given its settings: clients, a real probe, the bucket, the environment boto3 and
MLflow read. Which endpoint and keys those settings hold (the stack's own S3 server and its generated keys, or
any S3 the config names) is the runtime's answer (`Runtime.storage()`), never this module's.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fraudctl.errors import UnavailableError

if TYPE_CHECKING:
    from fraudctl.config import StorageConfig

SERVICE = "objectstore"
PROBE_TIMEOUT = 3.0

# S3-compatible servers (S3Proxy among them) refuse the checksum trailers that newer AWS SDKs (boto3 >= 1.36,
# the C++ SDK inside pyarrow) send by default; "when_required" is what S3 itself accepts too.
CHECKSUM_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "when_required",
                "AWS_RESPONSE_CHECKSUM_VALIDATION": "when_required"}


def environment(storage: "StorageConfig") -> dict[str, str]:
    """What boto3 (and MLflow's S3 artifact store) read to reach `storage`: endpoint, region, keys, checksums.
    Empty for local storage."""
    if storage.kind != "s3":
        return {}
    env = {"AWS_DEFAULT_REGION": storage.region, **CHECKSUM_ENV}
    if storage.endpoint_url:
        env["MLFLOW_S3_ENDPOINT_URL"] = storage.endpoint_url
        env["AWS_ENDPOINT_URL_S3"] = storage.endpoint_url
    if storage.access_key_id:
        env["AWS_ACCESS_KEY_ID"] = storage.access_key_id.get_secret_value()
    if storage.secret_access_key:
        env["AWS_SECRET_ACCESS_KEY"] = storage.secret_access_key.get_secret_value()
    return env


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


def probe(storage: "StorageConfig", *, bucket: bool = True, timeout: float = PROBE_TIMEOUT) -> str:
    """An authenticated S3 call (head-bucket, or list-buckets before the bucket exists): raises
    UnavailableError naming the store when it does not answer or refuses the keys."""
    try:
        if storage.endpoint_url and storage.access_key_id and storage.secret_access_key:
            code, count = _signed_probe(storage, bucket, timeout)
        else:  # AWS's own credential chain: boto3 knows it
            code, count = _boto_probe(storage, bucket, timeout)
    except OSError as exc:
        raise UnavailableError(f"{describe(storage)} is unavailable: {exc}",
                               hint="`fraudctl status` shows whether the objectstore service runs; `fraudctl up`"
                               ) from None
    if code is None:
        return f"bucket {storage.bucket} reachable" if bucket else f"S3 API answers, {count} bucket(s)"
    if bucket and code in ("404", "NoSuchBucket", "NotFound"):
        raise UnavailableError(f"{describe(storage)} has no bucket {storage.bucket}",
                               hint="`fraudctl up` creates it")
    raise UnavailableError(f"{describe(storage)} refused the request ({code})",
                           hint="check storage.access_key_id/secret_access_key")


def _signed_probe(storage: "StorageConfig", bucket: bool, timeout: float) -> tuple[str | None, int]:
    """HEAD /bucket or GET / signed with AWS Signature V4 over urllib: (error code or None, buckets listed).
    What the status view asks every refresh, without importing boto3 (~0.6 s of CPU)."""
    import datetime as dt
    import hashlib
    import hmac
    import re
    import urllib.error
    import urllib.parse
    import urllib.request

    method, path = ("HEAD", f"/{urllib.parse.quote(storage.bucket)}") if bucket else ("GET", "/")
    host = urllib.parse.urlsplit(storage.endpoint_url).netloc
    now = dt.datetime.now(dt.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    empty = hashlib.sha256(b"").hexdigest()
    headers = {"host": host, "x-amz-content-sha256": empty, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, empty])
    scope = f"{day}/{storage.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + storage.secret_access_key.get_secret_value()).encode()
    for part in (day, storage.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (f"AWS4-HMAC-SHA256 Credential={storage.access_key_id.get_secret_value()}/{scope}, "
                     f"SignedHeaders={signed}, Signature={signature}")
    request = urllib.request.Request(storage.endpoint_url.rstrip("/") + path, method=method, headers={
        "x-amz-content-sha256": empty, "x-amz-date": stamp, "Authorization": authorization})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return None, response.read().count(b"<Bucket>")
    except urllib.error.HTTPError as exc:
        found = re.search(rb"<Code>([^<]+)</Code>", exc.read() or b"")
        return (found.group(1).decode() if found else str(exc.code)), 0


def _boto_probe(storage: "StorageConfig", bucket: bool, timeout: float) -> tuple[str | None, int]:
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client(storage, timeout)
    try:
        if bucket:
            s3.head_bucket(Bucket=storage.bucket)
            return None, 0
        return None, len(s3.list_buckets().get("Buckets", []))
    except ClientError as exc:
        return exc.response.get("Error", {}).get("Code") or str(exc), 0
    except BotoCoreError as exc:
        raise OSError(str(exc)) from None


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
