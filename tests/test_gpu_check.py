"""scripts/gpu_check.sh, the prepared GPU run, checked here through its --dry-run: every part for a few steps on the CPU,
results in a temporary folder, benchmarks/results/ left alone; and its deadline, which skips what would not fit."""
import hashlib, json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT/'scripts'/'gpu_check.sh'
RESULTS = ROOT/'benchmarks'/'results'
PARTS = ['setup', 'cuda_tests', 'train_throughput', 'attacks', 'corruptions', 'fcl_overhead', 'fcl_table1', 'notebooks_gpu', 'zoo']
OUTPUTS = {'train_throughput': 'train_throughput.json', 'attacks': 'attacks.json', 'corruptions': 'corruptions.json',
           'fcl_overhead': 'fcl_overhead.json', 'fcl_table1': 'fcl_table1_fashion_mnist.json'}
MAY_SKIP = {'notebooks_gpu', 'zoo'}  # skipped with a reason while no notebook has a `#| gpu` cell and the zoo is absent
# the files a run could write into benchmarks/results/ (other work may add other files there meanwhile)
WATCHED = [*OUTPUTS.values(), 'fcl_table1_fashion_mnist.csv', *(n.replace('.json', '_cuda.json') for n in OUTPUTS.values()),
           'fcl_table1_fashion_mnist_cuda.csv']


def snapshot(folder: Path) -> dict:
    "Name -> SHA-256 (None when absent) of each file a run could write into `folder`."
    return {n: hashlib.sha256((folder/n).read_bytes()).hexdigest() if (folder/n).exists() else None for n in WATCHED}


def gpu_check(out: Path, *args: str, timeout: float = 2000) -> subprocess.CompletedProcess:
    "The dry run into `out`; the budget is loose so that a busy machine slows it down without cutting parts."
    env = {k: v for k, v in os.environ.items() if k != 'OUT'}
    return subprocess.run(['bash', str(SCRIPT), '--dry-run', '--out', str(out), '--python', sys.executable, '--budget', '1800', *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def summary(out: Path) -> dict:
    return json.loads((out/'gpu_check_summary.json').read_text())


@pytest.fixture(scope='module')
def dry_run(tmp_path_factory, fmnist_available):
    before = snapshot(RESULTS)
    out = tmp_path_factory.mktemp('gpu_check')
    r = gpu_check(out)
    return r, out, before, snapshot(RESULTS)


def test_dry_run_succeeds(dry_run):
    r, out, *_ = dry_run
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    s = summary(out)
    assert s['mode'] == 'dry-run' and s['device'] == 'cpu' and s['failed'] == []


def test_every_part_ran_or_says_why_not(dry_run):
    r, out, *_ = dry_run
    parts = summary(out)['parts']
    assert [p['part'] for p in parts] == PARTS
    for p in parts:
        if p['part'] in MAY_SKIP and p['status'] == 'skipped': assert p['note'], p
        else: assert p['status'] == 'ok', p
    for name in PARTS: assert name in r.stdout  # the summary table


def test_results_written_with_machine(dry_run):
    _, out, *_ = dry_run
    parts = {p['part']: p for p in summary(out)['parts']}
    for part, name in OUTPUTS.items():
        assert parts[part]['output'] == name
        js = json.loads((out/name).read_text())
        assert js['machine']['device'] == 'cpu', (name, js['machine'])
    fcl = json.loads((out/OUTPUTS['fcl_table1']).read_text())
    assert sorted({r['seed'] for r in fcl['records']}) == [0, 1]  # two runs split by seed, joined by --combine
    assert len(fcl['combined_from']) == 2
    assert (out/'gpu_check.log').stat().st_size > 0 and (out/'gpu_check_parts.tar.gz').stat().st_size > 0


def test_benchmarks_results_untouched(dry_run):
    *_, before, after = dry_run
    assert after == before


def test_deadline_skips_what_does_not_fit(tmp_path, fmnist_available):
    r = gpu_check(tmp_path, '--budget', '4', timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    parts = summary(tmp_path)['parts']
    assert [p['part'] for p in parts] == PARTS
    assert parts[0]['status'] == 'ok'  # setup always runs
    for p in parts[1:]:
        assert p['status'] == 'skipped' and p['note'], p
    assert any('would not fit' in p['note'] for p in parts[1:])


def test_dry_run_never_writes_into_benchmarks_results():
    before = snapshot(RESULTS)
    r = subprocess.run(['bash', str(SCRIPT), '--dry-run', '--out', str(RESULTS), '--python', sys.executable],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'benchmarks/results' in r.stderr
    assert snapshot(RESULTS) == before


def test_bad_usage():
    for args in (['--budget', 'soon'], ['--only', 'everything'], ['--fcl-jobs', '0'], ['--frobnicate']):
        r = subprocess.run(['bash', str(SCRIPT), '--dry-run', *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and 'gpu_check:' in r.stderr, (args, r.stderr)
