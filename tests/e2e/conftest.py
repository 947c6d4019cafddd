import shutil
import subprocess

import pytest

from tests.conftest import IN_CI


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium through Playwright; under CI=true a missing browser fails."""
    if not shutil.which("chromium"):
        if IN_CI:
            pytest.fail("chromium is required under CI=true (.ci/run installs the Debian package)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from newsletter.issues.screenshots import browser

    with browser() as instance:
        yield instance


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Every kind of mail and page, made once per test session (tests/e2e/corpus.py)."""
    from tests.e2e.corpus import build_corpus

    built, (server, thread, engine) = build_corpus(tmp_path_factory.mktemp("corpus"))
    yield built
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.fixture(scope="session")
def axe_source():
    """axe-core's script, installed with npm into a cache folder; under CI=true a failure fails."""
    from tests.e2e.axe import install_axe

    try:
        return install_axe()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        if IN_CI:
            pytest.fail(f"axe-core is required under CI=true: {exc}")
        pytest.skip(f"axe-core unavailable: {exc}")
