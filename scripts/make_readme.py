"""README.md is generated from nbs/index.ipynb (Quarto, which nbdev_readme needs, is not available everywhere).

`python scripts/make_readme.py` writes README.md; `--check` exits 1 when README.md is out of date."""
import re, sys
from pathlib import Path

import nbformat
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]


def render() -> str:
    "README text from nbs/index.ipynb: hidden cells dropped, nbdev directives stripped, figures left in the notebook."
    nb = nbformat.read(ROOT/'nbs'/'index.ipynb', as_version=4)
    cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            lines = c.source.splitlines()
            if any(re.match(r'#\|\s*hide', l) for l in lines): continue
            c.source = '\n'.join(l for l in lines if not l.startswith('#|')).strip('\n')
            # stderr and figures stay in the notebook: a README on a package index cannot show image files beside it
            c.outputs = [o for o in c.get('outputs', []) if not (o.get('output_type') == 'stream' and o.get('name') == 'stderr')
                         and 'image/png' not in o.get('data', {})]
        cells.append(c)
    nb.cells = cells
    nb.metadata['language_info'] = {'name': 'python'}
    body, _ = MarkdownExporter().from_notebook_node(nb)
    note = '<!-- generated from nbs/index.ipynb by `make readme`; edit the notebook, not this file -->\n\n'
    body = body.replace('](tutorials/', '](nbs/tutorials/')  # links from nbs/index.ipynb, read from the repository's root
    return note + re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'


if __name__ == '__main__':
    text, readme = render(), ROOT/'README.md'
    if '--check' in sys.argv:
        sys.exit(0 if readme.exists() and readme.read_text() == text else 1)
    readme.write_text(text)
    print(f'wrote {readme}')
