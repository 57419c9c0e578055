"""What `up` promises beyond healthy services, done the same way by both runtimes once every service is
healthy: the configured Kafka topics (broker auto-creation is off in both) and the bucket of the stack's own
object store (the native objectstore, or MinIO under compose). Both steps are idempotent and run from the
host against the published endpoints, so the native and the compose stack cannot drift apart here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from fraudctl.config import Config
    from fraudctl.stack.secrets import Secrets


def steps(config: "Config", secrets: "Secrets | None" = None) -> list[tuple[str, Callable[[], object]]]:
    """(description, action) in order; the secrets are the runtime's own when it has them at hand."""
    from fraudctl.clients import kafka, objectstore

    found: list[tuple[str, Callable[[], object]]] = [
        (f"Kafka topics at {config.kafka.bootstrap_servers}", lambda: kafka.ensure_topics(config)),
    ]
    if objectstore.stack_store(config):
        storage = objectstore.effective_storage(config, secrets)
        found.append((f"bucket {storage.bucket} at {storage.endpoint_url}", lambda: objectstore.ensure_bucket(storage)))
    return found


def provision(config: "Config", secrets: "Secrets | None" = None) -> list[str]:
    """Run every step; a failure is a ServiceFailedError naming the step. Returns what was ensured."""
    from fraudctl.errors import FraudctlError, ServiceFailedError

    done = []
    for what, action in steps(config, secrets):
        try:
            action()
        except FraudctlError:
            raise
        except Exception as exc:  # boto3's and librdkafka's own errors
            raise ServiceFailedError(f"`up` could not create the {what}: {exc}",
                                     hint="the service is healthy but refused the request; see `fraudctl logs`") from None
        done.append(what)
    return done
