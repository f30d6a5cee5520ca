"""Every tutorial run in a real JupyterLab, in a real browser (Debian's Chromium driven by Playwright).

For each `nbs/tutorials/*.ipynb` (found when the tests run; `-k NAME` picks one): open it, Run All, and check
that no cell has an error output, that every robust_nb widget the notebook builds renders its controls and a
figure, that moving a control (sample slider, corruption and severity selectors, model toggle, eps slider, attack) changes the
figure, and that progress bars render as widgets. One screenshot per tutorial goes to `runs/browser/`
(or `$ROBUST_NB_BROWSER_OUT`).

By default the kernel runs with IN_TEST=1, the settings `nbdev_test` uses. With ROBUST_NB_TUTORIAL_TIMINGS=1 the
tutorials run with their default settings, and the time to the first figure and the total time of each are
written to benchmarks/results/tutorials.json (entries of tutorials not run are kept)."""
from __future__ import annotations

import base64, hashlib, json, os, re, shutil, time
from pathlib import Path

import pytest

from .lab import CHROMIUM, ROOT, Lab, prepare_notebook, tutorials, wait_for as _wait_for

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"browser tests need Chromium at {CHROMIUM}: "
                                 "`apt-get install chromium` (Debian), or set ROBUST_NB_CHROMIUM")]

TIMINGS = os.environ.get('ROBUST_NB_TUTORIAL_TIMINGS', '') not in ('', '0')
OUT = Path(os.environ.get('ROBUST_NB_BROWSER_OUT', ROOT/'runs'/'browser'))
RESULTS_JSON = ROOT/'benchmarks'/'results'/'tutorials.json'
RUN_TIMEOUT = float(os.environ.get('ROBUST_NB_BROWSER_TIMEOUT', 1200 if TIMINGS else 900))  # seconds per tutorial
BUDGET = {'seconds_to_first_figure': 60, 'seconds_total': 300}  # the goal on 2 CPU cores with default settings
WIDGETS = {'UtilityExplorer': 'sigma', 'CorruptionSweep': 'corruption', 'MarginCurves': 'margin from', 'AttackExplorer': 'restarts'}  # class: a control label only it has
WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
RESULTS: dict[str, dict] = {}

# Runs in the page once Run All is issued: the time of the first figure and what the progress bars looked like.
WATCH_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget, nb = panel.node, t0 = performance.now();
  const s = window.__rnb = {firstFigure: null, done: null, ok: null, bars: 0, barMax: 0, barLabels: []};
  window.__rnbTimer = setInterval(() => {
    if (s.firstFigure === null && nb.querySelector('.jp-OutputArea-output img')) s.firstFigure = (performance.now() - t0) / 1000;
    for (const b of nb.querySelectorAll('.jp-OutputArea-output .widget-hprogress, .jp-OutputArea-output .widget-vprogress')) {
      const bar = b.querySelector('.progress-bar'), r = b.getBoundingClientRect();
      if (!bar || r.width <= 0 || r.height <= 0) continue;
      s.bars = Math.max(s.bars, 1);
      s.barMax = Math.max(s.barMax, parseFloat(bar.style.width || bar.style.height || '0'));
      const label = b.parentElement ? b.parentElement.innerText.trim() : '';
      if (label && s.barLabels.length < 20 && !s.barLabels.includes(label)) s.barLabels.push(label);
    }
  }, 100);
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    r => { s.ok = r; s.done = (performance.now() - t0) / 1000; },
    e => { s.ok = false; s.error = String(e); s.done = (performance.now() - t0) / 1000; });
  return true;
}"""

# The notebook as the front end holds it: per code cell its execution count, source and outputs (without image data).
CELLS_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells, res = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    const outs = c.outputs.toJSON().map(o => ({type: o.output_type, name: o.name || null,
      text: o.output_type === 'stream' ? String(o.text).slice(0, 2000) : (o.output_type === 'error' ? o.ename + ': ' + o.evalue : null),
      mimes: Object.keys(o.data || {}), plain: o.data && o.data['text/plain'] ? String(o.data['text/plain']).slice(0, 300) : null}));
    const ex = c.getMetadata('execution') || {}, t0 = ex['iopub.execute_input'], t1 = ex['shell.execute_reply'];
    const seconds = t0 && t1 ? (Date.parse(t1) - Date.parse(t0)) / 1000 : null;
    res.push({index: i, count: c.executionCount, source: c.sharedModel.getSource(), outputs: outs, seconds});
  }
  return res;
}"""

KERNEL_JS = "() => { const k = window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel; return k ? k.status : null; }"


def _digest(srcs: list[str]) -> list[str]:
    "Short hashes of the images' bytes (data: URLs hold the PNG)."
    out = []
    for s in srcs:
        data = base64.b64decode(s.split(',', 1)[1]) if s.startswith('data:') and ';base64,' in s else s.encode()
        out.append(hashlib.sha1(data).hexdigest()[:12])
    return out


def _images(widget) -> list[str]:
    return _digest(widget.locator('.widget-output img').evaluate_all('els => els.map(e => e.src)'))


def _images_loaded(widget) -> bool:
    return widget.locator('.widget-output img').evaluate_all(
        'els => els.length > 0 && els.every(e => e.complete && e.naturalWidth > 0 && e.getBoundingClientRect().width > 0)')


def _expected_widgets(cells: list[dict]) -> dict[str, int]:
    "How many robust_nb widgets the code cells build, by class (from the source, comments dropped)."
    counts = {}
    for c in cells:
        code = '\n'.join(l.split('#', 1)[0] for l in c['source'].splitlines())
        for name in WIDGETS:
            n = len(re.findall(rf'\b{name}\(', code))
            if n: counts[name] = counts.get(name, 0) + n
    return counts


def _move(page, widget, kind: str) -> list[str]:
    "Move each control a learner would first reach for; return a description of each move made."
    moves = []
    def settled():
        "The widget's images once the kernel is idle and they have stopped changing for a second, else None."
        if page.evaluate(KERNEL_JS) != 'idle' or not _images_loaded(widget): return None
        a = _images(widget)
        time.sleep(1.0)
        return a if page.evaluate(KERNEL_JS) == 'idle' and _images_loaded(widget) and _images(widget) == a else None
    def changed(action, label, timeout=300):
        before = _wait_for(settled, 120, f'the {kind} widget to settle')
        status = widget.locator('.widget-html-content').first.inner_text()
        action()
        _wait_for(lambda: (a := settled()) is not None and a != before and len(a) == len(before), timeout,
                  f"the {kind} figure to change after moving '{label}'")
        assert widget.locator('.widget-html-content').first.inner_text() != status, f"{kind}: the status line did not follow '{label}'"
        moves.append(label)
    exact = lambda label: page.locator('.widget-label', has_text=re.compile(rf'^\s*{re.escape(label)}\s*$'))
    def slider(label):
        s = widget.locator('.widget-slider', has=exact(label)).first
        handle, track = s.locator('.noUi-handle').first, s.locator('.noUi-base').first
        def drag():
            h, t = handle.bounding_box(), track.bounding_box()
            page.mouse.move(h['x'] + h['width'] / 2, h['y'] + h['height'] / 2); page.mouse.down()
            page.mouse.move(h['x'] + h['width'] / 2 + t['width'] * 0.3, h['y'] + h['height'] / 2, steps=8); page.mouse.up()
        before = s.locator('.widget-readout').inner_text()
        changed(drag, f'{label} slider')
        assert s.locator('.widget-readout').inner_text() != before
    def toggle(label):
        t = widget.locator('.widget-toggle-buttons', has=exact(label)).first
        changed(lambda: t.locator('.widget-toggle-button:not(.mod-active)').last.click(), f'{label} toggle')
    if kind == 'UtilityExplorer':
        slider('sample'); toggle('model')
    elif kind == 'CorruptionSweep':
        sel = widget.locator('.widget-dropdown select').first
        other = sel.locator('option').nth(1).get_attribute('value')
        changed(lambda: sel.select_option(other), 'corruption selector')
        slider('severity')
    elif kind == 'AttackExplorer':
        slider('eps')
        sel = widget.locator('.widget-dropdown', has=exact('attack')).first.locator('select')
        other = sel.evaluate('s => Array.from(s.options).find(o => !o.selected).value')
        changed(lambda: sel.select_option(other), 'attack selector')
    elif kind == 'MarginCurves':
        models = widget.locator('.widget-select-multiple', has=page.locator('.widget-label', has_text='models')).first
        if models.locator('option').count() > 1:
            changed(lambda: models.locator('option').first.click(), 'models selector')  # a plain click keeps one model only
        toggle('norm')
    return moves


def _record(name: str, rec: dict):
    RESULTS[name] = rec
    if not TIMINGS: return
    from robust_nb.core import environment_info
    old = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    per = {**old.get('tutorials', {}), **{k: v for k, v in RESULTS.items()}}
    summary = {'seconds_to_first_figure': {k: v['seconds_to_first_figure'] for k, v in per.items()},
               'seconds_total': {k: v['seconds_total'] for k, v in per.items()},
               'budget': BUDGET,
               'over_budget': sorted(k for k, v in per.items() if v['seconds_total'] > BUDGET['seconds_total']
                                     or (v['seconds_to_first_figure'] or 1e9) > BUDGET['seconds_to_first_figure'])}
    doc = {'benchmark': 'tutorials',
           'what': 'each nbs/tutorials notebook opened in JupyterLab 4 in headless Chromium and run with Run All, default '
                   'settings (no IN_TEST), the cells nbdev_test skips (slow, gpu, notest) left out; seconds from Run All to the '
                   'first figure (first image in an output) and to the end of the last cell; the kernel starts before the clock',
           'command': 'ROBUST_NB_TUTORIAL_TIMINGS=1 .venv/bin/pytest -q -rs tests/browser',
           'machine': environment_info('cpu'),
           'omp_num_threads': os.environ.get('OMP_NUM_THREADS'),
           'summary': summary, 'tutorials': per,
           'gpu': old.get('gpu') or {'measured': False, 'how': 'on a GPU machine: nbdev_test --flags "slow gpu" --path '
                                     'nbs/tutorials/NAME.ipynb, and record the seconds here'}}
    RESULTS_JSON.write_text(json.dumps(doc, indent=1) + '\n')


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('lab')
    env = {} if TIMINGS else {'IN_TEST': '1'}
    server = Lab(root, env={**env, 'ROBUST_NB_DATA': os.environ.get('ROBUST_NB_DATA', str(ROOT/'data'))})
    yield server
    server.close()



@pytest.mark.parametrize('nb', tutorials(), ids=lambda p: p.stem)
def test_tutorial_in_jupyterlab(nb: Path, lab, browser):
    name = nb.stem
    prep = prepare_notebook(nb, lab.root/'tutorials'/nb.name)
    OUT.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={'width': 1500, 'height': 1100})
    console = []
    page.on('console', lambda m: console.append(f'{m.type}: {m.text}') if m.type in ('error', 'warning') else None)
    try:
        t_open, load_start = time.time(), os.getloadavg()[0]
        page.goto(lab.url(f'tutorials/{nb.name}'), timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                               "window.jupyterapp.shell.currentWidget.sessionContext", timeout=120_000)
        page.evaluate("async () => { const p = window.jupyterapp.shell.currentWidget; await p.context.ready; await p.sessionContext.ready; }")
        _wait_for(lambda: page.evaluate(KERNEL_JS) == 'idle', 120, 'the kernel to start')
        page.evaluate('() => window.jupyterapp.shell.collapseLeft()')
        kernel_start = time.time() - t_open

        page.evaluate(WATCH_JS)
        state = _wait_for(lambda: (s := page.evaluate('() => window.__rnb')) and s['done'] is not None and s,
                          RUN_TIMEOUT, f'{name} to finish (ROBUST_NB_BROWSER_TIMEOUT={RUN_TIMEOUT:.0f})', every=1)
        _wait_for(lambda: page.evaluate(KERNEL_JS) == 'idle', 60, 'the kernel to go idle')
        page.evaluate('() => clearInterval(window.__rnbTimer)')
        cells = page.evaluate(CELLS_JS)

        # 1. every code cell ran, none has an error output or a traceback on stderr
        errors = [(c['index'], o['text']) for c in cells for o in c['outputs'] if o['type'] == 'error'
                  or (o['type'] == 'stream' and o['name'] == 'stderr' and 'Traceback' in (o['text'] or ''))]
        assert not errors, f"{name}: error output in cells {errors}"
        assert state['ok'], f"{name}: Run All did not finish cleanly: {state}"
        not_run = [c['index'] for c in cells if c['count'] is None and c['source'].strip()]
        assert not not_run, f"{name}: cells never ran: {not_run}"

        # 2. widgets reached the browser as widgets: no text fallback, no "Error displaying widget"
        plain = [o['plain'] for c in cells for o in c['outputs'] if o['plain'] and WIDGET_MIME not in o['mimes']
                 and re.match(r'(VBox|HBox|IntProgress|FloatProgress)\(|<robust_nb\.widgets\.', o['plain'])]
        assert not plain, f"{name}: widgets shown as text (is the ipywidgets front end missing?): {plain}"
        body = page.locator('.jp-Notebook').inner_text()
        assert 'Error displaying widget' not in body, f"{name}: a widget failed to display"
        tqdm_text = [o['text'][:200] for c in cells for o in c['outputs'] if o['type'] == 'stream' and re.search(r'\d+%\|', o['text'] or '')]
        assert not tqdm_text, f"{name}: progress bars fell back to text: {tqdm_text}"

        # 3. progress bars render (tqdm draws them as ipywidgets; leave=False bars vanish at the end, so they are watched live)
        uses_progress = any(re.search(r'progress\s*=\s*True|tqdm', c['source']) for c in cells)
        if uses_progress:
            assert state['bars'] and state['barMax'] > 0, f"{name}: a cell shows progress bars but none rendered: {state}"

        # 4. robust_nb widgets: controls and figures render; moving a control changes the figure
        expected = _expected_widgets(cells)
        views = page.locator('.jp-OutputArea-output > .widget-vbox').filter(has=page.locator('.widget-output'))
        found = {}
        for i in range(views.count()):
            labels = views.nth(i).locator('.widget-label').all_inner_texts()
            kind = next((k for k, lab_ in WIDGETS.items() if lab_ in labels), None)
            if kind: found.setdefault(kind, []).append(views.nth(i))
        assert {k: len(v) for k, v in found.items()} == expected, f"{name}: widgets built {expected}, rendered {found}"
        widgets = {}
        for kind, ws in found.items():
            for j, w in enumerate(ws):
                w.scroll_into_view_if_needed()
                controls = w.locator('.widget-slider, .widget-dropdown, .widget-toggle-buttons, .widget-select-multiple')
                assert controls.count() >= 2 and all(b and b['width'] > 0 and b['height'] > 0 for b in
                                                     (controls.nth(k).bounding_box() for k in range(controls.count()))), \
                    f"{name}: {kind} controls do not render"
                _wait_for(lambda: _images_loaded(w), 60, f'the {kind} figure to render')
                n_img = len(_images(w))
                moves = _move(page, w, kind)
                widgets[f'{kind}[{j}]'] = {'figures': n_img, 'controls': controls.count(), 'moved': moves}

        # 5. one screenshot: the first robust_nb widget (or the first figure) in view
        target = views.first if views.count() else page.locator('.jp-OutputArea-output img').first
        if target.count():
            target.evaluate('e => e.scrollIntoView({block: "center"})')
            page.mouse.move(5, 5); time.sleep(0.5)
        shot = OUT/f'{name}.png'
        page.screenshot(path=str(shot))

        n_fig = page.locator('.jp-OutputArea-output img').count()
        assert state['firstFigure'] is not None and n_fig > 0, f"{name}: no figure rendered"
        _record(name, {'seconds_to_first_figure': round(state['firstFigure'], 1), 'seconds_total': round(state['done'], 1),
                       'seconds_kernel_start': round(kernel_start, 1), 'settings': 'defaults' if TIMINGS else 'IN_TEST=1',
                       'load_average_1min': {'start': round(load_start, 2), 'end': round(os.getloadavg()[0], 2)},
                       **prep, 'figures': n_fig, 'widgets': widgets,
                       'slowest_cells': [{'cell': c['index'], 'seconds': round(c['seconds'], 1), 'first_line': c['source'].strip().splitlines()[0][:80]}
                                         for c in sorted((c for c in cells if c.get('seconds') is not None), key=lambda c: -c['seconds'])[:4]],
                       'progress_bars': {'rendered': bool(state['bars']), 'max_percent': state['barMax'], 'labels': state['barLabels'][:5]},
                       'screenshot': str(shot.relative_to(ROOT)) if shot.is_relative_to(ROOT) else str(shot),
                       'when': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})
        print(f"\n{name}: first figure {state['firstFigure']:.1f} s, total {state['done']:.1f} s, {n_fig} figures, widgets {widgets}")
    except Exception:
        try: page.screenshot(path=str(OUT/f'{name}-failed.png'))
        except Exception: pass
        if console: print('browser console:\n' + '\n'.join(console[-30:]))
        raise
    finally:
        page.close()
