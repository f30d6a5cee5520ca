#!/usr/bin/env bash
# The reproductions at Fashion-MNIST scale, one seed per call, so that each part fits a working session of a 2-core machine.
#   scripts/reproduce_at_scale.sh PAPER SEED [OPTIONS]   run one seed of PAPER (ceb, mtlat, margins, transfer) into runs/scale/PAPER/seedN,
#                                                        its result JSON then kept in benchmarks/results/scale/PAPER/seedN/
#   scripts/reproduce_at_scale.sh PAPER combine          join the kept seeds into benchmarks/results/
# OPTIONS go to `robust-nb reproduce` (e.g. a subset of --methods: two such calls on disjoint subsets of one seed run side by side,
# sharing its finished units; the call with no subset then only reads them). Every paper but CEB keeps each finished unit and
# resumes; a CEB seed is one unit, since its transfer attack needs all the seed's models. Until its whole seed has run, a seed's
# finished units are also kept in benchmarks/results/scale/PAPER/seedN/units/, so that a seed can be finished on another machine
# or in another session (runs/ is not kept); the seed's result JSON then holds all they hold, and they are removed.
set -euo pipefail
paper=${1:?PAPER: one of ceb, mtlat, margins, transfer}
part=${2:?SEED (0, 1, 2, ...) or combine}
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
rnb=${ROBUST_NB:-$here/.venv/bin/robust-nb}
out=runs/scale/$paper
resume=(--resume)
case $paper in
  ceb) args=(--no-batch-norm --train-size all --test-size all --attack-size 300 --epochs 8 --pgd-steps 20
             --guard-steps 50 --guard-restarts 3 --transfer)
       resume=() ;;
  mtlat) args=(--train-size all --eval-size 2000 --epochs 20 --batch-size 256 --cw-search-steps 5) ;;
  # HEIN's grid sits below the recipe's default: at lambda 0.003 and above HEIN trains 6 points or more below NO REG here
  # (benchmarks/results/scale/margins/lambda_probe_hein_*.json; scripts/hein_scale_probe.py shows why: Omega grows to ~70 in two epochs)
  margins) args=(--channels 16 --embed-dim 256 --train-size all --test-size all --margin-size 1000 --epochs 10 --milestones 5 --val-size all
                 --select-every-seed --lambdas-hein 0.0001,0.0003,0.001) ;;
  transfer) args=(--n-c 0,128,1024 --test-size 1000 --nn-epochs 5 --nn-steps-per-epoch all --val-limit 1000 --svm-train-size 5000
                  --ae-width 1 --ae-pretrain-steps 6000 --ae-steps 300 --ae-joint-steps 1500) ;;
  *) echo "PAPER: one of ceb, mtlat, margins, transfer, got '$paper'" >&2; exit 2 ;;
esac
kept=benchmarks/results/scale/$paper
if [ "$part" = combine ]; then  # the joined JSON is named as the seeds' (e.g. ceb_fmnist_cpu.json)
  parts=$(ls "$kept"/seed*/*.json | tr '\n' ',' | sed 's/,$//')
  exec "$rnb" reproduce "$paper" "${args[@]}" --combine "$parts" --out benchmarks/results
fi
units=$out/seed$part/units units_kept=$kept/seed$part/units
if [ -d "$units_kept" ]; then mkdir -p "$units" && cp -Rn "$units_kept"/. "$units"/; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
status=0
"$rnb" reproduce "$paper" "${args[@]}" --seeds 1 --first-seed "$part" "${resume[@]}" --quiet --out "$out/seed$part" "$@" || status=$?
mkdir -p "$kept/seed$part"
if [ $status -eq 0 ] && [ $# -eq 0 ]; then  # the whole seed ran (not a subset of its methods): keep its result JSON, which holds its units
  cp "$(ls "$out/seed$part"/*.json | head -1)" "$kept/seed$part/"
  rm -rf "$units_kept"
elif [ -d "$units" ]; then  # keep the units finished so far
  mkdir -p "$units_kept" && cp -R "$units"/. "$units_kept"/
fi
exit $status
