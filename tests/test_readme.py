"""README.md follows nbs/index.ipynb (regenerate with `make readme`)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_generated_from_index():
    spec = importlib.util.spec_from_file_location('make_readme', ROOT/'scripts'/'make_readme.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    assert (ROOT/'README.md').read_text() == mod.render(), 'README.md is stale: run `make readme`'


def test_readme_shows_the_two_commands_first():
    text = (ROOT/'README.md').read_text()
    first_block = text.split('```sh', 1)[1].split('```', 1)[0]
    assert 'make demo' in first_block and 'make test' in first_block
