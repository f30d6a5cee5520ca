"""Sweeps on Ray (`robust-nb reproduce <paper> --ray`): the records of the sequential run, a worker killed mid-run and
retried, a unit failing twice named while the others are kept, a rerun that runs only what is missing, and the install
message where Ray is absent; and the same units run one after another without Ray (`--resume`), resumed after a cut.

The paper run is FCL Table 1, the fastest reproduction, shrunk to 1,000 training images, 2 epochs and 2 seeds: four
units (method x seed) of a few seconds each. One Ray instance on 2 CPUs serves the whole module. The records are compared
exactly, all but `train_seconds`, the wall-clock time of each training, which differs between any two runs."""
import argparse, dataclasses, functools, importlib.util, json, os, shutil, sys
from pathlib import Path

import pytest

from robust_nb.cli import main
from robust_nb.experiments import fcl

from _threads import one_thread

needs_ray = pytest.mark.skipif(importlib.util.find_spec('ray') is None, reason='Ray is not installed (pip install "robust_nb[scale]")')

OPTIONS = ['--quick', '--seeds', '2', '--train-size', '1000', '--eval-size', '200', '--epochs', '2', '--start-epoch', '0.5',
           '--warmup-epochs', '0.5', '--k', '64', '--device', 'cpu', '--quiet']
RECIPE = fcl.FCLRecipe.quick(seeds=2, train_size=1000, eval_size=200, epochs=2, start_epoch=0.5, warmup_epochs=0.5, k=64, device='cpu')
CLOCKS = ('train_seconds',)
UNITS = ['seed-0_methods-xe', 'seed-0_methods-fcl', 'seed-1_methods-xe', 'seed-1_methods-fcl']


def stem() -> str: return fcl.reproduction.stem(RECIPE, 'quick')


def records(folder) -> list[dict]:
    "The records of the result JSON in `folder`, without the wall-clock columns."
    js = json.loads((Path(folder)/f'{stem()}.json').read_text())
    return [{k: v for k, v in r.items() if k not in CLOCKS} for r in js['records']]


def unit_files(out) -> list[str]:
    "The units kept under `out`, by their shown names, in the order of the run."
    names = {p.name.rsplit('_', 1)[0] for p in (Path(out)/'units'/stem()).glob('*.json')}
    return [u for u in UNITS if u in names]


@pytest.fixture(scope='module')
def ray_cpus2():
    ray = pytest.importorskip('ray')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the run wrappers below travel to the workers by value
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


@pytest.fixture(scope='module')
def sequential(tmp_path_factory, fmnist_available):
    "The folder of the sequential run (one torch thread, as each Ray unit has with one CPU)."
    out = tmp_path_factory.mktemp('sequential')
    with one_thread(): assert main(['reproduce', 'fcl', *OPTIONS, '--out', str(out)]) == 0
    return out


@pytest.fixture(scope='module')
def on_ray(ray_cpus2, tmp_path_factory, fmnist_available):
    "The folder of the same command with `--ray`, and what it printed."
    out = tmp_path_factory.mktemp('ray')
    from contextlib import redirect_stdout
    from io import StringIO
    with redirect_stdout(StringIO()) as text: assert main(['reproduce', 'fcl', *OPTIONS, '--out', str(out), '--ray']) == 0
    return out, text.getvalue()


@needs_ray
def test_ray_gives_the_records_tables_and_files_of_the_sequential_run(sequential, on_ray):
    out, printed = on_ray
    assert records(out) == records(sequential)
    seq, par = (json.loads((Path(d)/f'{stem()}.json').read_text()) for d in (sequential, out))
    assert (par['tables'], par['claims'], par['recipe']) == (seq['tables'], seq['claims'], seq['recipe'])
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in sequential.iterdir()] + ['units'])
    assert [u['unit'] for u in par['ray']['units']] == [{'first_seed': s, 'seeds': 1, 'methods': [m]} for s in (0, 1) for m in ('xe', 'fcl')]
    lines = [l for l in printed.splitlines() if l.startswith('unit seed')]
    assert len(lines) == 4 and all(l.endswith(f'({i}/4)') for i, l in enumerate(lines, 1))
    assert unit_files(out) == UNITS


def _dies_once(marker: str, recipe, progress=False, log=None):
    "FCL's run, whose worker dies (os._exit) after training the unit of seed 1 and method fcl, the first time only (`marker` says it did)."
    res = fcl.run(recipe, progress, log)
    if (recipe.first_seed, recipe.methods) == (1, ('fcl',)) and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return res


@needs_ray
def test_a_killed_worker_is_retried_and_the_records_stay(ray_cpus2, sequential, tmp_path):
    rep = dataclasses.replace(fcl.reproduction, run=functools.partial(_dies_once, str(tmp_path/'died')))
    js = rep.reproduce_on_ray(RECIPE, tmp_path/'out', 'quick', log=None)
    assert (tmp_path/'died').exists()
    assert records(tmp_path/'out') == records(sequential)
    assert [u['ran'] for u in js['ray']['units']] == [True] * 4


def _always_fails(tries: str, recipe, progress=False, log=None):
    "FCL's run, raising on the unit of seed 1 and method fcl every time; each try leaves a file in `tries`."
    if (recipe.first_seed, recipe.methods) == (1, ('fcl',)):
        Path(tries, f'try{len(os.listdir(tries))}').touch()
        raise RuntimeError('this unit always fails')
    return fcl.run(recipe, progress, log)


@needs_ray
def test_a_unit_failing_twice_is_named_and_the_others_kept(ray_cpus2, tmp_path, capsys):
    tries = tmp_path/'tries'
    tries.mkdir()
    rep = dataclasses.replace(fcl.reproduction, run=functools.partial(_always_fails, str(tries)))
    p = argparse.ArgumentParser()
    rep.add_arguments(p)
    assert rep.cli(p.parse_args([*OPTIONS, '--out', str(tmp_path/'out'), '--ray'])) == 1
    err = capsys.readouterr().err
    assert '1 unit(s) failed after a retry: seed 1, methods fcl: RuntimeError: this unit always fails' in err
    assert sorted(os.listdir(tries)) == ['try0', 'try1']
    assert unit_files(tmp_path/'out') == UNITS[:3]
    assert not (tmp_path/'out'/f'{stem()}.json').exists()


def _noted(ran: str, recipe, progress=False, log=None):
    "FCL's run, leaving a file named after each unit it runs in `ran`."
    Path(ran, f'seed-{recipe.first_seed}_methods-{recipe.methods[0]}').touch()
    return fcl.run(recipe, progress, log)


@needs_ray
def test_a_rerun_runs_only_the_missing_units(sequential, on_ray, tmp_path):
    out, ran = tmp_path/'out', tmp_path/'ran'
    shutil.copytree(on_ray[0], out)
    ran.mkdir()
    folder = out/'units'/stem()
    next(folder.glob('seed-1_methods-xe_*.json')).unlink()  # missing
    cut = next(folder.glob('seed-0_methods-fcl_*.json'))
    cut.write_text(cut.read_text()[:100])  # cut short, as by a crash while it was written without atomic_write
    rep = dataclasses.replace(fcl.reproduction, run=functools.partial(_noted, str(ran)))
    js = rep.reproduce_on_ray(RECIPE, out, 'quick', log=None)
    assert sorted(os.listdir(ran)) == ['seed-0_methods-fcl', 'seed-1_methods-xe']
    assert [u['ran'] for u in js['ray']['units']] == [False, True, True, False]
    assert records(out) == records(sequential)


def test_without_ray_the_install_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, 'ray', None)  # `import ray` now fails as where it is not installed
    assert main(['reproduce', 'fcl', *OPTIONS, '--out', str(tmp_path/'out'), '--ray']) == 2
    assert 'pip install "robust_nb[scale]"' in capsys.readouterr().err
    with pytest.raises(ImportError, match=r'pip install "robust_nb\[scale\]"'): fcl.reproduction.reproduce_on_ray(RECIPE, tmp_path/'out')
    assert not (tmp_path/'out').exists()


def test_resume_in_process_runs_only_the_missing_units(sequential, tmp_path):
    "`--resume` without Ray: the sequential run's records, unit by unit; a unit file removed (a run cut short) is the only unit run again."
    with one_thread(): assert main(['reproduce', 'fcl', *OPTIONS, '--resume', '--out', str(tmp_path)]) == 0
    assert records(tmp_path) == records(sequential) and unit_files(tmp_path) == UNITS
    next((tmp_path/'units'/stem()).glob('seed-1_methods-xe_*.json')).unlink()
    with one_thread(): assert main(['reproduce', 'fcl', *OPTIONS, '--resume', '--out', str(tmp_path)]) == 0
    js = json.loads((tmp_path/f'{stem()}.json').read_text())
    assert [u['ran'] for u in js['units']['units']] == [False, False, True, False]
    assert records(tmp_path) == records(sequential)
