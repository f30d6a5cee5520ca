"""The explorers in a real JupyterLab: a scratch notebook built from given cells, run in Chromium, and each control's
latency measured in the page, from the learner's input event to the new figure loaded.

`ExplorerNotebook(lab, browser, name, cells)` writes the notebook, opens it, runs it and checks it ran cleanly;
`explorer(i)` is the i-th explorer's view; `control(view, label)` finds a control by its label; `measure(view, action,
what)` arms a watcher in the page, runs `action` (Playwright clicks, selections, key presses), waits until every image
of the explorer has changed or been redrawn and its 'working...' line is gone, and returns the seconds on the page's
clock. `record(widget, control, seconds, kind)` keeps the latencies and, with ROBUST_NB_WIDGET_TIMINGS=1, writes them to
benchmarks/results/widgets.json (entries not measured in this run are kept)."""
from __future__ import annotations

import json, os, re, statistics, time
from pathlib import Path

import pytest

from .lab import CHROMIUM, ROOT, Lab, wait_for

TIMINGS = os.environ.get('ROBUST_NB_WIDGET_TIMINGS', '') not in ('', '0')
RESULTS_JSON = ROOT/'benchmarks'/'results'/'widgets.json'
BUDGET = {'cached': 0.3, 'fresh': 3.0}  # seconds at the 95th percentile: cached or small work, a fresh attack
KERNEL_JS = "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel; return k ? k.status : null; }"
VIEWS = '.jp-OutputArea-output > .widget-vbox'

# Installed once per page: arm(view) snapshots the view's images and waits for the first input event on it (t0); the
# watcher then marks the time (t1) at which the images differ from the snapshot, all are loaded, and no 'working' line
# (.rnb-busy) is left in the view; whether a 'working' line was seen on the way is kept too.
WATCH_JS = """() => {
  if (window.__rnbArm) return true;
  const srcs = v => Array.from(v.querySelectorAll('.widget-output img')).map(i => i.src);
  window.__rnbArm = (v) => {
    const s = window.__rnbW = {before: srcs(v).join('|'), t0: null, t1: null, busy: false, images: 0};
    const start = e => { if (s.t0 === null) s.t0 = performance.now(); };
    for (const ev of ['keydown', 'change', 'click', 'input']) v.addEventListener(ev, start, {capture: true, once: true});
    const tick = () => {
      if (s.t1 !== null) return;
      if (v.querySelector('.rnb-busy')) s.busy = true;
      const imgs = Array.from(v.querySelectorAll('.widget-output img'));
      const now = imgs.map(i => i.src).join('|');
      if (s.t0 !== null && imgs.length && now !== s.before && !v.querySelector('.rnb-busy')
          && imgs.every(i => i.complete && i.naturalWidth > 0)) { s.t1 = performance.now(); s.images = imgs.length; return; }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    return true;
  };
  return true;
}"""


def notebook_json(cells: list[str]) -> dict:
    "A notebook of code cells with the python3 kernel."
    return {'cells': [{'cell_type': 'code', 'execution_count': None, 'id': f'c{i}', 'metadata': {}, 'outputs': [],
                       'source': s} for i, s in enumerate(cells)],
            'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}},
            'nbformat': 4, 'nbformat_minor': 5}


class ExplorerPage:
    "A page showing explorers: find them and their controls, time a control's change to the new figure."
    name: str
    page: object

    def explorer(self, i: int = 0):
        "The view of the i-th explorer displayed in the page (those with a figure area)."
        views = self.page.locator(VIEWS).filter(has=self.page.locator('.widget-output'))
        wait_for(lambda: views.count() > i, 120, f'explorer {i} to render')
        v = views.nth(i)
        v.scroll_into_view_if_needed()
        wait_for(lambda: v.locator('.widget-output img').count() > 0, 120, f'explorer {i} to show a figure')
        return v

    def control(self, view, label: str):
        "The control of `view` whose description label is exactly `label`."
        c = view.locator('.widget-inline-hbox, .widget-inline-vbox, .widget-hbox, .widget-vbox').filter(
            has=self.page.locator('.widget-label', has_text=re.compile(rf'^\s*{re.escape(label)}\s*$'))).last
        assert c.count(), f"{self.name}: no control labelled {label!r}"
        return c

    def idle(self, timeout: float = 120):
        "Wait until the kernel has nothing to do (where the page can tell)."

    def measure(self, view, action, what: str, timeout: float = 60) -> float:
        "Seconds from the input event `action` makes on `view` to its new figure in the page; fails if the figure did not change."
        self.idle()
        self.page.evaluate(WATCH_JS)
        self.page.evaluate('v => window.__rnbArm(v)', view.element_handle())
        action()
        try:
            s = wait_for(lambda: (w := self.page.evaluate('() => window.__rnbW')) and w['t1'] is not None and w, timeout,
                         f"{self.name}: the figure to change after {what}", every=0.05)
        except AssertionError:
            w = self.page.evaluate('() => window.__rnbW')
            raise AssertionError(f"{self.name}: the figure did not change after {what} (input seen: {w['t0'] is not None}; "
                                 f"indicator: {view.locator('.rnb-busy, .rnb-error').all_inner_texts()})") from None
        self.last_busy = s['busy']
        return (s['t1'] - s['t0']) / 1000

    def close(self): self.page.close()


class ExplorerNotebook(ExplorerPage):
    "A scratch notebook of `cells` open and run in JupyterLab; the page stays open for the controls to be moved."
    def __init__(self, lab: Lab, browser, name: str, cells: list[str], timeout: float = 600):
        self.name, path = name, lab.root/'explore'/f'{name}.ipynb'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(notebook_json(cells), indent=1))
        self.page = page = browser.new_page(viewport={'width': 1600, 'height': 1200})
        self.console = []
        page.on('console', lambda m: self.console.append(f'{m.type}: {m.text}') if m.type == 'error' else None)
        page.goto(lab.url(f'explore/{name}.ipynb'), timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                               "window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
        page.evaluate("async () => { const p = window.jupyterapp.shell.currentWidget; await p.context.ready; await p.sessionContext.ready; }")
        wait_for(lambda: page.evaluate(KERNEL_JS) == 'idle', 120, 'the kernel to start', every=0.5)
        page.evaluate('() => window.jupyterapp.shell.collapseLeft()')
        ok = page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        wait_for(lambda: page.evaluate(KERNEL_JS) == 'idle' and self._all_ran(len(cells)), timeout, f'{name} to run', every=0.5)
        errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').all_inner_texts()
        tracebacks = [e for e in errors if 'Traceback' in e or 'Error' in e]
        assert ok is not False and not tracebacks, f"{name}: the notebook did not run cleanly: {tracebacks[:2]}"

    def _all_ran(self, n: int) -> bool:
        counts = self.page.evaluate("() => { const cs = window.jupyterapp.shell.currentWidget.content.model.cells; const r = [];"
                                    " for (let i = 0; i < cs.length; i++) r.push(cs.get(i).executionCount); return r; }")
        return len(counts) == n and all(c is not None for c in counts)

    def idle(self, timeout: float = 120):
        "Wait until the kernel is idle."
        wait_for(lambda: self.page.evaluate(KERNEL_JS) == 'idle', timeout, 'the kernel to go idle')


class AppPage(ExplorerPage):
    "The classroom app (`robust-nb explore`) served by Voila on a free port of the loopback and opened in a page."
    def __init__(self, browser, folder: Path, explorers: int, timeout: float = 600):
        import subprocess, sys
        from .lab import free_port, server_env
        self.name, self.port = 'app', free_port()
        cmd = [sys.executable, '-m', 'robust_nb.cli', 'explore', '--port', str(self.port), '--no-browser', '--folder', str(folder)]
        self.log_path = Path(folder)/'voila.log'
        Path(folder).mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(cmd, env=server_env(folder, {'ROBUST_NB_DATA': os.environ.get('ROBUST_NB_DATA', str(ROOT/'data'))}),
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.page = browser.new_page(viewport={'width': 1600, 'height': 1200})
        wait_for(self._answers, 120, 'Voila to answer', every=0.5)
        t0 = time.time()
        self.page.goto(f'http://127.0.0.1:{self.port}/', timeout=int(timeout * 1000))
        views = self.page.locator(VIEWS).filter(has=self.page.locator('.widget-output img'))
        wait_for(lambda: views.count() >= explorers, timeout, f'{explorers} explorers to render in the app', every=0.5)
        self.seconds_to_render = time.time() - t0

    def _answers(self) -> bool:
        "Whether Voila listens yet (a connection, not a request: a request for the page would start a kernel)."
        import socket
        if self.proc.poll() is not None:
            raise AssertionError(f"robust-nb explore exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
        try:
            with socket.create_connection(('127.0.0.1', self.port), timeout=2): return True
        except OSError: return False

    def close(self):
        self.page.close()
        self.proc.terminate()
        try: self.proc.wait(30)
        except Exception: self.proc.kill(); self.proc.wait()
        self._log.close()


# Key presses move a focused slider handle one step; dropdowns and toggles are chosen by their text.
def press(nb: ExplorerNotebook, control, key: str = 'ArrowRight'):
    "An action: focus the slider handle of `control` and press `key`."
    def act():
        control.locator('.noUi-handle').first.focus()
        nb.page.keyboard.press(key)
    return act

def choose(control, value: str):
    "An action: pick `value` in the dropdown of `control`."
    return lambda: control.locator('select').first.select_option(value)

def toggle(control, text: str):
    "An action: click the toggle button of `control` reading `text`."
    return lambda: control.locator('.widget-toggle-button', has_text=text).first.click()

def options(control) -> list[str]:
    "The option values of the dropdown of `control`."
    return control.locator('select option').evaluate_all('os => os.map(o => o.value)')


RESULTS: dict[str, dict] = {}

def summary(seconds: list[float]) -> dict:
    "Median and 95th percentile (nearest rank) of a list of latencies, in seconds."
    s = sorted(seconds)
    return {'n': len(s), 'median': round(statistics.median(s), 3), 'p95': round(s[min(len(s) - 1, int(0.95 * len(s) + 0.5) - 1)], 3),
            'max': round(s[-1], 3)}

def record(widget: str, control: str, seconds: list[float], kind: str):
    "Keep `seconds` for (widget, control) against the budget of `kind` ('cached' or 'fresh'); write widgets.json when timing."
    assert kind in BUDGET, f"kind: expected one of {sorted(BUDGET)}, got {kind!r}"
    entry = {**summary(seconds), 'kind': kind, 'budget_p95': BUDGET[kind]}
    entry['meets'] = entry['p95'] <= BUDGET[kind]
    RESULTS.setdefault(widget, {})[control] = entry
    print(f"{widget}.{control}: median {entry['median']:.3f} s, p95 {entry['p95']:.3f} s ({kind}, budget {BUDGET[kind]} s)")
    if TIMINGS: _write()

def moves(nb: ExplorerPage, view, label: str, actions: list, first_fresh: int = 0, timeout: float = 60, widget: str = '') -> None:
    "Run each (action, what) on the control `label` of `widget`, asserting the figure changed; record the first `first_fresh` as fresh work, the rest as cached."
    fresh, cached = [], []
    for i, (action, what) in enumerate(actions):
        s = nb.measure(view, action, f"'{label}': {what}", timeout=timeout)
        (fresh if i < first_fresh else cached).append(s)
        print(f"{label} {what}: {s:.3f} s")
    if fresh: record(widget, f'{label} (first time)', fresh, 'fresh')
    if cached: record(widget, label, cached, 'cached')

def _write():
    from robust_nb.core import environment_info
    old = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    per = {**old.get('widgets', {})}
    for w, ctl in RESULTS.items(): per[w] = {**per.get(w, {}), **ctl}
    misses = sorted(f'{w}.{c}' for w, cs in per.items() for c, e in cs.items() if not e['meets'])
    doc = {'benchmark': 'widgets',
           'what': 'each explorer on zoo models with default sizes in JupyterLab 4, headless Chromium; per control, seconds on the '
                   "page's clock from the learner's input event to every figure of the explorer redrawn and loaded and its "
                   "'working' line gone; budget at the 95th percentile: cached or small work 0.3 s, a fresh attack 3 s",
           'command': 'ROBUST_NB_WIDGET_TIMINGS=1 .venv/bin/pytest -q tests/browser -k explore',
           'machine': environment_info('cpu'), 'load_average_1min': round(os.getloadavg()[0], 2),
           'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'budget_p95': BUDGET,
           'over_budget': misses, 'widgets': per}
    RESULTS_JSON.write_text(json.dumps(doc, indent=1) + '\n')


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    "A JupyterLab serving a scratch folder, with the kernels' default settings (no IN_TEST: the explorers at their own sizes)."
    root = tmp_path_factory.mktemp('explore')
    server = Lab(root, env={'ROBUST_NB_DATA': os.environ.get('ROBUST_NB_DATA', str(ROOT/'data'))})
    yield server
    server.close()



needs_chromium = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Chromium at {CHROMIUM}: "
                                                          "`apt-get install chromium` (Debian), or set ROBUST_NB_CHROMIUM")]
