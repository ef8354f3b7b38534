#!/usr/bin/env bash
# Multi-rank tests of LoRA-X (issue 11), run by launch/test after the release build. Each check prints PASS
# or FAIL; the last line is "N passed, N failed". Tiny models and a few steps (about a minute on 2 cores).
# SUBSPACE_BIN overrides the executable (default: common.sh's).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# json FILE EXPR: true when the Python expression EXPR holds for r = the parsed JSON file.
json() { python3 -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }
make_corpus
"$SUBSPACE" data sft --output "$WORK/sft" --seed 1 --train 64 --test 16 >/dev/null || fail "sft data"

SHAPE=(--set model.layers=2 --set model.width=32 --set model.heads=4 --set model.context=32 --set data.sequence=32
       --set training.global_batch=4 --set training.micro_batch=2 --set training.warmup=1 --set evaluation.every=0
       --set evaluation.sequences=4 --set checkpoint.every=0)
train() { local out="$1"; shift; local_mpirun 1 "$SUBSPACE" train "${SHAPE[@]}" --set run.output="$out" "$@" > "$out.log" 2>&1 \
              || { fail "train $(basename "$out")"; tail -5 "$out.log"; }; }
# B0, B1 = B0 trained on a little more text (related), C = another seed (unrelated), a LoRA on B0.
train "$WORK/b0" --config "$ROOT/configs/base.yaml" --set data.path="$WORK/corpus" --set training.steps=8 --set run.seed=1
train "$WORK/b1" --config "$ROOT/configs/base.yaml" --set data.path="$WORK/corpus" --set training.steps=4 --set run.seed=2 \
    --set model.source=hf --set model.path="$WORK/b0/final"
train "$WORK/c" --config "$ROOT/configs/base.yaml" --set data.path="$WORK/corpus" --set training.steps=8 --set run.seed=5
train "$WORK/lora" --config "$ROOT/configs/student-lora.yaml" --set data.path="$WORK/sft" --set training.steps=6 \
    --set model.path="$WORK/b0/final" --set evaluation.exact_match=0

transfer() { local np="$1" target="$2" out="$3"; shift 3
    local_mpirun "$np" "$SUBSPACE" lora-x --source-model "$WORK/b0/final" --target-model "$target" --adapter "$WORK/lora/final" \
        --output "$out" --subspace-rank 8 "$@" > "$out.log" 2>&1; }
for np in 1 2; do
    transfer $np "$WORK/b1/final" "$WORK/x$np" --threshold 0 || { fail "lora-x np=$np"; tail -5 "$WORK/x$np.log"; }
done
expect "lora-x np=2 equals np=1 (1e-5)" $CHECK same_transfer "$WORK/x2" "$WORK/x1" 1e-5
expect "np=2 split the modules over both ranks" json "$WORK/x2/transfer.json" "sorted({m['owner_rank'] for m in r['modules']}) == [0, 1]"
expect "threshold 0 transfers every mapped module" \
    json "$WORK/x1/transfer.json" "r['transferred_count'] == len(r['modules']) > 0 and r['unmapped'] == []"
expect "the target adapter keeps r, alpha and target_modules" python3 -c "
import json, sys
a, b = (json.load(open(p + '/adapter_config.json')) for p in sys.argv[1:3])
sys.exit(0 if (a['r'], a['lora_alpha'], a['target_modules']) == (b['r'], b['lora_alpha'], b['target_modules']) else 1)" \
    "$WORK/x1" "$WORK/lora/final"
expect "report.md, report.html and plots written" test -s "$WORK/x1/report.md" -a -s "$WORK/x1/report.html" -a -s "$WORK/x1/similarity_u.svg"

# The related pair clears the default threshold; the unrelated one sits near chance and is refused.
transfer 2 "$WORK/b1/final" "$WORK/related" || { fail "lora-x related, default threshold"; tail -5 "$WORK/related.log"; }
expect "related pair: similarity far above chance, modules transferred" \
    json "$WORK/related/transfer.json" "r['transferred_count'] > 0 and min(m['ratio_u'] for m in r['modules']) > 2"
if transfer 2 "$WORK/c/final" "$WORK/unrelated"; then
    fail "unrelated pair under the default threshold should fail"
else
    expect "unrelated pair: 'no module was transferred' error" grep -q "no module was transferred" "$WORK/unrelated.log"
fi
transfer 1 "$WORK/c/final" "$WORK/unrelated0" --threshold 0 || fail "lora-x unrelated, threshold 0"
expect "unrelated pair: φ within 2× of chance" \
    json "$WORK/unrelated0/transfer.json" "all(0.5 < m['ratio_u'] < 2 and 0.5 < m['ratio_v'] < 2 for m in r['modules'])"

# The different-width path: B0 grown to width 64 (function-preserving), the adapter carried to it at np=2.
"$SUBSPACE" lora-x grow --model "$WORK/b0/final" --width 64 --output "$WORK/wide" > "$WORK/wide.log" 2>&1 \
    || { fail "lora-x grow"; tail -5 "$WORK/wide.log"; }
expect "grown model: width 64, 8 heads, MLP 256" \
    json "$WORK/wide/config.json" "(r['n_embd'], r['n_head'], r['n_inner']) == (64, 8, 256)"
transfer 2 "$WORK/wide" "$WORK/widex" --threshold 0 || { fail "lora-x to the grown model"; tail -5 "$WORK/widex.log"; }
expect "grown target: every module mapped, φ_U far above chance" \
    json "$WORK/widex/transfer.json" "r['transferred_count'] == len(r['modules']) > 0 and all(m['projection'] == 'mapped' and m['ratio_u'] > 2 for m in r['modules'])"
expect "grown target: the adapter has the target's shapes (r kept)" $CHECK adapter_fits "$WORK/widex" "$WORK/wide"
finish
