import logging
import os
import shutil

import pytest

# Tests never touch the network: the Hugging Face libraries run offline; the tests of the
# Hub paths point HF_ENDPOINT at loopback servers of their own.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# One CPU thread everywhere: `wg-eval run` (and so every main(["run", ...]) in a test) sets
# torch's thread count from OMP_NUM_THREADS when no --threads is given, and subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    # Tiny models gain nothing from intra-op threads, and on a small shared machine (CI has
    # 2 cores) OpenMP spin-waiting between processes makes them many times slower.
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def sample_dir(tmp_path):
    from winoground_eval.testing.winoground_sample import write_winoground_sample

    return write_winoground_sample(tmp_path / "sample", n_examples=6, seed=0)


@pytest.fixture(autouse=True)
def _quiet_logs():
    logging.getLogger("winoground_eval").setLevel(logging.WARNING)
    yield


@pytest.fixture(scope="session")
def chromium():
    """Chromium's path (with playwright importable), or skip (locally) / fail (CI) with the reason."""
    path = os.environ.get("WG_EVAL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path and not os.access(path, os.X_OK):
        path = None
    reason = None
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        reason = "the browser test needs the playwright package (pip install -e '.[dev]')"
    if reason is None and not path:
        reason = "the browser test needs Chromium (Debian: apt-get install chromium; or set WG_EVAL_CHROMIUM)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run this test, not skip it")
        pytest.skip(reason)
    return path
