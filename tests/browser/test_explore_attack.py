"""AttackExplorer in a real JupyterLab on zoo models at its default sizes: every control (models, attack, norm, eps,
steps, restarts, step size, image, class, upload, replay step) is moved, several times where its work is cached or
small, the figure must change each time, and the latencies from the input event to the new figure are recorded; a file
that is not an image gets a message in the explorer."""
from __future__ import annotations

from functools import partial

import io

import numpy as np
from PIL import Image

from .explore import ExplorerNotebook, choose, lab, needs_chromium, options, press, moves, record, toggle, wait_for  # noqa: F401 (fixtures)

pytestmark = needs_chromium

CELLS = ["from robust_nb.explore.attack import AttackExplorer\nex = AttackExplorer(['xe', 'pgd_at'])\nex"]
W = 'AttackExplorer'


_moves = partial(moves, timeout=120, widget=W)


def _png(path, size: tuple[int, int], colour: tuple[int, int, int]) -> str:
    "Write an RGB PNG of `size` (w, h), a `colour` square on black, which the explorer must convert to grey and resize."
    a = np.zeros((size[1], size[0], 3), np.uint8)
    a[size[1] // 4: 3 * size[1] // 4, size[0] // 4: 3 * size[0] // 4] = colour
    buf = io.BytesIO(); Image.fromarray(a).save(buf, format='png')
    path.write_bytes(buf.getvalue())
    return str(path)


def _upload(nb, view, path: str):
    "An action: click the explorer's upload button and pick `path` in the file chooser it opens."
    def act():
        with nb.page.expect_file_chooser() as chooser: view.locator('.widget-upload').first.click()
        chooser.value.set_files(path)
    return act


def _buttons(control) -> list[str]:
    return [t.strip() for t in control.locator('.widget-toggle-button').all_inner_texts()]


def test_attack_explorer_every_control(lab, browser, tmp_path):
    nb = ExplorerNotebook(lab, browser, 'attack_explorer', CELLS)
    try:
        view = nb.explorer(0)
        c = lambda label: nb.control(view, label)
        keys = lambda label, ks: [(press(nb, c(label), k), k) for k in ks]

        # cached or small work: the replay step; eps and the image run the attack on one image; the class picks an image
        _moves(nb, view, 'step', keys('step', ['ArrowLeft'] * 8))
        _moves(nb, view, 'eps', keys('eps', ['ArrowRight'] * 4 + ['ArrowLeft'] * 4))
        _moves(nb, view, 'image', keys('image', ['ArrowRight'] * 8))
        shown = c('class').locator('select').first.input_value()   # the class of the image shown
        _moves(nb, view, 'class', [(choose(c('class'), k), k) for k in [o for o in options(c('class')) if o != shown][:8]])
        pngs = [_png(tmp_path/f'upload{i}.png', (40 + 8 * i, 30 + 4 * i), (255, 100 + 50 * i, 60)) for i in range(3)]
        _moves(nb, view, 'upload', [(_upload(nb, view, p), f'png {i}') for i, p in enumerate(pngs)])
        text = tmp_path/'notes.txt'; text.write_text('these are notes, not an image\n')
        _upload(nb, view, str(text))()
        wait_for(lambda: 'not an image PIL can read' in ' '.join(view.locator('.rnb-error').all_inner_texts()), 60,
                 'the message for a file that is not an image')

        # a new attack setting computes both models' robust-accuracy curves; going back to one seen is cached
        _moves(nb, view, 'step size', keys('step size', ['ArrowRight', 'ArrowRight', 'ArrowLeft', 'ArrowRight', 'ArrowLeft']), first_fresh=2)
        _moves(nb, view, 'steps', keys('steps', ['ArrowLeft', 'ArrowRight', 'ArrowLeft', 'ArrowRight']), first_fresh=1)
        _moves(nb, view, 'restarts', keys('restarts', ['ArrowRight', 'ArrowLeft', 'ArrowRight', 'ArrowLeft']), first_fresh=1)
        _moves(nb, view, 'norm', [(toggle(c('norm'), v), v) for v in ['l2', 'linf'] * 3], first_fresh=1)
        attacks = ['CW-L2', 'BG', 'MI-FGSM', 'FGSM']   # CW and BG take the norm to l2, where it stays
        _moves(nb, view, 'attack', [(choose(c('attack'), a), a) for a in attacks + attacks + ['PGD']], first_fresh=4)
        nb.measure(view, choose(c('attack'), 'BG'), "'attack': BG")
        assert _buttons(c('norm')) == ['l2'], "BG is an L2 attack: no linf offered"
        nb.measure(view, choose(c('attack'), 'PGD'), "'attack': PGD")
        assert _buttons(c('norm')) == ['linf', 'l2']
        _moves(nb, view, 'model 1', [(choose(c('model 1'), m), m) for m in ['gauss', 'xe'] * 2], first_fresh=1)
        _moves(nb, view, 'model 2', [(choose(c('model 2'), m), m) for m in ['fgsm_at', 'pgd_at'] * 2], first_fresh=1)
        assert not nb.console, nb.console[:3]
    finally:
        nb.close()
