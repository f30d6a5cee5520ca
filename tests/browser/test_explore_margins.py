"""MarginCurves in a real JupyterLab on zoo models at its default sizes: every control (eps cursor, margin origin, norm,
attacks, number of images, models) is moved several times, the figure must change each time, and the latencies from
the input event to the new figure are recorded."""
from __future__ import annotations

from functools import partial

from .explore import ExplorerNotebook, lab, needs_chromium, press, moves, record, toggle  # noqa: F401 (fixtures)

pytestmark = needs_chromium

CELLS = ["from robust_nb.explore.margins import MarginCurves\nmc = MarginCurves(['xe', 'pgd_at'])\nmc"]
W = 'MarginCurves'


_moves = partial(moves, timeout=120, widget=W)


def _select(control, labels: list[str]):
    "An action: select exactly the options of the multiple selection `control` reading `labels`."
    return lambda: control.locator('select').first.select_option(label=labels)


def _selected(control) -> list[str]:
    return control.locator('select option').evaluate_all('os => os.filter(o => o.selected).map(o => o.textContent.trim())')


def _offered(control) -> list[str]:
    return control.locator('select option').evaluate_all('os => os.map(o => o.textContent.trim())')


def test_margin_curves_every_control(lab, browser):
    nb = ExplorerNotebook(lab, browser, 'margin_curves', CELLS)
    try:
        view = nb.explorer(0)
        readout = lambda: view.locator('.widget-html', has_text='at eps =').first.inner_text()

        eps = nb.control(view, 'eps')
        before = readout()
        keys = ['ArrowRight'] * 4 + ['ArrowLeft'] * 4 + ['ArrowRight'] * 3
        _moves(nb, view, 'eps', [(press(nb, eps, k), k) for k in keys])
        assert readout() != before, "the readout follows the cursor"

        origin = nb.control(view, 'margin from')
        _moves(nb, view, 'margin from', [(toggle(origin, v), v) for v in ['label', 'prediction'] * 4])

        norm, attacks = nb.control(view, 'norm'), nb.control(view, 'attacks')
        assert _offered(attacks) == ['fgsm', 'pgd', 'bg', 'mi_fgsm', 'cw_l2'] and _selected(attacks) == ['fgsm', 'pgd', 'bg']
        _moves(nb, view, 'norm', [(toggle(norm, v), v) for v in ['linf', 'l2'] * 4 + ['linf']], first_fresh=1)
        assert _offered(attacks) == ['fgsm', 'pgd', 'mi_fgsm'] and _selected(attacks) == ['fgsm', 'pgd'], "under linf: no BG, no CW"
        nb.measure(view, toggle(norm, 'l2'), "'norm': back to l2")
        assert _selected(attacks) == ['fgsm', 'pgd', 'bg']

        picks = [['fgsm', 'pgd', 'bg', 'mi_fgsm']] + [['fgsm', 'pgd'], ['pgd', 'bg', 'mi_fgsm'], ['fgsm', 'pgd', 'bg']] * 3
        _moves(nb, view, 'attacks', [(_select(attacks, p), '+'.join(p)) for p in picks], first_fresh=1)  # MI-FGSM new, then cached

        images = nb.control(view, 'images')
        keys = ['ArrowRight'] + ['ArrowLeft', 'ArrowRight'] * 4 + ['ArrowLeft']
        _moves(nb, view, 'images', [(press(nb, images, k), k) for k in keys], first_fresh=1)

        models = nb.control(view, 'models')
        assert _offered(models)[:2] == ['xe', 'pgd_at'] and 'hein' in _offered(models)
        picks = [['xe', 'pgd_at', 'hein'], ['xe'], ['xe', 'pgd_at', 'hein'], ['pgd_at'], ['xe', 'pgd_at']] * 2
        _moves(nb, view, 'models', [(_select(models, p), '+'.join(p)) for p in picks], first_fresh=1)
        assert not view.locator('.rnb-error').count(), view.locator('.rnb-error').all_inner_texts()
        assert not nb.console, nb.console[:3]
    finally:
        nb.close()
