"""CorruptionSweep in a real JupyterLab on zoo models at its default sizes: every control (corruption, suite, severity,
both model pickers, the 'sweep suite' button) is moved several times, the figure must change each time, and the
latencies from the input event to the new figure are recorded."""
from __future__ import annotations

from functools import partial

from .explore import ExplorerNotebook, choose, lab, needs_chromium, options, press, moves, record  # noqa: F401 (fixtures)

pytestmark = needs_chromium

CELLS = ["from robust_nb.explore.corruption import CorruptionSweep\nsweep = CorruptionSweep('xe', compare='gauss')\nsweep"]
W = 'CorruptionSweep'


_moves = partial(moves, timeout=60, widget=W)


def test_corruption_sweep_every_control(lab, browser):
    nb = ExplorerNotebook(lab, browser, 'corruption_sweep', CELLS)
    try:
        view = nb.explorer(0)
        button = view.locator('button', has_text='sweep suite').first
        s = nb.measure(view, lambda: button.click(), "'sweep suite' button", timeout=300)
        print(f"sweep suite (xe and gauss, mtlat19, 256 images): {s:.1f} s")
        record(W, 'sweep suite', [s], 'fresh')
        assert button.is_disabled(), "the whole suite is swept: nothing is left for the button to do"

        corruption = nb.control(view, 'corruption')
        names = options(corruption)
        assert names[0] == 'gaussian_noise' and len(names) == 19, names
        cycle = ['fog', 'contrast', 'snow', 'gaussian_noise']  # swept with the suite: cached work
        _moves(nb, view, 'corruption', [(choose(corruption, c), c) for c in cycle * 2])

        severity = nb.control(view, 'severity')
        keys = ['ArrowRight', 'ArrowRight', 'ArrowLeft', 'ArrowLeft', 'ArrowLeft', 'ArrowLeft', 'ArrowRight', 'ArrowRight']
        _moves(nb, view, 'severity', [(press(nb, severity, k), k) for k in keys])

        suite = nb.control(view, 'suite')
        picks = ['imagenet_c_extra', 'mtlat19', 'extra', 'mtlat19', 'imagenet_c_extra', 'mtlat19', 'extra', 'mtlat19', 'imagenet_c_extra']
        _moves(nb, view, 'suite', [(choose(suite, p), p) for p in picks], first_fresh=3)
        assert options(corruption) == ['speckle_noise', 'gaussian_blur', 'spatter', 'saturate'], "the suite sets the corruptions offered"
        nb.measure(view, choose(suite, 'mtlat19'), "'suite': back to mtlat19")

        for label, other, back in (('compare', 'pgd_at', 'gauss'), ('model', 'mixup', 'xe')):
            picker = nb.control(view, label)
            assert other in options(picker), options(picker)
            _moves(nb, view, label, [(choose(picker, v), v) for v in [other, back] * 4 + [other]], first_fresh=1)
        assert not nb.console, nb.console[:3]
    finally:
        nb.close()
