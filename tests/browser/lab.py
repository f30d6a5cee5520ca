"""A headless JupyterLab for the browser tests: tutorials copied to a scratch folder, a random port and token.

The tutorials are copied (JupyterLab autosaves what it runs, and the sources must stay untouched), and the
cells that `nbdev_test` skips (`#| slow`, `#| gpu`, `#| notest`, `#| eval: false`) become raw cells, so that
"Run All" runs exactly what `nbdev_test` runs."""
from __future__ import annotations

import json, os, re, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get('ROBUST_NB_CHROMIUM', '/usr/bin/chromium'))
CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
                 '--disable-sync', '--no-first-run']


def tutorials() -> list[Path]:
    "Every tutorial notebook, found when the tests run."
    return sorted((ROOT/'nbs'/'tutorials').glob('*.ipynb'))


def skip_flags() -> set[str]:
    "The cell flags nbdev_test skips by default (settings.ini tst_flags)."
    text = (ROOT/'settings.ini').read_text()
    m = re.search(r'^tst_flags\s*=\s*(.*)$', text, re.M)
    return set(m.group(1).split()) if m else {'notest', 'slow', 'gpu'}


def _skipped(source: str, flags: set[str]) -> bool:
    for line in source.splitlines():
        m = re.match(r'\s*#\|\s*(.*)$', line)
        if not m: break
        d = m.group(1).strip()
        if d in flags or re.fullmatch(r'eval\s*:\s*false', d): return True
    return False


def prepare_notebook(src: Path, dest: Path) -> dict:
    "Copy `src` to `dest` with the cells nbdev_test skips turned into raw cells; return what was done."
    nb = json.loads(src.read_text())
    flags, skipped, code = skip_flags(), 0, 0
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        src_text = ''.join(c['source'])
        if _skipped(src_text, flags):
            c['cell_type'] = 'raw'; skipped += 1
            for k in ('outputs', 'execution_count'): c.pop(k, None)
        else:
            code += 1; c['outputs'] = []; c['execution_count'] = None
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1))
    return {'code_cells': code, 'skipped_cells': skipped}


def wait_for(cond, timeout: float, what: str, every: float = 0.1):
    "The first truthy value of `cond()`, polled every `every` seconds; an AssertionError naming `what` after `timeout`."
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v: return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# Front-end settings: every cell in the DOM (no windowing, so outputs far down are there to check), per-cell execution
# times in the cell metadata, no news or update checks.
USER_SETTINGS = {
    '@jupyterlab/notebook-extension/tracker.jupyterlab-settings': {'windowingMode': 'none', 'recordTiming': True},
    '@jupyterlab/apputils-extension/notification.jupyterlab-settings': {'fetchNews': 'false', 'checkForUpdates': False},
}


def server_env(root: Path, extra: dict | None = None) -> dict:
    "The server's (and so the kernels') environment: ours without pytest's variables, plus `extra`."
    # robust_nb.core.in_test() reads PYTEST_CURRENT_TEST (and IN_TEST): inherited, they would shrink every tutorial
    base = {k: v for k, v in os.environ.items() if not k.startswith('PYTEST_') and k != 'IN_TEST'}
    return {**base, 'JUPYTER_RUNTIME_DIR': str(Path(root)/'.lab'/'runtime'), 'MPLBACKEND': 'Agg',
            'PYDEVD_DISABLE_FILE_VALIDATION': '1', **(extra or {})}


class Lab:
    "A JupyterLab server on 127.0.0.1 serving `root`; `url(path)` opens a notebook."
    def __init__(self, root: Path, env: dict | None = None, timeout: float = 120):
        self.root, self.port, self.token = Path(root), free_port(), secrets.token_hex(16)
        settings = self.root/'.lab'/'settings'
        for name, value in USER_SETTINGS.items():
            p = settings/name; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(value))
        full_env = server_env(self.root, env)
        cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ServerApp.ip=127.0.0.1', f'--ServerApp.port={self.port}',
               '--ServerApp.port_retries=0', f'--IdentityProvider.token={self.token}', f'--ServerApp.root_dir={self.root}',
               f'--LabApp.user_settings_dir={settings}', f"--LabApp.workspaces_dir={self.root/'.lab'/'workspaces'}",
               '--LabApp.expose_app_in_browser=True', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
               '--ServerApp.disable_check_xsrf=False']
        if hasattr(os, 'geteuid') and os.geteuid() == 0: cmd.append('--allow-root')
        self.log_path = self.root/'.lab'/'server.log'
        self._log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait(timeout)

    def _wait(self, timeout):
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{self.port}/api/status?token={self.token}', timeout=2) as r:
                    if r.status == 200: return
            except OSError: pass
            time.sleep(0.5)
        self.close()
        raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def url(self, path: str) -> str:
        return f'http://127.0.0.1:{self.port}/lab/tree/{path}?reset&token={self.token}'

    def close(self):
        "Shut the kernels and the server down."
        if self.proc.poll() is None:
            try: urllib.request.urlopen(urllib.request.Request(
                f'http://127.0.0.1:{self.port}/api/shutdown?token={self.token}', method='POST'), timeout=10)
            except OSError: pass
            try: self.proc.wait(20)
            except subprocess.TimeoutExpired: pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try: self.proc.wait(20)
            except subprocess.TimeoutExpired: self.proc.kill(); self.proc.wait()
        self._log.close()
