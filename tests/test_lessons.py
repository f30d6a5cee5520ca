"""Every tutorial is committed executed (`make lessons`): outputs, no error output, every code cell run, in order, in one go.
The check reads the run times nbclient records in each cell's metadata, which nbdev_clean keeps (settings.ini)."""
import importlib.util, json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location('lessons', ROOT/'scripts'/'lessons.py')
lessons = importlib.util.module_from_spec(spec); spec.loader.exec_module(lessons)


@pytest.mark.parametrize('path', lessons.tutorials(), ids=lambda p: p.stem)
def test_tutorial_is_committed_executed_in_order(path):
    assert lessons.problems(path) == []


def _cell(source, start=None, end=None, outputs=()):
    meta = {'execution': {'iopub.execute_input': start, 'shell.execute_reply': end or start}} if start else {}
    return dict(cell_type='code', source=source, metadata=meta, outputs=list(outputs), execution_count=None)


def test_the_check_finds_each_problem(tmp_path):
    out = {'output_type': 'stream', 'name': 'stdout', 'text': '1\n'}
    err = {'output_type': 'error', 'ename': 'ValueError', 'evalue': 'x', 'traceback': []}
    def problems(*cells):
        p = tmp_path/'t.ipynb'; p.write_text(json.dumps({'cells': list(cells)}))
        return lessons.problems(p)
    t = lambda s: f'2026-12-05T10:00:{s:02d}.000000Z'
    assert problems(_cell('a', t(1), t(2), [out]), _cell('b', t(3), t(4))) == []
    assert problems(_cell('a'), _cell('b')) == ['no outputs: run `make lessons`', '2 of 2 code cells have no record of running (cells 1, 2): run `make lessons`']
    assert problems(_cell('a', t(1), t(2), [out, err])) == ['code cell 1 has an error output']
    assert problems(_cell('a', t(5), t(6), [out]), _cell('b', t(1), t(2))) == ['code cell 2 ran before the cell above it']
    assert lessons.seconds(tmp_path/'t.ipynb') is not None
