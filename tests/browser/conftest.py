"""What every browser test shares: one headless Chromium (Debian's, driven by Playwright) per test module."""
import pytest

from .lab import CHROMIUM, CHROMIUM_ARGS


@pytest.fixture(scope='module')
def browser():
    "Chromium at `CHROMIUM`, headless; the tests that ask for it are skipped where the playwright package is missing."
    sync_api = pytest.importorskip('playwright.sync_api', reason='browser tests need the playwright package (pip install playwright)')
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
