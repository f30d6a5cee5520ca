"""How large HEIN's cross-Lipschitz term grows beside the cross-entropy on the margins run at scale's f, to size its lambda grid.

    python scripts/hein_scale_probe.py        # writes benchmarks/results/scale/margins/hein_omega_probe.json (about a minute on 2 cores)

f (16 channels, dense 256) is trained with plain cross-entropy, as NO REG, on seed 0's training split; at initialisation and after
each of two epochs, the cross-entropy and Omega (robust_nb.methods.cotrain.cross_lipschitz, f in eval mode) are measured on 512
validation images. lambda * Omega beside the cross-entropy is the share of HEIN's loss its regulariser would take at that point."""
import json
from pathlib import Path
import torch, torch.nn.functional as F
from robust_nb.core import atomic_write, environment_info, seed_everything
from robust_nb.experiments.margins import MarginsRecipe, make_classifier, _data
from robust_nb.methods.cotrain import cross_lipschitz
from robust_nb.train import fit

OUT = Path(__file__).resolve().parents[1]/'benchmarks/results/scale/margins/hein_omega_probe.json'

def measure(f, xs, ys, after: str) -> dict:
    "Cross-entropy and Omega of `f` (eval mode) on `xs`, in chunks of 64."
    f.eval()
    with torch.no_grad(): ce = F.cross_entropy(f(xs), ys).item()
    omega = torch.stack([cross_lipschitz(f, xs[i:i + 64], create_graph=False)[1] for i in range(0, len(xs), 64)]).mean().item()
    return dict(after=after, cross_entropy=ce, omega=omega)

def main():
    torch.set_num_threads(2)
    recipe = MarginsRecipe(channels=16, embed_dim=256, train_size=None, val_size=None, test_size=None, epochs=1, milestones=(), factors=())
    train, val, _ = _data(recipe, 0)
    xs, ys = val[:512]
    seed_everything(0)
    f = make_classifier(recipe)
    rows = [measure(f, xs, ys, 'initialisation')]
    for epoch in range(2):
        fit(f, train, epochs=1, batch_size=recipe.batch_size, lr=recipe.lr, seed=epoch, progress=False, device='cpu')
        rows.append(measure(f, xs, ys, f'{epoch + 1} epoch(s) of plain training'))
    for r in rows: print(f"{r['after']:>30}: cross-entropy {r['cross_entropy']:.3f}, Omega {r['omega']:.4g}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    setting = dict(channels=recipe.channels, embed_dim=recipe.embed_dim, batch_size=recipe.batch_size, lr=recipe.lr, seed=0, images=len(xs))
    text = json.dumps(dict(recipe=setting, machine=environment_info('cpu'), rows=rows), indent=1)
    atomic_write(OUT, lambda p: open(p, 'w').write(text))
    print(f"wrote {OUT}")

if __name__ == '__main__': main()
