"""The robust-nb command, run as a user would."""
import json, os, subprocess, sys
from pathlib import Path

EXE = [str(Path(sys.executable).parent/'robust-nb')]   # the installed console script


def run(*args, **kw):
    return subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=600, **kw)


def test_data_lists_every_dataset(fmnist_available):
    r = run('data')
    assert r.returncode == 0, r.stderr
    for name in ('mnist', 'fashion_mnist', 'cifar10', 'cifar100', 'svhn'):
        assert name in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.strip().startswith('fashion_mnist') and ' test ' in l)
    assert 'fashion' in line.split('test', 1)[1]   # a folder was found


def test_train_prints_history_and_test_accuracy(tmp_path, fmnist_available):
    r = run('train', '--limit', '1500', '--epochs', '1', '--quiet', '--out', str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert 'val_acc' in r.stdout and 'test accuracy:' in r.stdout
    res = json.loads((tmp_path/'result.json').read_text())
    assert 0.5 < res['test_acc'] <= 1
    assert (tmp_path/'lenet_fashion_mnist.safetensors').exists() and (tmp_path/'history.csv').exists()


def test_bad_arguments_exit_2_with_message(fmnist_available):
    r = run('train', '--batch-size', '0', '--limit', '300', '--quiet')
    assert r.returncode == 2 and 'argument --batch-size: must be >= 1' in r.stderr
    r = run('train', '--model', 'nope')
    assert r.returncode == 2 and "invalid choice: 'nope'" in r.stderr


def test_missing_dataset_exit_2(tmp_path):
    env = {**os.environ, 'ROBUST_NB_DATA': str(tmp_path)}
    r = run('train', '--dataset', 'svhn', '--quiet', env=env, cwd=tmp_path)
    if r.returncode == 0: return  # SVHN happens to be on this machine
    assert r.returncode == 2 and 'robust-nb data --download svhn' in r.stderr


def test_reproduce_fcl_combine_joins_runs_split_by_seed(tmp_path):
    recipe = dict(dataset='fashion_mnist', methods=['xe', 'fcl'], epochs=20, device='cpu')
    def part(name, seeds):
        recs = [dict(method=m, seed=s, dataset='fashion_mnist', bal=0.70 + 0.01 * s, bal_un=0.40 + 0.1 * (m == 'fcl') + 0.01 * s,
                     bal_nun=0.50 + 0.05 * (m == 'fcl')) for s in seeds for m in ('xe', 'fcl')]
        path = tmp_path/name/'fcl_table1_fashion_mnist.json'; path.parent.mkdir()
        path.write_text(json.dumps(dict(recipe=dict(recipe, seeds=len(seeds), first_seed=seeds[0]), records=recs, seconds=10.0)))
        return str(path)
    a, b = part('a', [0, 1]), part('b', [2, 3])
    r = run('reproduce', 'fcl', '--combine', f'{a},{b}', '--out', str(tmp_path/'all'))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path/'all'/'fcl_table1_fashion_mnist.json').read_text())
    assert (res['recipe']['seeds'], res['recipe']['first_seed'], res['seconds']) == (4, 0, 20.0)
    assert sorted({rec['seed'] for rec in res['records']}) == [0, 1, 2, 3]
    claims = {c['name']: c for c in res['claims']}
    assert abs(claims['bal_un_gain_over_2sd']['measured'] - 0.1) < 1e-9 and claims['bal_un_gain_over_2sd']['held']   # sd of the seeds 0.0129
    assert abs(claims['bal_within_one_point']['measured']) < 1e-9 and claims['bal_within_one_point']['held']
    assert (tmp_path/'all'/'fcl_table1_fashion_mnist.png').exists() and (tmp_path/'all'/'fcl_table1_fashion_mnist.csv').exists()
    r = run('reproduce', 'fcl', '--combine', f"{a},{part('c', [1, 2])}", '--out', str(tmp_path/'bad'))   # seed 1 twice
    assert r.returncode == 2 and 'share seeds' in r.stderr
    assert not (tmp_path/'bad').exists()
