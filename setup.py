"""Packaging driven by settings.ini (nbdev 2 layout), without pkg_resources."""
from configparser import ConfigParser
from pathlib import Path
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

def reqs(key): return cfg.get(key, '').split()

ZOO = ['robust_nb.zoo_weights'] if Path('robust_nb/zoo_weights').is_dir() else []  # the model zoo's weights and manifest (data only)

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    url=cfg['git_url'],
    license='Apache-2.0',
    keywords=cfg['keywords'].split(),
    python_requires='>=' + cfg['min_python'],
    packages=setuptools.find_packages(include=['robust_nb', 'robust_nb.*']) + ZOO,
    package_data={'robust_nb.zoo_weights': ['*.safetensors', '*.json']},
    install_requires=reqs('requirements'),
    extras_require={'dev': reqs('dev_requirements'), 'scale': reqs('scale_requirements')},
    entry_points={
        'console_scripts': cfg['console_scripts'].split(),
        'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    include_package_data=True,
    zip_safe=False,
)
