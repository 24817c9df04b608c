"""Compilation of the kernels by numba, with an on-disk cache that always has a home.

numba caches compiled machine code next to the source (`__pycache__`), or else in the
user's cache folder. In a container whose package folder and home are read-only
neither works, and numba refuses to define a cached function at all. So when
NUMBA_CACHE_DIR is not set and the package folder is not writable, the cache goes to
`$XDG_CACHE_HOME/riemann/numba` (`~/.cache/riemann/numba`) if that is writable, else to
`riemann-numba-<uid>` in the temporary folder. Set NUMBA_CACHE_DIR to choose the place
(a volume, for instance, so a restarted container does not compile again).
"""

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import numba

_CACHE_SETTING = "CACHE_DIR"
"""numba's name for the setting NUMBA_CACHE_DIR feeds (numba ships no type stubs)."""

logger = logging.getLogger(__name__)

KernelT = TypeVar("KernelT", bound=Callable[..., Any])


def _is_writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def cache_folder_fallback() -> Path | None:
    """Where the cache must go instead of the package folder, or None if it can stay.

    None also when NUMBA_CACHE_DIR is set: an explicit choice is never overridden.
    """
    if os.environ.get("NUMBA_CACHE_DIR") or getattr(numba.config, _CACHE_SETTING):
        return None
    if _is_writable(Path(__file__).parent / "__pycache__"):
        return None
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    candidates = [
        user_cache / "riemann" / "numba",
        Path(tempfile.gettempdir()) / f"riemann-numba-{os.getuid()}",
    ]
    for folder in candidates:
        if _is_writable(folder):
            return folder
    return None


def _choose_cache_folder() -> None:
    folder = cache_folder_fallback()
    if folder is not None:
        # Child processes (workers) inherit the choice through the environment.
        os.environ["NUMBA_CACHE_DIR"] = str(folder)
        setattr(numba.config, _CACHE_SETTING, str(folder))
        logger.info("numba cache moved", extra={"cache_folder": str(folder)})


_choose_cache_folder()


def compiled(kernel: KernelT, *, inline: bool = False) -> KernelT:
    """`kernel` compiled in nopython mode, cached on disk, with its Python type.

    numba ships no type information, so the compiled dispatcher is cast back to the
    signature of the Python function it compiles. With NUMBA_DISABLE_JIT=1 the
    function runs as plain Python (for coverage and debugging). `inline` makes numba
    copy the function into every compiled caller, for small steps of a hot loop that
    a call would slow down.
    """
    inlining: Literal["always", "never"] = "always" if inline else "never"
    return cast(KernelT, numba.njit(cache=True, nogil=True, inline=inlining)(kernel))
