"""The committed result of every reproduction, recomputed: from the records a result JSON holds, each paper module's table and
claim functions give back the tables and claims the JSON holds, and every `Claim` held agrees with the JSON's yes / no figure."""
import json, math
from pathlib import Path

import pandas as pd
import pytest
from dataclasses import asdict

from robust_nb.experiments import ceb, fcl, margins, mtlat, transfer
from robust_nb.experiments.common import Result, _rows

RESULTS = Path(__file__).parent.parent/'benchmarks'/'results'

# How each committed JSON was written: its module, how its tables were stored, the key of its claim figures, and the
# tolerance of its numbers. json.dumps writes a float's shortest repr, which reads back as the same double: tolerance 0.
# The M-TLAT file went through pandas' to_json, which writes 10 decimal places: every record is off by at most 5e-11,
# so a mean of records, or the difference of two means, by at most 1e-10.
CASES = {
    'fcl_table1_fashion_mnist.json': (fcl, lambda r: {'table': fcl.fcl_table(r).reset_index().to_dict('records')}, 'claim', 0.0),
    'ceb_fmnist_cpu.json': (ceb, lambda r: {'table': ceb.ceb_table(r).to_dict('records')}, 'claim', 0.0),
    'mtlat_fmnist_cpu.json': (mtlat, lambda r: {'benchmark_table': json.loads(mtlat.benchmark_table(r).reset_index().to_json(orient='records')),
                                                'ablation_table': json.loads(mtlat.ablation_table(r).reset_index().to_json(orient='records'))},
                              'claims', 1e-10),
    'tibo_margins_fmnist.json': (margins, lambda r: {'table1': margins.accuracy_table(r).to_dict('index'), 'margins': margins.margin_table(r).to_dict('index'),
                                                     'table3': {' / '.join(k): v for k, v in margins.share_table(r).T.to_dict('index').items()}},
                                 'claim', 0.0),
    'tibo_transfer_fmnist.json': (transfer, lambda r: {'table2': transfer.transfer_table2(r).reset_index().to_dict('records'),
                                                       'tables_per_corruption': {k: transfer.transfer_table_per_corruption(r, k).reset_index().to_dict('records')
                                                                                 for k in dict.fromkeys(r.classifier)}},
                                  'claim', 0.0),
}
# Each seed of the runs at scale, kept as benchmarks/results/scale/PAPER/seedN/NAME.json by scripts/reproduce_at_scale.sh (new form only).
SCALE = {'ceb': (ceb, 0.0), 'mtlat': (mtlat, 1e-10), 'margins': (margins, 0.0), 'transfer': (transfer, 0.0)}
CASES |= {str(p.relative_to(RESULTS)): (SCALE[p.parts[-3]][0], None, 'claims', SCALE[p.parts[-3]][1])
          for p in sorted(RESULTS.glob('scale/*/seed*/*.json'))}
FIGURES = {fcl: fcl.fcl_claim, ceb: ceb.ceb_claim, mtlat: mtlat.mtlat_claims, margins: margins.margins_claim, transfer: transfer.transfer_claim}


def _nan(v) -> bool: return v is None or (isinstance(v, float) and math.isnan(v))


def same(a, b, tol: float, where: str = ''):
    "`a == b` for JSON-like values: floats within `tol`, NaN and null alike, anything else exactly."
    if isinstance(a, dict) and isinstance(b, dict):
        assert set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))} differ"
        for k in a: same(a[k], b[k], tol, f'{where}.{k}')
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        assert len(a) == len(b), f"{where}: {len(a)} items against {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)): same(x, y, tol, f'{where}[{i}]')
    elif _nan(a) or _nan(b): assert _nan(a) and _nan(b), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, float) or isinstance(b, float): assert abs(a - b) <= tol, f"{where}: {a!r} != {b!r} (tolerance {tol})"
    else: assert a == b, f"{where}: {a!r} != {b!r}"


def stored(name):
    js = json.loads((RESULTS/name).read_text())
    return js, pd.DataFrame(js['records'])


def claims_as_stored(mod, records, js) -> tuple[dict, dict]:
    "(the claims the module gives now, those the JSON holds), by name, of the names the JSON holds: a claim added since is not among them."
    stored_claims = {c['name']: c for c in js['claims']}
    now = {c.name: asdict(c) for c in mod.claims(records)}
    assert set(stored_claims) <= set(now), f"claims no longer made: {sorted(set(stored_claims) - set(now))}"
    return {k: now[k] for k in stored_claims}, stored_claims


def new_form(js) -> bool:
    "Written by `Reproduction.report`: the tables under 'tables', the claims a list of `Claim`s (the older files hold a dict of claim figures)."
    return isinstance(js.get('claims'), list)


@pytest.mark.parametrize('name', CASES)
def test_tables_recomputed_from_records(name):
    mod, old_form, _, tol = CASES[name]
    js, records = stored(name)
    if new_form(js): return same({k: _rows(t) for k, t in mod.tables(records).items()}, js['tables'], tol, name)
    for key, table in old_form(records).items(): same(table, js[key], tol, f'{name}:{key}')


@pytest.mark.parametrize('name', CASES)
def test_new_result_form_recomputes_exactly(name):
    "The result JSON `reproduce` writes today, made from the committed records, gives back its tables and claims from its own records."
    mod = CASES[name][0]
    js, records = stored(name)
    result = Result(records, js['recipe'], js['seconds'], js['machine'])
    written = json.loads(json.dumps(mod.reproduction.report(result, log=None), default=str))
    again = pd.DataFrame(written['records'])
    same({k: _rows(t) for k, t in mod.tables(again).items()}, written['tables'], 0.0, name)
    same([asdict(c) for c in mod.claims(again)], written['claims'], 0.0, name)
    assert written['tables'] and written['claims'] and list(written['tables'])[0] in {'table1', 'rho_sweep', 'benchmark', 'table2'}


@pytest.mark.parametrize('name', CASES)
def test_claim_figures_recomputed_from_records(name):
    "Every figure the JSON's claim check holds comes back from the records (the functions may add figures, never change one)."
    mod, _, key, tol = CASES[name]
    js, records = stored(name)
    if new_form(js): return same(*claims_as_stored(mod, records, js), tol, name)
    figures = FIGURES[mod](records)
    if mod is transfer:
        for k, old in js[key].items(): same({f: figures[k][f] for f in old}, old, tol, f'{name}:{k}')
    else: same({f: figures[f] for f in js[key]}, js[key], tol, name)


@pytest.mark.parametrize('name', CASES)
def test_claims_hold_as_stored(name):
    "Each `Claim` of the new form holds where the JSON's yes / no figure says so, and measures the figure the JSON holds."
    mod, _, key, tol = CASES[name]
    js, records = stored(name)
    claims = mod.claims(records)
    assert claims, name
    if new_form(js):
        now, then = claims_as_stored(mod, records, js)
        assert {k: c['held'] for k, c in now.items()} == {k: c['held'] for k, c in then.items()}, name
        return
    for c in claims:
        old = js[key][c.name.split('.')[0]] if mod is transfer else js[key]
        flag = c.name.split('.')[-1]
        if flag not in old: continue  # a claim the JSON did not state as a yes / no figure
        assert c.held == old[flag], (name, c.name)
    stated = [c for c in claims if c.name.split('.')[-1] in (js[key][c.name.split('.')[0]] if mod is transfer else js[key])]
    assert stated, f"{name}: no claim of the new form is among the JSON's figures"


def test_recipes_read_back():
    "Each committed recipe is a valid recipe of its module (extra derived entries aside)."
    for name, (mod, *_) in CASES.items():
        js, _ = stored(name)
        fields = {f for f in mod.reproduction.recipe.__dataclass_fields__}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in js['recipe'].items() if k in fields}
        mod.reproduction.recipe(**kw)
