"""Kernels compile once, cache on disk wherever the package lives, run without JIT."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from riemann.kernels import jit
from riemann.kernels.exhaustive import scan_range_kernel
from riemann.kernels.superabundant import scan_partitions_kernel
from riemann.kernels.warm_up import warm_up

REPOSITORY = Path(__file__).resolve().parents[2]

SMALL_EQUIVALENCE = textwrap.dedent(
    """
    from riemann.strategies import strategy_named

    superabundant = strategy_named("superabundant")
    exhaustive = strategy_named("exhaustive")
    blocks = [
        (superabundant, superabundant.block_between(
            2, superabundant.end_after_level(9))),
        (superabundant, superabundant.block_between(
            superabundant.ordinal((14, 100)), superabundant.ordinal((15, 40)))),
        (exhaustive, exhaustive.block_between(3, 400)),
        (exhaustive, exhaustive.block_between(10**6 - 150, 10**6 + 150)),
    ]
    for strategy, block in blocks:
        for threshold in ("1.7", "0"):
            fast = strategy.process(block, threshold)
            assert fast == strategy.process_exact(block, threshold), block
    from riemann.kernels.log_log import log_log_lower_bound, log_log_table

    table = log_log_table(100.0)
    assert log_log_lower_bound(1.0, table.coefficients, table.base_index)[1] > 1e300
    print("equivalent")
    """
)

CACHE_REPORT = textwrap.dedent(
    """
    from riemann.kernels.superabundant import scan_partitions_kernel, screen_partitions

    list(screen_partitions(20, 0, 1000, "1.767"))
    print(sum(scan_partitions_kernel.stats.cache_hits.values()))
    """
)


def run_python(code, **environment):
    env = {**os.environ, **environment}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout


@pytest.mark.slow
def test_kernels_run_as_plain_python_with_the_jit_disabled():
    # Also how coverage sees the kernel bodies: numba would hide them from it.
    assert run_python(SMALL_EQUIVALENCE, NUMBA_DISABLE_JIT="1").strip() == "equivalent"


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_kernel_from_the_cache(tmp_path):
    cache = str(tmp_path / "numba-cache")
    run_python(CACHE_REPORT, NUMBA_CACHE_DIR=cache)
    assert int(run_python(CACHE_REPORT, NUMBA_CACHE_DIR=cache)) >= 1
    assert any(Path(cache).rglob("*.nbi"))


@pytest.fixture
def no_cache_setting(monkeypatch):
    """NUMBA_CACHE_DIR unset and numba's cache setting empty, both restored after.

    monkeypatch.delenv remembers nothing when the variable is absent, so a value
    the code under test puts in os.environ would outlive the test; setting the
    variable first makes monkeypatch record that it was absent.
    """
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(jit.numba.config, "CACHE_DIR", "")


def writable_only(*writable):
    def is_writable(folder):
        return any(folder == allowed for allowed in writable)

    return is_writable


def test_an_explicit_cache_folder_is_kept(monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere")
    monkeypatch.setattr(jit, "_is_writable", writable_only())
    assert jit.cache_folder_fallback() is None


@pytest.mark.usefixtures("no_cache_setting")
def test_a_writable_package_folder_keeps_the_cache(monkeypatch):
    package_cache = Path(jit.__file__).parent / "__pycache__"
    monkeypatch.setattr(jit, "_is_writable", writable_only(package_cache))
    assert jit.cache_folder_fallback() is None


@pytest.mark.usefixtures("no_cache_setting")
def test_a_read_only_package_puts_the_cache_in_the_users_cache_folder(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    user_cache = tmp_path / "riemann" / "numba"
    monkeypatch.setattr(jit, "_is_writable", writable_only(user_cache))
    assert jit.cache_folder_fallback() == user_cache


@pytest.mark.usefixtures("no_cache_setting")
def test_a_read_only_package_and_home_put_the_cache_in_the_temporary_folder(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(jit.tempfile, "tempdir", None)
    temporary = tmp_path / "tmp" / f"riemann-numba-{os.getuid()}"
    monkeypatch.setattr(jit, "_is_writable", writable_only(temporary))
    assert jit.cache_folder_fallback() == temporary


def test_a_folder_that_cannot_be_created_is_not_writable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert not jit._is_writable(blocker / "below")
    assert jit._is_writable(tmp_path / "new")


def test_choosing_a_fallback_folder_tells_numba_and_child_processes(
    monkeypatch, tmp_path
):
    outside = (os.environ.get("NUMBA_CACHE_DIR"), jit.numba.config.CACHE_DIR)
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.delenv("NUMBA_CACHE_DIR")
    monkeypatch.setattr(jit.numba.config, "CACHE_DIR", "")
    monkeypatch.setattr(jit, "cache_folder_fallback", lambda: tmp_path)
    jit._choose_cache_folder()
    numba_cache_folder = jit.numba.config.CACHE_DIR
    assert numba_cache_folder == str(tmp_path)
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path)

    # The choice must not leak into the tests that run after this one.
    monkeypatch.undo()
    assert (os.environ.get("NUMBA_CACHE_DIR"), jit.numba.config.CACHE_DIR) == outside


def test_warming_up_loads_both_kernels():
    warm_up()
    assert scan_partitions_kernel.signatures
    assert scan_range_kernel.signatures
