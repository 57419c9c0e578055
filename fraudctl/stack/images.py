"""The compose runtime's images: every fraudctl/* image is built by the project from one base image.

The chain, all on the machine that runs `fraudctl up`:

1. `compose.base_image` (default debian:bookworm-slim): used when present, else pulled; where no image
   registry answers (an air-gapped site, a network that only reaches package mirrors), made from Debian's
   packages with `debootstrap --variant=minbase` and `docker import`ed under that same name, so the next `up`
   finds it. This happens automatically, with a progress message, because the alternative (a documented
   manual step) fails the very first `up` of a new user on such a machine; the image is labelled
   `io.fraudctl.made-by=debootstrap` so it is never mistaken for the registry's.
2. `fraudctl/base:bookworm` (stack/images/base/Dockerfile): that base plus the CA certificates of
   `compose.ca_bundle`, trusted by apt, pip and Java alike. Built in a private context, so the bundle never
   has to sit in the source tree.
3. The stack's images (stack/images/*/Dockerfile, built by `docker compose build` one after another:
   on 2 cores parallel builds only fight over the CPU, and sequential builds share the cached layers that
   the Dockerfiles have in common).

A second `up` builds nothing (every image present); `up --build` asks the builder again, which reuses every
cached layer up to the first one whose input changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from fraudctl.config import Config
from fraudctl.errors import ConfigError, PrerequisiteError, ServiceFailedError

IMAGES_DIR = Path(__file__).resolve().parents[2] / "stack" / "images"
BASE_DOCKERFILE = IMAGES_DIR / "base" / "Dockerfile"
BASE_TAG = "fraudctl/base:bookworm"  # what stack/images/*/Dockerfile start FROM (ARG FRAUDCTL_BASE)
DEBIAN_RELEASE = "bookworm"  # the images install bookworm's python3.11, postgresql-15, openjdk-17
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MADE_BY_LABEL = "io.fraudctl.made-by"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))

Say = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


def docker_client(timeout: int = 600):
    import docker

    return docker.from_env(timeout=timeout)


def image_present(client, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


# --- the host's apt sources -------------------------------------------------------------------------------

def apt_sources(roots: tuple[Path, ...] = APT_SOURCES) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled `deb` source of the host, one-line and deb822 formats alike."""
    files: list[Path] = []
    for root in roots:
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files += sorted(p for p in root.iterdir() if p.suffix in (".list", ".sources"))
    found = []
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.split()
                if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"])[0].lower() == "no":
                    continue
                for uri in fields.get("uris", []):
                    found.append((uri, fields.get("suites", [])))
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 3 and words[0] == "deb":
                    found.append((words[1], [words[2]]))
    return found


def debian_sources(config: Config, sources: list[tuple[str, list[str]]] | None = None) -> tuple[str, list[str]]:
    """The mirror to bootstrap from and the apt source lines the made image keeps: compose.debian_mirror, else
    the host's Debian mirror for the release (with its -updates and -security sources), else Debian's own."""
    sources = apt_sources() if sources is None else sources
    release = DEBIAN_RELEASE
    mirror = config.compose.debian_mirror
    if mirror is None:
        mirror = next((uri for uri, suites in sources if release in suites), DEFAULT_MIRROR)
    mirror = mirror.rstrip("/")
    lines = [f"deb {mirror} {release} main", f"deb {mirror} {release}-updates main"]
    security = next((uri for uri, suites in sources if f"{release}-security" in suites), None)
    if security is None and mirror == DEFAULT_MIRROR:
        security = DEFAULT_MIRROR + "-security"
    if security:
        lines.append(f"deb {security.rstrip('/')} {release}-security main")
    return mirror, lines


# --- 1. the base image ------------------------------------------------------------------------------------

def ensure_base_image(client, config: Config, say: Say = _quiet) -> str:
    """compose.base_image present locally, pulled, or made from Debian's packages. Returns which."""
    name = config.compose.base_image
    if image_present(client, name):
        return "present"
    say(f"base image {name}: not present, pulling")
    try:
        client.images.pull(name)
        return "pulled"
    except Exception as exc:  # the registry does not resolve, refuses, or has no such image
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    mirror, lines = debian_sources(config)
    say(f"base image {name}: cannot be pulled ({reason}); making it from Debian's packages "
        f"(debootstrap {DEBIAN_RELEASE} from {mirror}, about 2 minutes)")
    make_base_image(client, name, mirror, lines)
    say(f"base image {name}: made from Debian's packages and imported")
    return "debootstrapped"


def make_base_image(client, name: str, mirror: str, source_lines: list[str]) -> None:
    """`debootstrap --variant=minbase` of DEBIAN_RELEASE from `mirror`, imported as `name`."""
    if os.geteuid() != 0:
        raise PrerequisiteError(
            f"the base image {name} is not present and cannot be pulled, and making it from Debian's packages "
            "(debootstrap) needs root",
            hint=f"run `fraudctl up` as root once, `docker load` an image named {name}, or set compose.base_image "
                 "to an image your registry serves")
    debootstrap = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if Path(p).is_file()), None)
    if debootstrap is None:
        raise PrerequisiteError(
            f"the base image {name} is not present and cannot be pulled; making it from Debian's packages needs "
            "debootstrap", hint="apt-get install debootstrap (or set compose.base_image to an image you have)")
    from docker.utils import parse_repository_tag

    with tempfile.TemporaryDirectory(prefix="fraudctl-base-", dir="/var/tmp") as tmp:
        root = Path(tmp) / "rootfs"
        result = subprocess.run([debootstrap, "--variant=minbase", "--components=main", DEBIAN_RELEASE, str(root), mirror],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise ServiceFailedError(f"debootstrap {DEBIAN_RELEASE} from {mirror} failed",
                                     detail=(result.stdout + result.stderr)[-3000:],
                                     hint="set compose.debian_mirror to a Debian mirror this machine reaches")
        (root / "etc" / "apt" / "sources.list").write_text("\n".join(source_lines) + "\n")
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (root / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        for path in (root / "var/cache/apt").glob("*.bin"):
            path.unlink()
        archive = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(archive), "."], check=True)
        repository, tag = parse_repository_tag(name)
        client.api.import_image_from_file(
            str(archive), repository=repository, tag=tag or "latest",
            changes=['CMD ["bash"]', "ENV LANG=C.UTF-8",
                     f'LABEL {MADE_BY_LABEL}=debootstrap io.fraudctl.debian-mirror="{mirror}"'])


# --- 2. fraudctl/base: the base and the CA bundle ---------------------------------------------------------

def ca_bundle_bytes(config: Config) -> bytes:
    """compose.ca_bundle's certificates (b"" when unset). A relative path is taken from the config file's folder."""
    path = config.compose.ca_bundle
    if path is None:
        return b""
    path = path.expanduser()
    if not path.is_absolute():
        path = (config.source.parent if config.source else Path.cwd()) / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"compose.ca_bundle: cannot read {path}: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(f"compose.ca_bundle: {path} holds no PEM certificate")
    return data


def build_base(client, config: Config) -> str:
    """fraudctl/base from compose.base_image and compose.ca_bundle; cached layers make a repeat cost ~1 s."""
    import docker

    with tempfile.TemporaryDirectory(prefix="fraudctl-base-context-") as tmp:
        shutil.copy(BASE_DOCKERFILE, Path(tmp) / "Dockerfile")
        (Path(tmp) / "ca-bundle.crt").write_bytes(ca_bundle_bytes(config))
        try:
            image, _ = client.images.build(path=tmp, tag=BASE_TAG, buildargs={"BASE_IMAGE": config.compose.base_image},
                                           rm=True, forcerm=True, pull=False)
        except docker.errors.BuildError as exc:
            log = "".join(str(chunk.get("stream") or chunk.get("error") or "") for chunk in exc.build_log)
            raise ServiceFailedError(f"building {BASE_TAG} from {config.compose.base_image} failed",
                                     detail=log[-3000:]) from None
    return image.id
