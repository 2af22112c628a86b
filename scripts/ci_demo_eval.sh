#!/usr/bin/env bash
# Regression eval of the bundled demo model: a few samplers on two demo tasks, checked against the
# committed baseline. `scripts/ci_demo_eval.sh --write-baseline` rewrites results/ci_baseline.json
# from the same runs (do that only after an intended change of the model or the samplers).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for sampler in confidence info_gain random; do
  lm_eval --model infogain_mdm --model_args "sampler=$sampler" --device cpu \
    --tasks infogain_demo_sudoku,infogain_demo_addition_parallel --limit 40 --batch_size 40 \
    --output_path "$out/$sampler"
done
lm-eval-infogain regress --baseline results/ci_baseline.json --current "$out" "$@"
