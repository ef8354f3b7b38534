#!/usr/bin/env bash
# The ΔW study (`subspace pipeline`) at np=2 on a tiny model: equal budgets, learning-rate sweeps that
# extend past an edge, seeds with spreads, the rank study, the report, finding.json and the index page;
# then a second run that skips every stage.
source "$(dirname "$0")/lib.sh"
mkdir -p "$WORK/text" && head -c 300000 "$FIX/bpe-tokenizer/long_text.txt" > "$WORK/text/play.txt"
cat > "$WORK/pipeline.yaml" <<YAML
output: $WORK/runs/delta
seeds: [1, 2]
budget: {steps: 30}
corpus: {text: $WORK/text, shards: $WORK/shards, tokenizer: bytes, validation_fraction: 0.1}
sft: {path: $WORK/sft, seed: 1, train: 200, test: 16}
base:
  config: $ROOT/configs/base.yaml
  set: [training.steps=40, training.warmup=5, model.layers=2, model.width=32, model.heads=2, evaluation.every=0,
        evaluation.sequences=8, checkpoint.every=0]
teacher:
  config: $ROOT/configs/teacher.yaml
  set: [training.warmup=5, evaluation.every=0, evaluation.sequences=8, evaluation.exact_match=4, checkpoint.every=0]
  learning_rates: [0.0001, 0.001]
students:
  config: $ROOT/configs/student-lora.yaml
  set: [training.warmup=5, evaluation.every=0, evaluation.sequences=8, evaluation.exact_match=4, checkpoint.every=0, lora.rank=4, lora.alpha=8]
  initialisations: [random, svd-delta]
  learning_rates: [0.001, 0.01]
  max_extensions: 1
  ranks: [2]
analysis: {rank: 4, method: full}
YAML
start=$(date +%s)
local_mpirun 2 "$SUBSPACE" pipeline --config "$WORK/pipeline.yaml" > "$WORK/first.log" 2>&1
status=$?; expect "pipeline np=2 finishes" test $status -eq 0; [ $status -eq 0 ] || tail -30 "$WORK/first.log"
R="$WORK/runs/delta/report"
expect "report.html, report.md, summary.json" test -s "$R/report.html" -a -s "$R/report.md" -a -s "$R/summary.json"
expect "summary: equal budgets, 2 seeds per method, sweeps extended or bracketed, rank study" $CHECK pipeline-summary "$R/summary.json"
expect "per-seed comparisons" test -s "$R/seed-1/comparison.json" -a -s "$R/seed-2/comparison.json"
expect "finding.json for the index" test -s "$WORK/runs/delta/finding.json"
"$SUBSPACE" index --root "$WORK/runs" > "$WORK/index.log" 2>&1
expect "index page links the report" grep -q 'delta/report/report.html' "$WORK/runs/index.html"
first=$(( $(date +%s) - start ))
start=$(date +%s)
local_mpirun 2 "$SUBSPACE" pipeline --config "$WORK/pipeline.yaml" > "$WORK/second.log" 2>&1
expect "second run finishes" test $? -eq 0
expect "second run trains nothing (every stage skipped)" bash -c "! grep -q 'training →' '$WORK/second.log'"
echo "first run ${first} s, second run $(( $(date +%s) - start )) s"
# A config error names the key.
printf 'seeds: [1, 1]\n' > "$WORK/bad.yaml"
local_mpirun 2 "$SUBSPACE" pipeline --config "$WORK/bad.yaml" > "$WORK/bad.log" 2>&1
expect "repeated seeds refused naming 'seeds'" bash -c "grep -q \"'seeds'\" '$WORK/bad.log'"
finish
