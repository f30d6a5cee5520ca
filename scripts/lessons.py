"""The tutorials, executed in reading order and committed with their outputs (`make lessons`), and the check CI runs on them.

    python scripts/lessons.py [NAME ...]      # execute these tutorials (default: all, in ORDER) in place
    python scripts/lessons.py --check         # read the committed tutorials; exit 1 when one is not a complete, in-order run

Each tutorial runs top to bottom in a fresh kernel with nbclient, which records in every code cell's metadata when it ran;
nbdev_clean then removes execution counts and ids but keeps the outputs and those times (`allowed_cell_metadata_keys =
execution` in settings.ini), so the committed notebook still shows that it ran in one go, in order. The time each tutorial
took is printed (from the same records)."""
import argparse, json, subprocess, sys
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT/'nbs'/'tutorials'
ORDER = ['attacks', 'corruptions', 'fcl', 'ceb', 'mtlat', 'margins', 'cotraining', 'compare']  # the reading order of the index


def _time(cell: dict, key: str):
    t = cell.get('metadata', {}).get('execution', {}).get(key)
    return datetime.fromisoformat(t.replace('Z', '+00:00')) if t else None


def problems(path: Path) -> list[str]:
    "What keeps the committed tutorial at `path` from being a complete run in order: no outputs, an error, a cell not run, cells out of order."
    cells = [c for c in json.loads(path.read_text())['cells'] if c['cell_type'] == 'code' and ''.join(c['source']).strip()]
    out, last, unrun = [], None, []
    if not any(c.get('outputs') for c in cells): out.append('no outputs: run `make lessons`')
    for i, c in enumerate(cells, 1):
        if any(o.get('output_type') == 'error' for o in c.get('outputs', [])): out.append(f'code cell {i} has an error output')
        start = _time(c, 'iopub.execute_input')
        if start is None: unrun.append(i); continue
        if last is not None and start < last: out.append(f'code cell {i} ran before the cell above it')
        last = _time(c, 'shell.execute_reply') or start
    if unrun: out.append(f"{len(unrun)} of {len(cells)} code cells have no record of running (cells {', '.join(map(str, unrun[:5]))}{', ...' if len(unrun) > 5 else ''}): run `make lessons`")
    return out


def seconds(path: Path) -> float | None:
    "From the first code cell's start to the last one's end, as recorded in the tutorial."
    cells = [c for c in json.loads(path.read_text())['cells'] if c['cell_type'] == 'code' and c.get('metadata', {}).get('execution')]
    if not cells: return None
    first, end = _time(cells[0], 'iopub.execute_input'), _time(cells[-1], 'shell.execute_reply')
    return (end - first).total_seconds() if first and end else None


def tutorials() -> list[Path]:
    "Every tutorial: those of ORDER first, in order, then any other, by name."
    found = {p.stem: p for p in TUTORIALS.glob('*.ipynb')}
    return [found[n] for n in ORDER if n in found] + [found[n] for n in sorted(set(found) - set(ORDER))]


def drop_widget_state(path: Path):
    "Remove the widget models nbclient saves in the notebook's metadata (hundreds of kB): a reader without a kernel sees each explorer's picture instead."
    nb = json.loads(path.read_text())
    if nb.get('metadata', {}).pop('widgets', None) is not None: path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')


def execute(path: Path):
    "Run `path` top to bottom in a fresh kernel, in place, then clean it as nbdev does (outputs and run times kept, widget state dropped)."
    bin = Path(sys.executable).parent
    subprocess.run([bin/'jupyter', 'nbconvert', '--to', 'notebook', '--execute', '--inplace', '--ExecutePreprocessor.timeout=900', str(path)],
                   check=True, cwd=path.parent)
    drop_widget_state(path)
    subprocess.run([bin/'nbdev_clean', '--fname', str(path)], check=True, cwd=ROOT)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('names', nargs='*', help=f"tutorials to execute (default: all, in the order {', '.join(ORDER)})")
    p.add_argument('--check', action='store_true', help='only check the committed tutorials')
    a = p.parse_args()
    paths = [TUTORIALS/f'{n}.ipynb' for n in a.names] if a.names else tutorials()
    for path in paths:
        if not path.exists(): sys.exit(f"lessons: {path} does not exist (tutorials: {', '.join(t.stem for t in tutorials())})")
    if not a.check:
        for path in paths:
            execute(path)
            print(f"{path.stem}: {seconds(path):.0f} s")
    bad = {p.stem: problems(p) for p in paths if problems(p)}
    for name, found in bad.items(): print(f"{name}: " + '; '.join(found), file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == '__main__': main()
