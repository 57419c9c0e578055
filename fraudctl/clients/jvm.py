"""JVM artifacts resolved by Maven from the poms under stack/native/jvm into a cache folder.

The cache key is a hash of the pom (and profiles), so editing a pom resolves again while `down --purge`
keeps the jars. Maven's own ~/.m2 makes a re-resolution cheap.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from fraudctl.errors import ServiceFailedError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JVM_DIR = PROJECT_ROOT / "stack" / "native" / "jvm"
KAFKA_POM = JVM_DIR / "kafka" / "pom.xml"
SPARK_POM = JVM_DIR / "spark" / "pom.xml"
S3PROXY_POM = JVM_DIR / "s3proxy" / "pom.xml"
# Logging of the Kafka broker and S3Proxy, for both runtimes (the compose runtime's fraudctl/jvm image copies them).
KAFKA_LOG4J = JVM_DIR / "kafka" / "log4j2.yaml"
S3PROXY_LOGBACK = JVM_DIR / "s3proxy" / "logback.xml"
ENV_CACHE_DIR = "FRAUDCTL_CACHE_DIR"  # not a config key: shared by every state dir on the machine


def cache_root() -> Path:
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fraudctl" / "jars"


def jar_dir(pom: Path, profiles: tuple[str, ...] = ()) -> Path:
    digest = hashlib.sha256(pom.read_bytes() + ",".join(profiles).encode()).hexdigest()[:12]
    return cache_root() / f"{pom.parent.name}-{digest}"


def resolve(pom: Path, profiles: tuple[str, ...] = (), mvn: str = "mvn") -> Path:
    """The folder holding the pom's runtime jars, resolved now if not cached."""
    target = jar_dir(pom, profiles)
    marker = target / ".complete"
    if marker.exists():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
               f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
    if profiles:
        command.append("-P" + ",".join(profiles))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not any(staging.glob("*.jar")):
        raise ServiceFailedError(
            f"Maven could not resolve {pom.relative_to(PROJECT_ROOT)}",
            detail=(result.stdout + result.stderr)[-3000:],
            hint="check that Maven Central is reachable (mvn -B dependency:get) and the versions in the pom exist",
        )
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    marker.touch()
    return target
