"""What `up` promises beyond healthy services, done the same way by both runtimes once every service is
healthy: the configured Kafka topics (broker auto-creation is off in both) and the bucket of the stack's own
object store (the objectstore, S3Proxy, in either runtime). Both steps are idempotent and run from the
host against the published endpoints, so the native and the compose stack cannot drift apart here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from fraudctl.config import Config, StorageConfig


def steps(config: "Config", own_store: "StorageConfig | None") -> list[tuple[str, Callable[[], object]]]:
    """(description, action) in order; `own_store`: the stack's own S3 server as the host reaches it (its
    bucket is created), None when the storage is not the stack's (an external S3 keeps its own buckets)."""
    from fraudctl.clients import kafka, objectstore

    found: list[tuple[str, Callable[[], object]]] = [
        (f"Kafka topics at {config.kafka.bootstrap_servers}", lambda: kafka.ensure_topics(config)),
    ]
    if own_store is not None:
        found.append((f"bucket {own_store.bucket} at {own_store.endpoint_url}",
                      lambda: objectstore.ensure_bucket(own_store)))
    return found


def provision(config: "Config", own_store: "StorageConfig | None") -> list[str]:
    """Run every step; a failure is a ServiceFailedError naming the step. Returns what was ensured."""
    from fraudctl.errors import FraudctlError, ServiceFailedError

    done = []
    for what, action in steps(config, own_store):
        try:
            action()
        except FraudctlError:
            raise
        except Exception as exc:  # boto3's and librdkafka's own errors
            raise ServiceFailedError(f"`up` could not create the {what}: {exc}",
                                     hint="the service is healthy but refused the request; see `fraudctl logs`") from None
        done.append(what)
    return done
