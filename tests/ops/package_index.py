"""A local PyPI mirror for image builds in the tests: a cached wheelhouse served as a
PEP 503 simple index on the test bridge, so every engine builds the dependency layer
from the same downloaded wheels, without reaching the internet from a namespace."""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .hosts import exclusive_lock


def _project_name(distribution_file: str) -> str:
    """The normalized project name (PEP 503) of a wheel or sdist file name."""
    name = re.split(r"-\d", distribution_file, maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def build_wheelhouse(cache_dir: Path, requirements: Path) -> Path:
    """Downloads the pinned requirements once per content of requirements.txt."""
    key = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    wheelhouse = cache_dir / "wheelhouse" / key
    with exclusive_lock(cache_dir / "wheelhouse.lock"):
        if (wheelhouse / "simple" / "index.html").exists():
            return wheelhouse
        shutil.rmtree(wheelhouse, ignore_errors=True)
        files = wheelhouse / "files"
        subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet",
                "--only-binary=:all:", "--dest", str(files), "-r", str(requirements),
            ],
            check=True,
        )  # fmt: skip
        _write_simple_index(wheelhouse)
    return wheelhouse


def _write_simple_index(wheelhouse: Path) -> None:
    projects: dict[str, list[str]] = {}
    for distribution in sorted((wheelhouse / "files").iterdir()):
        projects.setdefault(_project_name(distribution.name), []).append(
            distribution.name
        )
    simple = wheelhouse / "simple"
    for project, distributions in projects.items():
        (simple / project).mkdir(parents=True)
        links = "".join(
            f'<a href="../../files/{html.escape(name)}">{html.escape(name)}</a>\n'
            for name in distributions
        )
        (simple / project / "index.html").write_text(
            f"<html><body>\n{links}</body></html>\n"
        )
    root_links = "".join(f'<a href="{name}/">{name}</a>\n' for name in sorted(projects))
    (simple / "index.html").write_text(f"<html><body>\n{root_links}</body></html>\n")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class PackageIndex:
    """Serves a wheelhouse over HTTP on one address until closed."""

    def __init__(self, wheelhouse: Path, address: str) -> None:
        handler = partial(_QuietHandler, directory=str(wheelhouse))
        self._server = ThreadingHTTPServer((address, 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/simple/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
