#!/usr/bin/env bash
# make_gpu_wheels.sh: download the wheels that scripts/gpu_check.sh installs on the GPU machine, whose Python cannot
# reach a package registry. Run it here (where PyPI is reachable); the folder travels with the device tool's `carry`.
#
# Usage:
#   scripts/make_gpu_wheels.sh [--dir .whl] [--bare] [--notebooks] [--python-version 3.12]
#
#   --dir DIR             where the wheels go (default .whl/, which git ignores); emptied of *.whl first
#   --bare                also what a Python holding only torch, torchvision, numpy, pandas, matplotlib and seaborn
#                         lacks: safetensors, tqdm, scipy, pytest (with iniconfig, packaging, pluggy, pygments) and
#                         hypothesis (with sortedcontainers)
#   --notebooks           also nbdev with settings.ini's pins and its dependencies, for `nbdev_test --flags gpu`
#                         (only needed once a notebook has a `#| gpu` cell)
#   --python-version X.Y  the GPU machine's Python (default 3.12, what its image holds)
#
# The default set is what the GPU image lacks for gpu_check.sh (its package list is in the device tool's KINDS.md):
# torchattacks and captum (the peers of the attack tests and benchmark), imagecorruptions (the corruption benchmark's
# peer; its own needs, scikit-image and opencv, are in that image) and setuptools<81 (imagecorruptions reads its frost
# images through pkg_resources, which setuptools 81 dropped). Each comes without its dependencies (--no-deps): the
# ones they need are listed here by name. Versions are those of this checkout's .venv where it has the package, so
# the GPU runs what the CPU results were made with.
# Left out on purpose: scikit-learn (only robust_nb.methods.transfer's SVM, which no part runs), scikit-image and
# opencv for a bare Python (over 60 MB; the corruption benchmark then times robust_nb alone and says why), and
# ipywidgets (only robust_nb.widgets). Everything carried shares the device tool's 64 MiB with the working tree and
# Fashion-MNIST (about 30 MB), so the script prints the folder's size.
set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
DIR=.whl BARE=0 NOTEBOOKS=0 PYV=3.12
die() { echo "make_gpu_wheels: $*" >&2; exit 2; }
while (($#)); do
  case $1 in
    --dir) (($# >= 2)) || die "--dir needs a folder"; DIR=$2; shift ;;
    --bare) BARE=1 ;;
    --notebooks) NOTEBOOKS=1 ;;
    --python-version) (($# >= 2)) || die "--python-version needs X.Y"; PYV=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[[ $PYV =~ ^3\.[0-9]+$ ]] || die "--python-version: expected 3.N, got '$PYV'"

PY=python3; [[ -x .venv/bin/python ]] && PY=.venv/bin/python
pin() {  # pin NAME [SPEC]: NAME==the .venv's version when it has one, else NAME with SPEC
  local v; v=$("$PY" -c 'import importlib.metadata as md, sys
try: print(md.version(sys.argv[1]))
except md.PackageNotFoundError: pass' "$1" 2>/dev/null || true)
  if [[ -n $v ]]; then echo "$1==$v"; else echo "$1${2:-}"; fi
}

NAMES=("$(pin torchattacks '>=3.5')" "$(pin captum '>=0.7')" "$(pin imagecorruptions '>=1.1')" "$(pin setuptools '<81')")
if [[ ${NAMES[3]} =~ ==([0-9]+) ]] && (( BASH_REMATCH[1] >= 81 )); then NAMES[3]='setuptools<81'; fi
if (( BARE )); then
  for n in safetensors tqdm scipy pytest iniconfig packaging pluggy pygments hypothesis sortedcontainers; do NAMES+=("$(pin "$n")"); done
fi

mkdir -p "$DIR"
rm -f "$DIR"/*.whl
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
COMMON=(--only-binary=:all: --python-version "$PYV" --implementation cp "${PLATFORMS[@]}" -d "$DIR" --disable-pip-version-check -q)
echo "make_gpu_wheels: ${NAMES[*]} for Python $PYV -> $DIR"
"$PY" -m pip download --no-deps "${COMMON[@]}" "${NAMES[@]}"
if (( NOTEBOOKS )); then
  # nbdev's dependency tree holds no torch, so pip may resolve it whole; the pins are settings.ini's
  echo "make_gpu_wheels: nbdev==2.4.14 fastcore<2 execnb<0.2 ghapi<2 and their dependencies"
  "$PY" -m pip download "${COMMON[@]}" 'nbdev==2.4.14' 'fastcore<2' 'execnb<0.2' 'ghapi<2'
fi

# one version of each package (two would stop the install there): keep the newest
"$PY" - "$DIR" <<'PY'
import re, sys
from pathlib import Path
from packaging.version import Version
by_name = {}
for w in Path(sys.argv[1]).glob("*.whl"):
    name, version = w.name.split("-")[:2]
    by_name.setdefault(re.sub(r"[-_.]+", "-", name).lower(), []).append((Version(version), w))
for name, ws in by_name.items():
    for _, w in sorted(ws)[:-1]:
        print(f"make_gpu_wheels: {w.name} dropped for {sorted(ws)[-1][1].name}")
        w.unlink()
PY
ls -1 "$DIR"/*.whl
echo "make_gpu_wheels: $(ls "$DIR"/*.whl | wc -l) wheels, $(du -sh "$DIR" | cut -f1) in $DIR (with Fashion-MNIST, at most 64 MiB travel)"
