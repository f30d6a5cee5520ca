"""UtilityExplorer in a real JupyterLab on the zoo's two corner models at its default sizes: every control (method, k,
sigma, class, reseed, sample, the model toggle and both model pickers) is moved several times, the figure must change
each time, and the latencies from the input event to the new figure are recorded."""
from __future__ import annotations

from functools import partial

from .explore import ExplorerNotebook, choose, lab, needs_chromium, options, press, moves, record, toggle  # noqa: F401 (fixtures)

pytestmark = needs_chromium

CELLS = ["from robust_nb.explore.utility import UtilityExplorer\nue = UtilityExplorer(['corner_xe', 'corner_fcl'])\nue"]
W = 'UtilityExplorer'
BACK_AND_FORTH = ['ArrowRight', 'ArrowLeft'] * 4


_moves = partial(moves, timeout=60, widget=W)


def test_utility_explorer_every_control(lab, browser):
    nb = ExplorerNotebook(lab, browser, 'utility_explorer', CELLS)
    try:
        view = nb.explorer(0)
        # a new sample costs its exact sensitivity for both models; going back to it is cached
        _moves(nb, view, 'sample', [(press(nb, nb.control(view, 'sample'), k), k) for k in BACK_AND_FORTH], first_fresh=1)
        # a new k or sigma costs masks, noise and three forward passes per model: small work
        _moves(nb, view, 'k', [(press(nb, nb.control(view, 'k'), k), k) for k in BACK_AND_FORTH])
        _moves(nb, view, 'sigma', [(press(nb, nb.control(view, 'sigma'), k), k) for k in BACK_AND_FORTH])
        button = view.locator('button', has_text='reseed').first
        _moves(nb, view, 'reseed', [(lambda: button.click(), f'click {i + 1}') for i in range(8)])

        method = nb.control(view, 'method')
        labels = options(method)
        assert len(labels) == 4 and labels[0].startswith('Saliency'), labels
        cycle = labels[1:] + labels[:1]  # IntegratedGradients, SmoothGrad, InputXGradient, Saliency
        _moves(nb, view, 'method', [(choose(method, m), m) for m in cycle * 2], first_fresh=3)

        klass = nb.control(view, 'class')
        picks = options(klass)
        assert picks[:2] == ['all classes', 'rare corner classes 10-14'] and len(picks) == 17, picks
        cycle = ['rare corner classes 10-14', '12: Pullover + corner', 'all classes']
        _moves(nb, view, 'class', [(choose(klass, c), c) for c in cycle * 3], first_fresh=2)

        model = nb.control(view, 'model')
        _moves(nb, view, 'model', [(toggle(model, t), t) for t in ['corner_xe', 'corner_fcl', 'both'] * 3])

        for label, other, back in (('model A', 'corner_fcl', 'corner_xe'), ('model B', 'corner_xe', 'corner_fcl')):
            picker = nb.control(view, label)
            assert options(picker) == ['corner_xe', 'corner_fcl'], options(picker)
            _moves(nb, view, label, [(choose(picker, v), v) for v in [other, back] * 4])
        assert not view.locator('.rnb-error').count(), view.locator('.rnb-error').all_inner_texts()
        assert not nb.console, nb.console[:3]
    finally:
        nb.close()
