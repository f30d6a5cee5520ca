"""The classroom app in a real browser: `robust-nb explore` serves every explorer on zoo models with Voila on the
loopback, no code shows, and one control of each explorer moves its figure."""
from __future__ import annotations

from .explore import AppPage, needs_chromium, press, toggle
from robust_nb.explore.app import SECTIONS

pytestmark = needs_chromium

MOVES = [  # per section of the app, in order: (control label, how to move it)
    ('eps', 'press'), ('severity', 'press'), ('norm', 'toggle'), ('sample', 'press'),
]


def test_app_serves_every_explorer(browser, tmp_path):
    app = AppPage(browser, tmp_path, explorers=len(SECTIONS))
    try:
        text = app.page.locator('body').inner_text()
        assert 'Robustness explorers' in text and 'import' not in text, "the app shows code, or not its title"
        for i, (label, how) in enumerate(MOVES):
            view = app.explorer(i)
            c = app.control(view, label)
            if how == 'press': action = press(app, c)
            else:
                inactive = c.locator('.widget-toggle-button:not(.mod-active)').first.inner_text()
                action = toggle(c, inactive)
            seconds = app.measure(view, action, f"{SECTIONS[i][0]}: '{label}'", timeout=120)
            print(f"{SECTIONS[i][0]}: '{label}' redrawn after {seconds:.2f} s")
        print(f"app rendered in {app.seconds_to_render:.1f} s")
    finally:
        app.close()
