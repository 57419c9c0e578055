"""Whether a Docker engine answers: what `runtime.kind: auto` and the compose runtime ask first."""

from __future__ import annotations


def docker_engine_problem(timeout: float = 2.0) -> str | None:
    """Why the Docker engine of the SDK's environment (DOCKER_HOST, else the default socket) does not
    answer a ping, or None when it does."""
    try:
        import docker

        docker.from_env(timeout=timeout).ping()
        return None
    except Exception as exc:  # the SDK raises DockerException, requests' and OS errors alike
        return str(exc)


def docker_engine_answers(timeout: float = 2.0) -> bool:
    return docker_engine_problem(timeout) is None
