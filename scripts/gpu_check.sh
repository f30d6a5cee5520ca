#!/usr/bin/env bash
# gpu_check.sh: the one prepared GPU run of robust_nb (DESIGN.md, "Scale"). From a bare Python that has torch,
# torchvision, numpy, pandas, matplotlib and seaborn, it installs what is missing, runs the CUDA tests, the benchmarks
# on CUDA, FCL Table 1 with the paper's 10 seeds on the GPU, the notebooks' `gpu` cells and zoo builds while time
# is left, all within a time budget (10 minutes by default).
#
# Usage:
#   scripts/gpu_check.sh [--dry-run] [--budget SECONDS] [--out DIR] [--wheels DIR] [--data DIR] [--python PY]
#                        [--fcl-seeds N] [--fcl-jobs N] [--only PART,...] [--skip PART,...]
#
#   --dry-run       every part for a few steps on the CPU with tiny sizes; results go to --out only, never to
#                   benchmarks/results/ (tests/test_gpu_check.py runs this)
#   --budget S      seconds for the whole run, install included (default 600); a part that would not fit in what
#                   is left is skipped and reported, and a part still running at the deadline is stopped
#   --out DIR       where results, gpu_check_summary.json, gpu_check.log and gpu_check_parts.tar.gz go
#                   (default: $OUT when it is set, else a new temporary folder)
#   --wheels DIR    wheels installed where their package is missing (default: .whl/ when it exists);
#                   scripts/make_gpu_wheels.sh makes them
#   --data DIR      a folder holding Fashion-MNIST (sets ROBUST_NB_DATA); otherwise $ROBUST_NB_DATA, ./data, the
#                   project's data/ and /usr/share/datasets/fashion-mnist are searched
#   --python PY     the Python to use (default: .venv/bin/python when there is one, else python3)
#   --fcl-seeds N   FCL Table 1 repeats (default 10, the paper's; 2 in a dry run)
#   --fcl-jobs N    FCL seeds trained at the same time, one process each (default 5; 2 in a dry run)
#   --only, --skip  run only these parts / all but these (comma-separated names from the list below)
#
# Parts, in the order of their value: when time runs short the last ones are cut first.
#   setup             install the missing wheels and the project (pip install --no-deps -e .), find Fashion-MNIST,
#                     check that CUDA works (always runs; a real run stops here when there is no CUDA device)
#   cuda_tests        pytest -k 'cuda or gpu' over the files of tests/ that use CUDA (those tests skip on a CPU;
#                     on the GPU machine a skipped one counts as a failure)
#   train_throughput  benchmarks/train_throughput.py --device cuda   -> train_throughput_cuda.json
#   attacks           benchmarks/attacks.py --device cuda            -> attacks_cuda.json
#   corruptions       benchmarks/corruptions.py --device cuda        -> corruptions_cuda.json
#   fcl_overhead      benchmarks/fcl_overhead.py --device cuda       -> fcl_overhead_cuda.json
#   fcl_table1        FCL Table 1 (the paper's recipe on the Fashion-MNIST corner task, data on the GPU), one process
#                     per seed, --fcl-jobs at a time, joined by `robust-nb reproduce fcl --combine`
#                     -> fcl_table1_fashion_mnist_cuda.json (and .csv); a seed is started only when the time left
#                     covers the longest seed so far, so a cut run still keeps the seeds that finished
#   notebooks_gpu     nbdev_test --flags gpu on each notebook holding a `#| gpu` cell (skipped when none does)
#   zoo               `robust-nb zoo list` (one name a line), then `robust-nb zoo build NAME --device cuda --out DIR`
#                     for each entry while time is left (skipped while robust_nb.zoo is absent; check this
#                     contract against the zoo's command when it lands)
# Each part has an estimate (it starts only when that much time is left) and a cap (it is stopped there). The
# summary table at the end gives each part's status (ok, partial, cut, failed, skipped), wall and CPU seconds, output
# and note; gpu_check_summary.json holds the same and the per-seed FCL times.
# Exit status: 0 when no part failed, 1 when one did, 2 on bad usage or when a real run finds no CUDA device.
#
# Time on the GPU, seconds (estimate / cap; estimated from the CPU runs and the sizes, not yet measured on a GPU: the
# summary of the first GPU run gives the numbers to put here): setup 30 (always), cuda_tests 45 / 240,
# train_throughput 45 / 120, attacks 45 / 120, corruptions 60 / 150, fcl_overhead 40 / 120, then fcl_table1 takes
# what is left but 15 s for the summary (about 300 s: 5 seeds at a time, each seed XE and FCL for 20 epochs of 390
# steps, started only while 150 s or the longest seed so far remain, 20 s kept for --combine); notebooks_gpu and zoo
# get what remains after that. A rerun within the same lease can take one part with --only and a smaller --budget.
#
# On the GPU machine (the device tool copies the working tree; .whl/ and data/ are git-ignored, so they travel
# through `carry`):
#   here, once:  scripts/make_gpu_wheels.sh            (what the GPU image lacks; --bare for a Python with less)
#                mkdir -p data/fashion-mnist && cp /usr/share/datasets/fashion-mnist/*.gz data/fashion-mnist/
#   run:         command "bash scripts/gpu_check.sh --out $OUT", carry [".whl", "data/fashion-mnist"], timeout_s 600
#   afterwards:  copy the *_cuda.json files that come back into benchmarks/results/
# There the results are written to benchmarks/results/<name>_cuda.json and copied to --out as each part ends, so a run
# stopped from outside keeps what finished. --out receives at most 8 files (what the device tool brings back): the
# five result JSONs, gpu_check_summary.json, gpu_check.log and gpu_check_parts.tar.gz (per-part logs, the per-seed
# FCL results, the combined CSV and figure, zoo builds).
set -euo pipefail
export LC_ALL=C PYTHONUNBUFFERED=1 MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1

START_DIR=$PWD
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PARTS=(setup cuda_tests train_throughput attacks corruptions fcl_overhead fcl_table1 notebooks_gpu zoo)

die() { echo "gpu_check: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
is_count() { [[ $1 =~ ^[0-9]+$ ]] && (( 10#$1 > 0 )); }

DRY=0 BUDGET=600 OUTDIR=${OUT:-} WHEELS="" DATA="" PY="" FCL_SEEDS="" FCL_JOBS="" ONLY="" SKIP=""
while (($#)); do
  case $1 in
    --dry-run) DRY=1 ;;
    --budget|--out|--wheels|--data|--python|--fcl-seeds|--fcl-jobs|--only|--skip)
      (($# >= 2)) || die "$1 needs a value (see --help)"
      case $1 in
        --budget) BUDGET=$2 ;; --out) OUTDIR=$2 ;; --wheels) WHEELS=$2 ;; --data) DATA=$2 ;; --python) PY=$2 ;;
        --fcl-seeds) FCL_SEEDS=$2 ;; --fcl-jobs) FCL_JOBS=$2 ;; --only) ONLY=$2 ;; --skip) SKIP=$2 ;;
      esac
      shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
abspath() { if [[ -z $1 || $1 == /* ]]; then echo "$1"; else echo "$START_DIR/$1"; fi; }   # options name paths from where the script was started
OUTDIR=$(abspath "$OUTDIR") WHEELS=$(abspath "$WHEELS") DATA=$(abspath "$DATA")
if [[ $PY == */* ]]; then PY=$(abspath "$PY"); fi
is_count "$BUDGET" || die "--budget: expected a positive number of seconds, got '$BUDGET'"
for p in ${ONLY//,/ } ${SKIP//,/ }; do
  [[ " ${PARTS[*]} " == *" $p "* ]] || die "--only/--skip: unknown part '$p'; parts: ${PARTS[*]}"
done
if (( DRY )); then FCL_SEEDS=${FCL_SEEDS:-2} FCL_JOBS=${FCL_JOBS:-2}; else FCL_SEEDS=${FCL_SEEDS:-10} FCL_JOBS=${FCL_JOBS:-5}; fi
is_count "$FCL_SEEDS" || die "--fcl-seeds: expected a positive integer, got '$FCL_SEEDS'"
is_count "$FCL_JOBS" || die "--fcl-jobs: expected a positive integer, got '$FCL_JOBS'"
if [[ -z $PY ]]; then if [[ -x $REPO/.venv/bin/python ]]; then PY=$REPO/.venv/bin/python; else PY=python3; fi; fi
command -v "$PY" >/dev/null || die "--python: $PY is not a program here"
if [[ -z $WHEELS && -d $REPO/.whl ]]; then WHEELS=$REPO/.whl; fi
if [[ -n $WHEELS && ! -d $WHEELS ]]; then die "--wheels: $WHEELS is not a folder"; fi
if [[ -n $DATA ]]; then [[ -d $DATA ]] || die "--data: $DATA is not a folder"; export ROBUST_NB_DATA=$(cd "$DATA" && pwd); fi
if [[ -z $OUTDIR ]]; then OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX"); fi
OUTDIR=$(realpath -m "$OUTDIR")
if (( DRY )) && [[ $OUTDIR/ == "$(realpath -m "$REPO/benchmarks/results")/"* ]]; then
  die "--out: a dry run never writes into benchmarks/results/; give another folder"
fi
mkdir -p "$OUTDIR"

# ---------------------------------------------------------------- clock, log, records

now_ms() { local t=${EPOCHREALTIME:-}; if [[ -n $t ]]; then t=${t/./}; echo $(( 10#$t / 1000 )); else date +%s%3N; fi; }
T0=$(now_ms)
RESERVE=$(( DRY ? 3 : 15 ))                       # seconds kept for the summary and the tarball
DEADLINE=$(( T0 + (BUDGET - RESERVE) * 1000 ))    # every part ends by then
left() { local l=$(( (DEADLINE - $(now_ms)) / 1000 )); echo $(( l > 0 ? l : 0 )); }
cpu_mark() {  # CPU_MS: CPU milliseconds (user + system) of the finished child processes so far
  times > "$WORK/times"   # in this shell, not in $( ): a subshell counts only its own children
  CPU_MS=$(awk 'function ms(t,  m) { m = t; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", t); sub(/s$/, "", t); return (m * 60 + t) * 1000 }
    NR == 2 { printf "%d\n", ms($1) + ms($2) }' "$WORK/times")
}
secs_since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_work.XXXXXX")
SITE=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_site.XXXXXX")
mkdir -p "$WORK/logs"
LOG=$OUTDIR/gpu_check.log; : > "$LOG"
: > "$WORK/parts.tsv"
say() { printf '[%5.1fs] %s\n' "$(secs_since "$T0")" "$*" | tee -a "$LOG"; }

if (( DRY )); then
  DEV=cpu SFX="" RESULTS=$OUTDIR
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # tiny sizes: one thread each is fastest, above all on a busy machine
else
  DEV=cuda SFX=_cuda RESULTS=$REPO/benchmarks/results
fi
mkdir -p "$RESULTS"

SUMMARY_PY=$(cat <<'PY'
import json, sys, time
from pathlib import Path
work, out, table = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "table"
meta = json.loads((work/"meta.json").read_text()) if (work/"meta.json").exists() else {}
run = json.loads((work/"run.json").read_text())
parts = []
for line in (work/"parts.tsv").read_text().splitlines():
    name, status, secs, output, note, cpu = (line.split("\t") + [""] * 6)[:6]
    parts.append(dict(part=name, status=status, seconds=float(secs or 0), cpu_seconds=float(cpu or 0), output=output or None, note=note or None))
seeds = work/"fcl"/"seeds.tsv"
if seeds.exists():
    rows = [(l.split("\t") + ["", ""])[:3] for l in seeds.read_text().splitlines() if l]
    run["fcl_seeds"] = [dict(seed=int(seed), status=status, seconds=float(secs) if secs else None) for seed, status, secs in rows]
run.update(parts=parts, setup=meta, total_seconds=round(time.time() - run["started_unix"], 1),
           failed=[p["part"] for p in parts if p["status"] == "failed"])
tmp = out/".gpu_check_summary.json.tmp"
tmp.write_text(json.dumps(run, indent=1)); tmp.replace(out/"gpu_check_summary.json")
if table:
    w = max([len(p["output"] or "-") for p in parts] + [6])
    print(f"{'part':<17} {'status':<8} {'seconds':>7} {'cpu s':>6}  {'output':<{w}}  note")
    for p in parts:
        print(f"{p['part']:<17} {p['status']:<8} {p['seconds']:>7.1f} {p['cpu_seconds']:>6.1f}  {p['output'] or '-':<{w}}  {p['note'] or ''}")
    print(f"total {run['total_seconds']:.1f} s of a {run['budget_s']} s budget ({run['mode']}); files in {out}")
PY
)
printf '{"mode": "%s", "budget_s": %d, "started_unix": %s, "device": "%s", "out": "%s", "results": "%s"}\n' \
  "$( ((DRY)) && echo dry-run || echo gpu)" "$BUDGET" "$(( T0 / 1000 ))" "$DEV" "$OUTDIR" "$RESULTS" > "$WORK/run.json"
write_summary() { "$PY" -c "$SUMMARY_PY" "$WORK" "$OUTDIR" "${1:-quiet}" || echo "gpu_check: could not write the summary" >&2; }

record() {  # record NAME STATUS SECONDS OUTPUT NOTE [CPU_SECONDS]
  local note=${5//$'\t'/ }; note=${note//$'\n'/; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$note" "${6:-0}" >> "$WORK/parts.tsv"
}
selected() { [[ ( -z $ONLY || ",$ONLY," == *",$1,"* ) && ",$SKIP," != *",$1,"* ]]; }

PART="" PART_T0=0 PART_CPU0=0 PART_LOG=/dev/null
begin() {  # begin NAME ESTIMATE: succeeds when the part is selected and its estimate fits in the time left
  local l
  if ! selected "$1"; then record "$1" skipped 0 "" "not selected (--only/--skip)"; say "$1: skipped (not selected (--only/--skip))"; return 1; fi
  l=$(left)
  if (( l < $2 )); then
    record "$1" skipped 0 "" "would not fit: needs ~$2 s, $l s left of the budget"
    say "$1: skipped (needs ~$2 s, $l s left)"; return 1
  fi
  cpu_mark
  PART=$1 PART_T0=$(now_ms) PART_CPU0=$CPU_MS PART_LOG=$WORK/logs/$1.log
  : > "$PART_LOG"
  say "$1: start (~$2 s expected, $l s left)"
}
finish() {  # finish STATUS OUTPUT NOTE
  local secs cpu; secs=$(secs_since "$PART_T0"); cpu_mark; cpu=$(( CPU_MS - PART_CPU0 ))
  record "$PART" "$1" "$secs" "$2" "$3" "$(( cpu / 1000 )).$(( cpu % 1000 / 100 ))"
  say "$PART: $1 in $secs s (CPU $(( cpu / 1000 )) s)${2:+ -> $2}${3:+ ($3)}"
  if [[ $1 == failed || $1 == cut ]]; then tail -n 25 "$PART_LOG" | sed 's/^/    | /' | tee -a "$LOG"; fi
  PART=""
  write_summary
}
status_of() { case $1 in 0) echo ok ;; 124|137) echo cut ;; *) echo failed ;; esac; }
setup_failed() {  # setup_failed EXIT NOTE: no part can run
  finish failed "" "$2"
  for p in "${PARTS[@]:1}"; do record "$p" skipped 0 "" "setup failed"; done
  exit "$1"
}

CHILD=""
limited() {  # limited CAP CMD...: CMD with its output in the part's log, stopped after CAP s or at the deadline
  local cap=$1 l rc=0; shift
  l=$(left); if (( l < cap )); then cap=$l; fi; if (( cap < 1 )); then cap=1; fi
  timeout --kill-after=10 "$cap" "$@" >> "$PART_LOG" 2>&1 &
  CHILD=$!
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}
export_result() {  # a real run copies each result into --out as soon as it is written
  if (( ! DRY )) && [[ $(dirname "$1") != "$OUTDIR" ]]; then cp "$1" "$OUTDIR/"; fi
}

FINALIZED=0 INTERRUPTED=0 BG_PIDS=()
finalize() {
  local rc=$?
  if (( FINALIZED )); then return; fi
  FINALIZED=1
  trap '' PIPE   # a reader gone from stdout must not keep the temporary folders from being removed
  if [[ -n $PART ]]; then
    if (( INTERRUPTED )); then finish cut "" "interrupted"; else finish failed "" "gpu_check.sh itself stopped here (exit $rc)"; fi
  fi
  local items=(); for d in logs fcl zoo; do [[ -e $WORK/$d ]] && items+=("$d"); done
  tar -czf "$OUTDIR/gpu_check_parts.tar.gz" -C "$WORK" "${items[@]}" 2>/dev/null || true
  echo | tee -a "$LOG"
  write_summary table | tee -a "$LOG"
  rm -rf "$WORK" "$SITE"
  exit "$rc"
}
on_signal() {
  INTERRUPTED=1
  say "interrupted: stopping the running commands"
  [[ -n $CHILD ]] && kill -TERM "$CHILD" 2>/dev/null || true
  for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for f in "$WORK"/fcl/pid.*; do [[ -e $f ]] && kill -TERM "$(cat "$f")" 2>/dev/null || true; done
  exit 143
}
trap finalize EXIT
trap on_signal INT TERM

# ---------------------------------------------------------------- setup

RNB=("$PY" -c 'import sys; from robust_nb.cli import main; sys.exit(main(sys.argv[1:]))')
MISSING_WHEEL_PY=$(cat <<'PY'
import importlib.metadata as md, importlib.util, re, sys
from pathlib import Path
for w in sorted(Path(sys.argv[1]).glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower()
    if name == "setuptools": need = importlib.util.find_spec("pkg_resources") is None   # imagecorruptions reads its files through pkg_resources
    else:
        try: md.distribution(name); need = False
        except md.PackageNotFoundError: need = True
    if need: print(w)
PY
)
SETUP_PY=$(cat <<'PY'
import importlib.util, json, os, shlex, sys
from pathlib import Path
repo, meta_path = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
info = dict(python=sys.executable, python_version=sys.version.split()[0])
have = lambda m: importlib.util.find_spec(m) is not None
info["packages"] = {m: have(m) for m in ("torch", "torchvision", "safetensors", "tqdm", "scipy", "pytest", "hypothesis",
                                          "torchattacks", "captum", "imagecorruptions", "nbdev")}
try: import torch
except Exception as e:
    info["torch_error"] = f"{type(e).__name__}: {e}"; meta_path.write_text(json.dumps(info, indent=1))
    print(info["torch_error"], file=sys.stderr); print("DEVICE_NAME=" + shlex.quote("unknown (torch does not import)")); sys.exit(0)
info.update(torch=torch.__version__, cuda_available=torch.cuda.is_available(), device_name=None)
if info["cuda_available"]:
    try:
        assert torch.ones(2, device="cuda").add(1).sum().item() == 4   # the device computes, not only shows
        info["device_name"] = torch.cuda.get_device_name(0)
    except Exception as e:
        info.update(cuda_available=False, cuda_error=f"{type(e).__name__}: {e}"); print(info["cuda_error"], file=sys.stderr)
try:
    import robust_nb
    from robust_nb.data import find_dataset
    if importlib.util.find_spec("robust_nb.cli") is None: raise ImportError("robust_nb has no cli module")
    info.update(robust_nb_version=robust_nb.__version__, robust_nb_dir=str(Path(robust_nb.__file__).resolve().parent))
    info["robust_nb_from_this_tree"] = Path(robust_nb.__file__).resolve().parent.parent == repo
    info["fashion_mnist"] = {s: (str(find_dataset("fashion_mnist", s)) if find_dataset("fashion_mnist", s) else None) for s in ("train", "test")}
except Exception as e:
    info["robust_nb_error"] = f"{type(e).__name__}: {e}"
meta_path.write_text(json.dumps(info, indent=1))
if "robust_nb_error" in info: print(info["robust_nb_error"], file=sys.stderr)
out = dict(CUDA=int(info["cuda_available"]), RNB_OK=int(info.get("robust_nb_from_this_tree", False)), CLI_OK=int("robust_nb_error" not in info),
           DATA_OK=int(all(info.get("fashion_mnist", {}).values()) and bool(info.get("fashion_mnist"))),
           MISSING=" ".join(m for m, ok in info["packages"].items() if not ok),
           DEVICE_NAME=info["device_name"] or "cpu")
for k, v in out.items(): print(f"{k}={shlex.quote(str(v))}")
PY
)
CUDA=0 RNB_OK=0 CLI_OK=0 DATA_OK=0 MISSING="" DEVICE_NAME=""
has_pkg() { [[ " $MISSING " != *" $1 "* ]]; }
probe() { eval "$("$PY" -c "$SETUP_PY" "$REPO" "$WORK/meta.json" 2>>"$PART_LOG")"; }

cpu_mark
PART=setup PART_T0=$(now_ms) PART_CPU0=$CPU_MS PART_LOG=$WORK/logs/setup.log   # setup always runs
: > "$PART_LOG"
say "setup: $( ((DRY)) && echo 'dry run on the CPU' || echo 'GPU run'), budget $BUDGET s, python $PY, out $OUTDIR"
SETUP_NOTES=()
if [[ -n $WHEELS ]]; then
  mapfile -t need < <("$PY" -c "$MISSING_WHEEL_PY" "$WHEELS")
  if (( ${#need[@]} )); then
    rc=0; limited 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
      --target "$SITE" "${need[@]}" || rc=$?
    (( rc == 0 )) || setup_failed 1 "pip could not install the wheels from $WHEELS (exit $rc)"
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
    [[ -d $SITE/bin ]] && export PATH=$SITE/bin:$PATH
    SETUP_NOTES+=("installed ${#need[@]} wheels: $(for w in "${need[@]}"; do basename "$w" | cut -d- -f1-2; done | paste -sd' ')")
  else
    SETUP_NOTES+=("no wheel needed from $WHEELS")
  fi
fi
probe
if (( ! RNB_OK )); then
  rc=0; limited 120 "$PY" -m pip install -q --no-deps --no-build-isolation --no-index --disable-pip-version-check -e "$REPO" || rc=$?
  if (( rc == 0 )); then SETUP_NOTES+=("pip install --no-deps -e ."); probe; fi
  if (( ! RNB_OK )); then
    export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
    SETUP_NOTES+=("robust_nb from PYTHONPATH (pip install -e . failed, exit $rc)"); probe
  fi
else
  SETUP_NOTES+=("robust_nb already installed from this tree")
fi
if (( DATA_OK )); then SETUP_NOTES+=("Fashion-MNIST found"); else SETUP_NOTES+=("Fashion-MNIST NOT found (--data DIR or ROBUST_NB_DATA)"); fi
[[ -n $MISSING ]] && SETUP_NOTES+=("missing: $MISSING")
SETUP_NOTES+=("device $DEVICE_NAME")
note=$(IFS=';'; echo "${SETUP_NOTES[*]}"); note=${note//;/; }
if (( ! DRY && ! CUDA )); then setup_failed 2 "$note; no CUDA device here: a real run needs one (use --dry-run on a CPU)"; fi
if (( ! CLI_OK )); then setup_failed 1 "$note; robust_nb does not import (see logs/setup.log)"; fi
finish ok "" "$note"

NPROC=$(nproc 2>/dev/null || echo 2)
needs() {  # needs PKG...: fail the part (and say why) when a package it needs is missing
  local m=()
  for p in "$@"; do if [[ $p == data ]]; then (( DATA_OK )) || m+=("Fashion-MNIST"); elif ! has_pkg "$p"; then m+=("$p"); fi; done
  (( ${#m[@]} == 0 )) && return 0
  finish failed "" "missing ${m[*]} (scripts/make_gpu_wheels.sh, --data)"; return 1
}

# ---------------------------------------------------------------- cuda_tests

JUNIT_PY=$(cat <<'PY'
import re, sys, xml.etree.ElementTree as ET
from collections import Counter
root = ET.parse(sys.argv[1]).getroot()
cases = list(root.iter("testcase"))
no_cuda = re.compile(r"no (cuda|gpu)|cuda (device )?(is )?not available|without (cuda|a gpu)", re.I)
status, reasons, cuda_only = Counter(), Counter(), []
for c in cases:
    name = c.get("name")
    if c.find("failure") is not None or c.find("error") is not None: status["failed"] += 1
    elif (sk := c.find("skipped")) is not None:
        msg = (sk.get("message") or "").strip()
        status["skipped"] += 1; reasons[msg] += 1
        if no_cuda.search(msg): status["skipped_no_cuda"] += 1; cuda_only.append(name)
    else: status["passed"] += 1
print(len(cases), status["passed"], status["failed"], status["skipped"], status["skipped_no_cuda"])
print("; ".join(f"{n} x {m}" for m, n in reasons.items())[:300])
print(", ".join(cuda_only)[:300])
PY
)
cuda_tests() {
  begin cuda_tests $(( DRY ? 10 : 45 )) || return 0
  needs pytest hypothesis torchattacks captum data || return 0
  local files=() f rc=0 xml=$WORK/logs/cuda_tests.xml
  for f in tests/test_*.py; do
    [[ $f == tests/test_gpu_check.py ]] && continue
    if grep -qE 'torch\.cuda|\.cuda\(' "$f"; then files+=("$f"); fi
  done
  (( ${#files[@]} )) || { finish failed "" "no file in tests/ uses CUDA"; return 0; }
  limited $(( DRY ? 300 : 240 )) "$PY" -m pytest -p no:cacheprovider -q -rs -k 'cuda or gpu' --junitxml="$xml" "${files[@]}" || rc=$?
  local st; st=$(status_of "$rc")
  if [[ $st == cut ]]; then finish cut "" "stopped at its time limit"; return 0; fi
  if [[ ! -s $xml ]]; then finish failed "" "pytest exited $rc without a report"; return 0; fi
  local parsed n passed bad skipped no_cuda reasons names
  parsed=$("$PY" -c "$JUNIT_PY" "$xml") || parsed=$'0 0 0 0 0\n\n'
  read -r n passed bad skipped no_cuda <<< "$(sed -n 1p <<< "$parsed")"
  reasons=$(sed -n 2p <<< "$parsed"); names=$(sed -n 3p <<< "$parsed")
  local note="$n selected by -k 'cuda or gpu': $passed passed, $bad failed, $skipped skipped${reasons:+ ($reasons)}"
  if (( n == 0 )); then finish failed "" "no test selected by -k 'cuda or gpu' in ${files[*]}"
  elif (( rc != 0 || bad > 0 )); then finish failed "" "$note"
  elif (( ! DRY && no_cuda > 0 )); then finish failed "" "$note; skipped for want of CUDA on the GPU machine: $names"
  else finish ok "" "$note"; fi
}

# ---------------------------------------------------------------- benchmarks

bench() {  # bench NAME ESTIMATE CAP NEEDS -- ARGS...: benchmarks/NAME.py ARGS --device DEV --out RESULTS
  local name=$1 est=$2 cap=$3 req=$4 file=$1$SFX.json rc=0 mark; shift 5
  begin "$name" "$est" || return 0
  # shellcheck disable=SC2086
  needs $req || return 0
  mark=$WORK/logs/$name.started; : > "$mark"
  limited "$cap" "$PY" "benchmarks/$name.py" --device "$DEV" --out "$RESULTS" "$@" || rc=$?
  local st; st=$(status_of "$rc")
  if [[ $st == ok && ! ( -s $RESULTS/$file && $RESULTS/$file -nt $mark ) ]]; then
    finish failed "" "exited 0 but wrote no new $file"; return 0
  fi
  if [[ $st == ok ]]; then
    "$PY" -c 'import json, sys; assert "machine" in json.load(open(sys.argv[1]))' "$RESULTS/$file" \
      || { finish failed "$file" "no machine entry in $file"; return 0; }
    export_result "$RESULTS/$file"; finish ok "$file" "$(summary_line "$RESULTS/$file")"
  else
    finish "$st" "" "$( [[ $st == cut ]] && echo "stopped at $cap s or the deadline" || echo "exit $rc")"
  fi
}
summary_line() {  # the headline numbers of a benchmark JSON, in one line
  "$PY" -c '
import json, sys
r = json.load(open(sys.argv[1])); s = r.get("summary", {})
keys = ["robust_nb_images_per_s", "speedup_vs_dataloader", "pgd_time_over_torchattacks", "minimal_perturbation_images_per_s",
        "ours_images_per_s", "speedup_vs_imagecorruptions", "fcl_over_xe_step", "sensitivity_speedup_vs_loop"]
print(", ".join(f"{k} {s[k]:.3g}" if isinstance(s[k], float) else f"{k} {s[k]}" for k in keys if s.get(k) is not None))
' "$1" 2>/dev/null || true
}

if (( DRY )); then
  TT=(--steps 2 --rounds 1 --workers 0)
  AT=(--n 8 --batch 8 --repeats 1 --mp-n 4 --mp-repeats 1 --train-steps 2)
  CO=(--n 8 --chunk 8 --ic-sample 1 --names gaussian_noise,fog,jpeg_compression)
  FO=(--steps 1 --rounds 1 --sens-batch 1 --sens-rounds 1 --loop-features 16)
  EST=(12 12 10 12) CAP=(300 300 300 300)   # loose caps: a busy CPU may be several times slower
else
  TT=(--steps 300 --rounds 3)
  AT=()
  CO=()
  FO=()
  EST=(45 45 60 40) CAP=(120 120 150 120)
fi

# ---------------------------------------------------------------- fcl_table1

FCL_SEED_PY=$(cat <<'PY'
import json, sys
from robust_nb.experiments.fcl import FCLRecipe, reproduce_fcl
seed, out, fields = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
reproduce_fcl(FCLRecipe(**fields, seeds=1, first_seed=seed), out=out)
PY
)
if (( DRY )); then
  FCL_FIELDS='{"dataset": "fashion_mnist", "device": "cpu", "epochs": 1, "train_size": 256, "eval_size": 128, "start_epoch": 0, "warmup_epochs": 0}'
  FCL_PRIOR=20 FCL_COMBINE=60
else
  FCL_FIELDS='{"dataset": "fashion_mnist", "device": "cuda"}'   # the paper's recipe: 20 epochs, lambda 0.001, k 256
  FCL_PRIOR=150 FCL_COMBINE=20
fi
FCL_STEM=fcl_table1_fashion_mnist

fcl_estimate() {  # seconds a seed needs: the longest one so far, else the prior
  local d=$WORK/fcl/durations
  if [[ -s $d ]]; then awk -v p=0 '{ if ($1 + 0 > p) p = $1 + 0 } END { printf "%d\n", p + 1 }' "$d"; else echo "$FCL_PRIOR"; fi
}
fcl_worker() {  # fcl_worker W: seeds W, W + jobs, ... one after another while each still fits
  local w=$1 s l est t0 rc secs dir=$WORK/fcl
  for (( s = w; s < FCL_SEEDS; s += FCL_JOBS )); do
    l=$(( (FCL_END - $(now_ms)) / 1000 )); est=$(fcl_estimate)
    if (( l < est )); then
      printf '%s\tnot started\t\n' "$s" >> "$dir/seeds.tsv"; say "fcl_table1: seed $s not started (needs ~$est s, $l s left)"; continue
    fi
    t0=$(now_ms); rc=0
    OMP_NUM_THREADS=$FCL_THREADS timeout --kill-after=10 "$l" "$PY" -c "$FCL_SEED_PY" "$s" "$dir/seed$s" "$FCL_FIELDS" \
      > "$dir/seed$s.log" 2>&1 &
    echo $! > "$dir/pid.$w"
    wait $! || rc=$?
    rm -f "$dir/pid.$w"
    secs=$(secs_since "$t0")
    case $(status_of "$rc") in
      ok) echo "$secs" >> "$dir/durations"; printf '%s\tok\t%s\n' "$s" "$secs" >> "$dir/seeds.tsv" ;;
      cut) printf '%s\tcut\t%s\n' "$s" "$secs" >> "$dir/seeds.tsv" ;;
      *) printf '%s\tfailed (exit %s)\t%s\n' "$s" "$rc" "$secs" >> "$dir/seeds.tsv"; tail -n 5 "$dir/seed$s.log" >> "$PART_LOG" ;;
    esac
    say "fcl_table1: seed $s $(status_of "$rc") in $secs s"
  done
}
fcl_table1() {
  begin fcl_table1 $(( FCL_PRIOR + FCL_COMBINE )) || return 0
  needs data || return 0
  local dir=$WORK/fcl w jsons=() s failed=0
  mkdir -p "$dir"; : > "$dir/seeds.tsv"
  FCL_END=$(( DEADLINE - FCL_COMBINE * 1000 ))
  FCL_THREADS=$(( NPROC / FCL_JOBS > 0 ? NPROC / FCL_JOBS : 1 ))
  say "fcl_table1: $FCL_SEEDS seeds, $FCL_JOBS at a time, $FCL_THREADS CPU threads each, recipe $FCL_FIELDS"
  BG_PIDS=()
  for (( w = 0; w < FCL_JOBS && w < FCL_SEEDS; w++ )); do fcl_worker "$w" & BG_PIDS+=($!); done
  for p in "${BG_PIDS[@]}"; do wait "$p" || true; done
  BG_PIDS=()
  sort -n -o "$dir/seeds.tsv" "$dir/seeds.tsv"
  for (( s = 0; s < FCL_SEEDS; s++ )); do
    if [[ -s $dir/seed$s/$FCL_STEM.json ]]; then jsons+=("$dir/seed$s/$FCL_STEM.json"); fi
  done
  failed=$(grep -c $'\tfailed' "$dir/seeds.tsv" || true)
  local seed_note
  seed_note="${#jsons[@]}/$FCL_SEEDS seeds done; $(awk -F'\t' '{ printf "%s%s %s%s", (NR > 1 ? ", " : ""), $1, $2, ($3 != "" ? " " $3 "s" : "") }' "$dir/seeds.tsv")"
  if (( ${#jsons[@]} == 0 )); then finish failed "" "$seed_note"; return 0; fi
  local rc=0
  limited "$FCL_COMBINE" "${RNB[@]}" reproduce fcl --combine "$(IFS=,; echo "${jsons[*]}")" --out "$dir/combined" || rc=$?
  if (( rc != 0 )) || [[ ! -s $dir/combined/$FCL_STEM.json ]]; then finish failed "" "combine exited $rc; $seed_note"; return 0; fi
  cp "$dir/combined/$FCL_STEM.json" "$RESULTS/$FCL_STEM$SFX.json"
  cp "$dir/combined/$FCL_STEM.csv" "$RESULTS/$FCL_STEM$SFX.csv"
  export_result "$RESULTS/$FCL_STEM$SFX.json"
  local claim
  claim=$("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(", ".join("%s %.4f" % (c["name"], c["measured"]) for c in r.get("claims", []) if isinstance(c.get("measured"), float)))' "$RESULTS/$FCL_STEM$SFX.json" 2>/dev/null || true)
  if (( failed > 0 )); then finish failed "$FCL_STEM$SFX.json" "$seed_note"
  elif (( ${#jsons[@]} < FCL_SEEDS )); then finish partial "$FCL_STEM$SFX.json" "$seed_note; $claim"
  else finish ok "$FCL_STEM$SFX.json" "$seed_note; $claim"; fi
}

# ---------------------------------------------------------------- notebooks_gpu

skip_part() {  # skip_part NAME REASON: a part that does not apply here
  record "$1" skipped 0 "" "$2"; say "$1: skipped ($2)"
}

notebooks_gpu() {
  local nbs=() nb rc n_ok=0 not_run=() est=120 nbdev_test=""
  selected notebooks_gpu || { skip_part notebooks_gpu "not selected (--only/--skip)"; return 0; }
  mapfile -t nbs < <(grep -rlE '"#\| *gpu\b' nbs --include='*.ipynb' 2>/dev/null | sort || true)
  if (( ${#nbs[@]} == 0 )); then skip_part notebooks_gpu "no notebook in nbs/ has a #| gpu cell"; return 0; fi
  if (( DRY )); then skip_part notebooks_gpu "dry run: #| gpu cells are sized for a GPU; the GPU run takes ${nbs[*]}"; return 0; fi
  begin notebooks_gpu "$est" || return 0
  for c in "$(dirname "$(command -v "$PY")")/nbdev_test" "$SITE/bin/nbdev_test" "$(command -v nbdev_test || true)"; do
    if [[ -n $c && -x $c ]]; then nbdev_test=$c; break; fi
  done
  [[ -n $nbdev_test ]] || { finish failed "" "nbdev_test not found (scripts/make_gpu_wheels.sh --notebooks)"; return 0; }
  for nb in "${nbs[@]}"; do
    if (( $(left) < est )); then not_run+=("$nb"); continue; fi
    rc=0; limited 600 "$nbdev_test" --flags gpu --path "$nb" || rc=$?
    if (( rc == 0 )); then n_ok=$(( n_ok + 1 )); else finish "$(status_of "$rc")" "" "$nb exited $rc"; return 0; fi
  done
  if (( ${#not_run[@]} )); then finish partial "" "$n_ok of ${#nbs[@]} notebooks passed; not run for want of time: ${not_run[*]}"
  else finish ok "" "$n_ok notebooks with #| gpu cells passed"; fi
}

# ---------------------------------------------------------------- zoo

zoo() {
  local est=60 listing names=() n rc built=0 not_run=() t0 secs
  selected zoo || { skip_part zoo "not selected (--only/--skip)"; return 0; }
  if ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("robust_nb.zoo") is None)' 2>/dev/null; then
    skip_part zoo "robust_nb.zoo is absent"; return 0
  fi
  begin zoo $(( DRY ? 10 : est )) || return 0
  rc=0; listing=$("${RNB[@]}" zoo list 2>>"$PART_LOG") || rc=$?
  mapfile -t names < <(grep -v '^[[:space:]]*$' <<< "$listing" || true)
  if (( rc != 0 || ${#names[@]} == 0 )); then finish failed "" "robust-nb zoo list gave no entries (exit $rc)"; return 0; fi
  if (( DRY )); then finish ok "" "dry run: robust-nb zoo list gave ${#names[@]} entries; builds are full trainings, left to the GPU run"; return 0; fi
  mkdir -p "$WORK/zoo"
  for n in "${names[@]}"; do
    if (( $(left) < est )); then not_run+=("$n"); continue; fi
    rc=0; t0=$(now_ms)
    limited "$(left)" "${RNB[@]}" zoo build "$n" --device "$DEV" --out "$WORK/zoo" || rc=$?
    secs=$(( ($(now_ms) - t0) / 1000 + 1 )); if (( secs > est )); then est=$secs; fi   # the next entry needs as long as the longest so far
    if (( rc == 0 )); then built=$(( built + 1 )); else not_run+=("$n (exit $rc)"); fi
  done
  if (( built == 0 )); then finish failed "" "no entry built; ${not_run[*]}"
  elif (( ${#not_run[@]} )); then finish partial "" "$built of ${#names[@]} built; not built: ${not_run[*]}"
  else finish ok "" "all ${#names[@]} entries built"; fi
}

# ---------------------------------------------------------------- the run, in order of value

cuda_tests
bench train_throughput "${EST[0]}" "${CAP[0]}" "data" -- "${TT[@]}"
bench attacks "${EST[1]}" "${CAP[1]}" "torchattacks data" -- "${AT[@]}"
bench corruptions "${EST[2]}" "${CAP[2]}" "" -- "${CO[@]}"
bench fcl_overhead "${EST[3]}" "${CAP[3]}" "data" -- "${FO[@]}"
fcl_table1
notebooks_gpu
zoo
grep -q $'\tfailed\t' "$WORK/parts.tsv" && exit 1
exit 0
