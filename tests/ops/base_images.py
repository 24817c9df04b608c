"""The stand-in base images: python:3.11-slim and postgres:16 made from Debian packages.

No registry can be reached on the test machines, so the images the project's files
name are built here from a bookworm debootstrap (images/build-rootfs.sh) and imported
into each test engine under those names. The root filesystems are cached, keyed by the
content of the recipe, so only the first run pays for debootstrap.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .hosts import DockerEngine, HostSetupError, exclusive_lock, run

RECIPE_DIR = Path(__file__).parent / "images"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
STAND_IN_LABEL = "riemann.tests.stand-in"

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_CHANGES = [
    f"ENV PATH={SYSTEM_PATH}",
    "ENV LANG=C.UTF-8",
    "ENV PYTHON_VERSION=3.11",
    'CMD ["python3"]',
]


def recipe_key() -> str:
    digest = hashlib.sha256()
    for recipe_file in sorted(RECIPE_DIR.iterdir()):
        digest.update(recipe_file.name.encode() + b"\0" + recipe_file.read_bytes())
    return digest.hexdigest()[:16]


def stand_in_rootfs(cache_dir: Path) -> Path:
    """The folder of python.tar and postgres.tar, built on first use."""
    key = recipe_key()
    rootfs_dir = cache_dir / "rootfs" / key
    with exclusive_lock(cache_dir / "rootfs.lock"):
        if not (rootfs_dir / "postgres.tar").exists():
            for stale in (cache_dir / "rootfs").glob("*"):
                shutil.rmtree(stale, ignore_errors=True)
            (cache_dir / "rootfs").mkdir(parents=True, exist_ok=True)
            run(
                ["sh", RECIPE_DIR / "build-rootfs.sh", rootfs_dir, DEBIAN_MIRROR],
                timeout=1200,
            )
    return rootfs_dir


def postgres_changes(rootfs_dir: Path) -> list[str]:
    server_bin = (rootfs_dir / "postgres-bindir").read_text().strip()
    return [
        f"ENV PATH={server_bin}:{SYSTEM_PATH}",
        "ENV PGDATA=/var/lib/postgresql/data",
        "ENV LANG=C.UTF-8",
        "VOLUME /var/lib/postgresql/data",
        "EXPOSE 5432",
        'ENTRYPOINT ["docker-entrypoint.sh"]',
        'CMD ["postgres"]',
    ]


def load_stand_in_images(
    engine: DockerEngine,
    rootfs_dir: Path,
    tags: tuple[str, ...] = ("python:3.11-slim", "postgres:16"),
) -> None:
    """Imports the stand-ins into an engine, unless it already has this version."""
    key = rootfs_dir.name
    images = {
        "python:3.11-slim": (rootfs_dir / "python.tar", PYTHON_CHANGES),
        "postgres:16": (rootfs_dir / "postgres.tar", postgres_changes(rootfs_dir)),
    }
    for tag in tags:
        tarball, changes = images[tag]
        present = engine.docker(
            "image", "inspect", "--format",
            f'{{{{index .Config.Labels "{STAND_IN_LABEL}"}}}}', tag,
            check=False,
        )  # fmt: skip
        if present.returncode == 0 and present.stdout.strip() == key:
            continue
        arguments = ["import"]
        for change in [*changes, f"LABEL {STAND_IN_LABEL}={key}"]:
            arguments += ["--change", change]
        imported = engine.docker(*arguments, str(tarball), tag, check=False)
        if imported.returncode != 0:
            raise HostSetupError(f"docker import of {tag} failed: {imported.stderr}")
