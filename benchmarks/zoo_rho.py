"""The rho of the zoo's `vib` and `ceb` entries, chosen on validation.

    python benchmarks/zoo_rho.py [--folder runs/zoo_rho] [--rhos 1,3,5] [--out benchmarks/results]

Each candidate is the zoo recipe with only rho changed, built into FOLDER/<method>_rho<rho>/ (a candidate already built
there is read, not rebuilt; the shipped entry stands for the shipped rho). The rule, fixed before any candidate was
trained: the smallest rho whose best validation accuracy (5,000 held-out training images) is within 0.5 points of the
best candidate's. A smaller rho compresses the representation more, which is what CEB and VIB are taught for (robustness),
so it is preferred as long as it costs no more than half a point of accuracy. Writes zoo_rho.json into --out."""
import argparse, json
from pathlib import Path

from robust_nb import zoo
from robust_nb.core import environment_info

TOLERANCE = 0.005


def candidate(method: str, rho: float, folder: Path) -> dict:
    "The manifest entry of `method` at `rho`: the shipped one at the shipped rho, else built (or read) in its own folder."
    if zoo.recipe(method).params['rho'] == rho: return zoo.read_manifest()[method]
    sub = folder/f'{method}_rho{rho}'
    built = zoo.read_manifest(sub)
    return built[method] if method in built else zoo.build(method, sub, progress=False, params={**zoo.recipe(method).params, 'rho': rho})


def choose(val: dict) -> float:
    "The smallest rho whose validation accuracy is within `TOLERANCE` of the best."
    best = max(val.values())
    return min(r for r, v in val.items() if v >= best - TOLERANCE - 1e-12)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--folder', default='runs/zoo_rho')
    p.add_argument('--rhos', default='1,3,5')
    p.add_argument('--out', default=str(Path(__file__).parent/'results'))
    a = p.parse_args()
    rhos, out = [float(r) for r in a.rhos.split(',')], {}
    for method in ('vib', 'ceb'):
        entries = {r: candidate(method, r, Path(a.folder)) for r in rhos}
        val = {r: e['val_acc'] for r, e in entries.items()}
        out[method] = dict(chosen=choose(val), shipped=zoo.recipe(method).params['rho'],
                           candidates=[dict(rho=r, val_acc=e['val_acc'], test_acc=e['test_acc'], best_epoch=e['best_epoch'],
                                            seconds=e['seconds'], sha256=e['sha256']) for r, e in entries.items()])
        print(method, {r: round(v, 4) for r, v in val.items()}, '-> rho', out[method]['chosen'])
    res = dict(rule=f"smallest rho whose best validation accuracy is within {TOLERANCE * 100:g} points of the best candidate's",
               rhos=rhos, methods=out, machine=environment_info('cpu'), seed=zoo.recipe('vib').seed)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out)/'zoo_rho.json').write_text(json.dumps(res, indent=1))
    print(f"wrote {Path(a.out)/'zoo_rho.json'}")


if __name__ == '__main__': main()
