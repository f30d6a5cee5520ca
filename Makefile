# robust_nb: every target sets itself up from nothing (a .venv beside this file).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# These releases lie on this project's machines' disk; other versions download several GB.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.robust_nb-installed

.PHONY: install data demo test test-fast readme lab lessons explore benchmarks clean-venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(STAMP): $(PY) settings.ini setup.py
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q -e ".[dev,scale]"
	# torchattacks (a test-time peer) pins requests~=2.25, which JupyterLab 4 cannot share; it runs with any requests.
	$(PIP) install -q --no-deps "torchattacks>=3.5"
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST: Debian's dataset-fashion-mnist package where we are root on Debian/Ubuntu, else a torchvision download into data/.
data: install
	@if $(PY) -c "import sys; from robust_nb.data import find_dataset; sys.exit(find_dataset('fashion_mnist', 'test') is None)"; then \
		echo "Fashion-MNIST found."; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		$(VENV)/bin/robust-nb data --download fashion_mnist; \
	fi

demo: data
	$(VENV)/bin/robust-nb compare --quick --out runs/demo

test: data
	$(VENV)/bin/nbdev_test --n_workers 2
	$(VENV)/bin/pytest -q -rsx tests

readme: install
	$(PY) scripts/make_readme.py

# Execute every tutorial in reading order and keep its outputs (LESSONS=attacks picks some); `scripts/lessons.py --check` is what CI checks.
LESSONS ?=
lessons: data
	$(PY) scripts/lessons.py $(LESSONS)

# JupyterLab on the tutorials (nbs/ is the root, so the module notebooks are one click away); LAB_ARGS=--no-browser on a server.
LAB_ARGS ?=
lab: data
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=nbs --LabApp.default_url=/lab/tree/tutorials $(LAB_ARGS) $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The explorers on zoo models as one page (Voila) on http://localhost:8866; EXPLORE_ARGS="--host 0.0.0.0" serves a classroom (read the README first).
EXPLORE_ARGS ?=
explore: data
	$(VENV)/bin/robust-nb explore $(EXPLORE_ARGS)

benchmarks: data
	$(PY) benchmarks/train_throughput.py

clean-venv:
	rm -rf $(VENV)
