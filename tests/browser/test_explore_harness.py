"""The explorer harness checked on a toy explorer: a moved control is timed to its new figure, and a control that does
not change the figure fails the check (so the explorers' tests can fail)."""
from __future__ import annotations

import pytest

from .explore import ExplorerNotebook, choose, lab, needs_chromium, press, summary  # noqa: F401 (fixtures)

pytestmark = needs_chromium

TOY = '''import ipywidgets as W
from matplotlib.figure import Figure
from robust_nb.explore.base import _Explorer

class Toy(_Explorer):
    "A line whose slope follows a slider and whose colour follows a dropdown; the 'inert' slider changes nothing."
    FIGURES = ('fig',)
    def __init__(self):
        self.models, self.status, self.out, self.fig = {}, W.HTML(), W.Output(), None
        self.slope = W.IntSlider(1, 0, 9, description='slope', continuous_update=False)
        self.colour = W.Dropdown(options=['red', 'blue'], description='colour')
        self.inert = W.IntSlider(0, 0, 9, description='inert', continuous_update=False)
        for w in (self.slope, self.colour): w.observe(self._on_change, names='value')
        self.widget = W.VBox([W.HBox([self.slope, self.colour, self.inert]), self.indicator, self.status, self.out])
        self.update()
    def update(self):
        self.fig = Figure(figsize=(2, 2), dpi=60)
        self.fig.subplots().plot([0, 1], [0, self.slope.value], color=self.colour.value)
        self.status.value = f'slope {self.slope.value}'
        self._show((self.out,), (self.fig,))

toy = Toy(); toy'''


def test_harness_times_a_change_and_fails_an_inert_control(lab, browser):
    nb = ExplorerNotebook(lab, browser, 'toy', [TOY])
    try:
        view = nb.explorer(0)
        s1 = nb.measure(view, press(nb, nb.control(view, 'slope')), 'the slope slider')
        s2 = nb.measure(view, choose(nb.control(view, 'colour'), 'blue'), 'the colour dropdown')
        assert 0 < s1 < 30 and 0 < s2 < 30
        with pytest.raises(AssertionError, match='did not change'):
            nb.measure(view, press(nb, nb.control(view, 'inert')), 'the inert slider', timeout=3)
    finally:
        nb.close()


def test_summary_percentiles():
    s = summary([0.1 * i for i in range(1, 21)])
    assert (s['n'], s['median'], s['p95'], s['max']) == (20, 1.05, 1.9, 2.0)
