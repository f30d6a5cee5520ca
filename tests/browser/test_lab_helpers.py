"""The browser tests' helpers, checked without a browser: which cells Run All gets, free ports, tutorial discovery."""
import json, socket

from .lab import ROOT, _skipped, free_port, prepare_notebook, server_env, skip_flags, tutorials


def test_skip_flags_follow_settings_ini():
    assert {'slow', 'gpu', 'notest'} <= skip_flags()


def test_flagged_cells_become_raw(tmp_path):
    cells = [('code', '#| slow\nrun_paper()'), ('code', '#| hide\nx = 1'), ('code', '#| gpu\n#| hide\ny = 2'),
             ('markdown', '#| slow is only text here'), ('code', 'z = 3  #| slow (a comment after code)'),
             ('code', '#| eval: false\nnever()'), ('code', '#|notest\nskip()')]
    nb = {'cells': [{'cell_type': t, 'metadata': {}, 'source': s, **({'outputs': [{'output_type': 'stream', 'name': 'stdout', 'text': 'old'}],
                      'execution_count': 4} if t == 'code' else {})} for t, s in cells],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    src = tmp_path/'a.ipynb'; src.write_text(json.dumps(nb))
    info = prepare_notebook(src, tmp_path/'out'/'a.ipynb')
    out = json.loads((tmp_path/'out'/'a.ipynb').read_text())['cells']
    assert [c['cell_type'] for c in out] == ['raw', 'code', 'raw', 'markdown', 'code', 'raw', 'raw']
    assert info == {'code_cells': 2, 'skipped_cells': 4}
    assert all(c['outputs'] == [] and c['execution_count'] is None for c in out if c['cell_type'] == 'code')
    assert 'outputs' not in out[0] and src.read_text() == json.dumps(nb)  # the source notebook is untouched
    assert not _skipped('x = 1\n#| slow', {'slow'})  # a directive counts only in the leading comment block


def test_free_port_is_bindable():
    p = free_port()
    with socket.socket() as s: s.bind(('127.0.0.1', p))


def test_tutorials_are_found():
    found = tutorials()
    assert found and all(p.parent == ROOT/'nbs'/'tutorials' and p.suffix == '.ipynb' for p in found)
    assert {'fcl', 'corruptions'} <= {p.stem for p in found}


def test_kernels_do_not_inherit_test_mode(tmp_path, monkeypatch):
    monkeypatch.setenv('IN_TEST', '1')  # pytest itself sets PYTEST_CURRENT_TEST while a test runs
    env = server_env(tmp_path)
    assert 'PYTEST_CURRENT_TEST' not in env and 'IN_TEST' not in env and env['MPLBACKEND'] == 'Agg'
    assert server_env(tmp_path, {'IN_TEST': '1'})['IN_TEST'] == '1'
