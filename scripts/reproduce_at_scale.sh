#!/usr/bin/env bash
# The reproductions at Fashion-MNIST scale, one seed per call, so that each part fits a working session of a 2-core machine.
#   scripts/reproduce_at_scale.sh PAPER SEED [OPTIONS]   run one seed of PAPER (ceb, mtlat, margins, transfer) into runs/scale/PAPER/seedN,
#                                                        its result JSON then kept as benchmarks/results/scale/PAPER/seedN.json
#   scripts/reproduce_at_scale.sh PAPER combine          join the kept seeds into benchmarks/results/
# OPTIONS go to `robust-nb reproduce` (e.g. a subset of --methods: two such calls on disjoint subsets of one seed run side by side,
# sharing its finished units; the call with no subset then only reads them). Every paper but CEB keeps each finished unit and
# resumes; a CEB seed is one unit, since its transfer attack needs all the seed's models.
set -euo pipefail
paper=${1:?PAPER: one of ceb, mtlat, margins, transfer}
part=${2:?SEED (0, 1, 2, ...) or combine}
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
rnb=${ROBUST_NB:-$here/.venv/bin/robust-nb}
out=$here/runs/scale/$paper
resume=(--resume)
case $paper in
  ceb) args=(--no-batch-norm --train-size all --test-size all --attack-size 300 --epochs 8 --pgd-steps 20
             --guard-steps 50 --guard-restarts 3 --transfer)
       resume=() ;;
  mtlat) args=(--train-size all --eval-size 2000 --epochs 20 --batch-size 256 --cw-search-steps 5) ;;
  *) echo "PAPER: one of ceb, mtlat, got '$paper'" >&2; exit 2 ;;
esac
kept=$here/benchmarks/results/scale/$paper
if [ "$part" = combine ]; then
  parts=$(ls "$kept"/seed*.json | tr '\n' ',' | sed 's/,$//')
  exec "$rnb" reproduce "$paper" "${args[@]}" --combine "$parts" --out "$here/benchmarks/results"
fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
"$rnb" reproduce "$paper" "${args[@]}" --seeds 1 --first-seed "$part" "${resume[@]}" --quiet --out "$out/seed$part" "$@"
if [ $# -eq 0 ]; then  # the whole seed ran (not a subset of its methods): keep its result JSON
  mkdir -p "$kept"
  cp "$(ls "$out/seed$part"/*.json | head -1)" "$kept/seed$part.json"
fi
