import shutil

import pytest

from tests.conftest import IN_CI


@pytest.fixture(scope="session")
def chromium():
    """Headless Debian Chromium through Playwright; under CI=true a missing browser fails."""
    if not shutil.which("chromium"):
        if IN_CI:
            pytest.fail("chromium is required under CI=true (.ci/run installs the Debian package)")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from newsletter.screenshots import browser

    with browser() as instance:
        yield instance
