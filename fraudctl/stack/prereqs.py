"""Programs the native runtime needs, found up front and reported together with how to install each."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from fraudctl.errors import PrerequisiteError

MIN_JAVA = 17


@dataclass(frozen=True)
class Tools:
    java: Path
    mvn: Path
    postgres_bin: Path  # the folder with postgres and initdb
    redis_server: Path
    postgres_user: str | None  # the unprivileged account PostgreSQL runs as when we are root


def _java() -> tuple[Path | None, str]:
    home = os.environ.get("JAVA_HOME")
    candidate = Path(home) / "bin" / "java" if home else None
    if not (candidate and candidate.is_file()):
        found = shutil.which("java")
        candidate = Path(found) if found else None
    if candidate is None:
        return None, "not found"
    out = subprocess.run([str(candidate), "-version"], capture_output=True, text=True).stderr
    match = re.search(r'version "(\d+)', out)
    major = int(match.group(1)) if match else 0
    if major < MIN_JAVA:
        return None, f"{candidate} is Java {major or '?'}, need {MIN_JAVA}+"
    return candidate, ""


def _postgres_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    on_path = shutil.which("postgres")
    if on_path:
        candidates.insert(0, str(Path(on_path).resolve().parent))
    for folder in candidates:
        if (Path(folder) / "postgres").is_file() and (Path(folder) / "initdb").is_file():
            return Path(folder)
    return None


def check_native() -> Tools:
    """Find every prerequisite or raise one PrerequisiteError naming all that are missing."""
    problems: list[str] = []
    java, why = _java()
    if java is None:
        problems.append(f"Java {MIN_JAVA}+ ({why}): apt-get install openjdk-17-jre-headless, or set JAVA_HOME")
    mvn = shutil.which("mvn")
    if mvn is None:
        problems.append("Maven (mvn, resolves the Kafka broker jars): apt-get install maven")
    pg_bin = _postgres_bin()
    if pg_bin is None:
        problems.append("PostgreSQL server (postgres, initdb): apt-get install postgresql")
    redis = shutil.which("redis-server")
    if redis is None:
        problems.append("Redis server (redis-server): apt-get install redis-server")
    pg_user = None
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root; the Debian package creates this account.
        import pwd

        try:
            pg_user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            problems.append("an unprivileged 'postgres' account (PostgreSQL refuses to run as root): "
                            "apt-get install postgresql, or useradd --system postgres")
    if problems:
        raise PrerequisiteError(
            "missing prerequisites for the native runtime:\n  - " + "\n  - ".join(problems),
            hint="install them (the README's install step does), or use --runtime compose on a machine with Docker",
        )
    return Tools(java=java, mvn=Path(mvn), postgres_bin=pg_bin, redis_server=Path(redis), postgres_user=pg_user)
