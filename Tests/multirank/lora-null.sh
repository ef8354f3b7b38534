#!/usr/bin/env bash
# Multi-rank tests of LoRA-Null (issue 9), run by launch/test after the release build: build at np=1/2/3
# gives the same null_space.json; each variant's step-0 model is the base; verify figures the same at
# np=1 and 3; a trained null/v2 adapter keeps lora_A bit-identical (check-step and verify --initial);
# bad input is named. Tiny models, about a minute on 2 cores. The last line is "N passed, N failed".
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
json() { python3 -c "import json, sys; r = json.load(open(sys.argv[1])); sys.exit(0 if ($2) else 1)" "$1"; }
make_corpus

# A tiny llama base, trained a few steps so its activations are not those of a random model.
local_mpirun 2 "$SUBSPACE" train --config "$ROOT/configs/base.yaml" --set run.output="$WORK/base" --set data.path="$WORK/corpus" \
    --set model.family=llama --set model.layers=2 --set model.width=32 --set model.heads=4 --set model.context=32 \
    --set data.sequence=32 --set training.global_batch=8 --set training.micro_batch=4 --set training.steps=20 --set training.warmup=2 \
    --set evaluation.every=0 --set evaluation.sequences=8 --set checkpoint.every=0 > "$WORK/base.log" 2>&1 \
    || { fail "base model"; tail -5 "$WORK/base.log"; }
BASE="$WORK/base/final"
CAL=(--calibration "$WORK/corpus" --sequence-length 32 --max-sequences 24 --batch 4)
build() { local np="$1" out="$2"; shift 2; local_mpirun "$np" "$SUBSPACE" lora-null build --model "$BASE" "${CAL[@]}" --rank 4 --output "$out" "$@" > "$out.log" 2>&1; }

# The same calibration statistics at np = 1, 2, 3 (float noise: ranks run other batch shapes).
for np in 1 2 3; do build "$np" "$WORK/null-np$np" --variant null || { fail "build np=$np"; tail -5 "$WORK/null-np$np.log"; }; done
same_eigen() { python3 -c "
import json, sys
a, b = (json.load(open(p + '/null_space.json')) for p in sys.argv[1:3])
ok = len(a['modules']) == len(b['modules']) == 14 and all(
    x['name'] == y['name'] and all(abs(u - v) <= 1e-6 * x['trace'] for u, v in zip(x['eigenvalues'], y['eigenvalues']))
    and abs(x['closed_form_ratio'] - y['closed_form_ratio']) <= 1e-5 * x['closed_form_ratio'] for x, y in zip(a['modules'], b['modules']))
sys.exit(0 if ok else 1)" "$@"; }
expect "null_space.json np=2 equals np=1" same_eigen "$WORK/null-np1" "$WORK/null-np2"
expect "null_space.json np=3 equals np=1" same_eigen "$WORK/null-np1" "$WORK/null-np3"
expect "eigenvalues ascending, share and closed form consistent" json "$WORK/null-np1/null_space.json" \
    "all(m['eigenvalues'] == sorted(m['eigenvalues']) and abs(m['closed_form_ratio'] ** 2 - sum(m['eigenvalues']) / m['trace']) < 1e-9 for m in r['modules'])"
expect "PEFT files: lora_A [r, in] and lora_B [out, r]" python3 -c "
import json, struct, sys
d = open('$WORK/null-np1/adapter_model.safetensors', 'rb').read(); n = struct.unpack('<Q', d[:8])[0]; h = json.loads(d[8:8 + n])
sys.exit(0 if h['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight']['shape'] == [4, 32]
         and h['base_model.model.model.layers.1.mlp.down_proj.lora_B.weight']['shape'] == [32, 4] else 1)"

# Step 0: base + adapter gives the base's logits (v2 is a rank-2r residual pair).
build 2 "$WORK/v2" --variant v2 --covariance plain || { fail "build v2"; tail -5 "$WORK/v2.log"; }
python3 -c "
import struct, json
ids = [(i * 37 + 11) % 256 for i in range(64)]
h = json.dumps({'input_ids': {'dtype': 'I64', 'shape': [2, 32], 'data_offsets': [0, 512]}}).encode()
open('$WORK/ids.safetensors', 'wb').write(struct.pack('<Q', len(h)) + h + struct.pack('<64q', *ids))"
"$SUBSPACE" forward --model "$BASE" --input "$WORK/ids.safetensors" --output "$WORK/base-out.safetensors" > /dev/null 2>&1
close_logits() { python3 -c "
import json, struct, sys
def logits(p):
    d = open(p, 'rb').read(); n = struct.unpack('<Q', d[:8])[0]; e = json.loads(d[8:8 + n])['logits']
    a, b = e['data_offsets']; return struct.unpack('<%df' % ((b - a) // 4), d[8 + n + a:8 + n + b])
x, y = logits(sys.argv[1]), logits(sys.argv[2])
sys.exit(0 if len(x) == len(y) > 0 and max(abs(u - v) for u, v in zip(x, y)) <= float(sys.argv[3]) else 1)" "$@"; }
for v in null-np1 v2; do
    "$SUBSPACE" forward --model "$BASE" --adapter "$WORK/$v" --input "$WORK/ids.safetensors" --output "$WORK/$v-out.safetensors" > /dev/null 2>&1
    expect "$v: step-0 logits equal the base's (1e-5)" close_logits "$WORK/base-out.safetensors" "$WORK/$v-out.safetensors" 1e-5
done

# Verify at np=1 and np=3: the same figures.
verify() { local np="$1" out="$2"; shift 2; local_mpirun "$np" "$SUBSPACE" lora-null verify --model "$BASE" "${CAL[@]}" --output "$out" "$@" > "$out.log" 2>&1; }
verify 1 "$WORK/ver-np1" --adapter "$WORK/v2" || { fail "verify np=1"; tail -5 "$WORK/ver-np1.log"; }
verify 3 "$WORK/ver-np3" --adapter "$WORK/v2" || { fail "verify np=3"; tail -5 "$WORK/ver-np3.log"; }
expect "verify np=3 equals np=1 (1e-5)" python3 -c "
import json, sys
a, b = (json.load(open(p + '/verification.json')) for p in sys.argv[1:3])
keys = ['x_norm', 'down_x_ratio', 'adapter_x_ratio', 'adapter_output_share', 'down_norm', 'up_norm', 'residual_norm']
sys.exit(0 if all(abs(x[k] - y[k]) <= 1e-5 * abs(x[k]) + 1e-12 for x, y in zip(a['modules'], b['modules']) for k in keys) else 1)" "$WORK/ver-np1" "$WORK/ver-np3"

# Train null and v2 (np=2), prove lora_A frozen (check-step, then verify --initial bit for bit).
for variant in null v2; do
    folder="$WORK/null-np1"; [ "$variant" = v2 ] && folder="$WORK/v2"
    cat > "$WORK/train-$variant.yaml" <<YAML
run: {output: $WORK/train-$variant, seed: 1}
model: {source: hf, path: $BASE, family: llama}
data: {kind: corpus, path: $WORK/corpus, sequence: 32}
training: {steps: 6, global_batch: 8, micro_batch: 2, learning_rate: 0.01, warmup: 1}
lora: {rank: 4, alpha: 4, targets: [q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj], initialisation: lora-null, adapter: $folder}
evaluation: {every: 0, sequences: 8, exact_match: 0}
checkpoint: {every: 0, resume: never}
YAML
    "$SUBSPACE" params --config "$WORK/train-$variant.yaml" --check-step > "$WORK/check-$variant.log" 2>&1 \
        && expect "$variant: check-step passes (14 lora_A frozen)" grep -q "check-step passed" "$WORK/check-$variant.log" \
        || { fail "$variant: check-step"; tail -5 "$WORK/check-$variant.log"; }
    "$SUBSPACE" params --config "$WORK/train-$variant.yaml" --check-step --simulate-unfrozen lora_A > "$WORK/broken-$variant.log" 2>&1
    expect "$variant: check-step fails when lora_A is made trainable" grep -q "lora_A.weight" "$WORK/broken-$variant.log"
    local_mpirun 2 "$SUBSPACE" train --config "$WORK/train-$variant.yaml" > "$WORK/train-$variant.log" 2>&1 \
        || { fail "$variant: training"; tail -5 "$WORK/train-$variant.log"; continue; }
    verify 2 "$WORK/ver-$variant" --adapter "$WORK/train-$variant/final" --initial "$folder" \
        || { fail "$variant: verify trained"; tail -5 "$WORK/ver-$variant.log"; continue; }
    R="$WORK/ver-$variant/verification.json"
    expect "$variant: trained lora_A bit-identical to the build's in all 14 modules" \
        json "$R" "len(r['frozen_factors']) == 14 and all(f['changed_elements'] == 0 for f in r['frozen_factors'])"
    expect "$variant: the up-projection learned (‖A‖_F grew, ‖ABX‖/‖X‖ > 0)" \
        json "$R" "r['summary']['up_norm'] > r['initial_summary']['up_norm'] and r['summary']['adapter_x_ratio'] > 0"
    expect "$variant: report.md and a self-contained report.html with 3 SVG plots" python3 -c "
import sys; h = open('$WORK/ver-$variant/report.html').read()
sys.exit(0 if h.count('<svg') == 3 and '<script' not in h and open('$WORK/ver-$variant/report.md').read().startswith('# LoRA-Null') else 1)"
done

# The knowledge-preservation study, scaled down: 5 methods, 2-point grids with one extension, 2 seeds.
"$SUBSPACE" data sft --output "$WORK/sft" --seed 1 --train 128 --test 16 > /dev/null || fail "sft data"
STUDY=(--config "$ROOT/configs/lora-null.yaml" --set run.output="$WORK/study" --set data.path="$WORK/sft" --set data.sequence=32
       --set training.steps=6 --set training.global_batch=8 --set training.micro_batch=4 --set training.warmup=1
       --set evaluation.sequences=8 --set evaluation.exact_match=4 --set evaluation.max_new_tokens=3
       --set study.base_model="$BASE" --set study.corpus="$WORK/corpus" --set study.rank=4 --set study.alpha=4
       --set study.calibration_sequences=8 --set study.forgetting_sequences=8 --set "study.seeds=[1, 2]" --set study.max_extensions=1
       --set "study.learning_rates={full: [0.001, 0.003], lora: [0.003, 0.01], null: [0.003, 0.01], v1: [0.003, 0.01], v2: [0.003, 0.01]}")
if local_mpirun 2 "$SUBSPACE" lora-null study "${STUDY[@]}" > "$WORK/study.log" 2>&1; then
    R="$WORK/study/results.json"
    expect "study: 5 methods, each at a swept rate with 2 seeds of task loss and forgetting" json "$R" \
        "[m['method'] for m in r['methods']] == ['full', 'lora', 'null', 'v1', 'v2'] and all(len(m['forgetting']['values']) == 2 and len(m['task_val_loss']['values']) == 2 and len(m['sweep']['points']) >= 2 for m in r['methods'])"
    expect "study: null/v1/v2 compared with LoRA and full FT, findings written" json "$R" "len(r['comparisons']) == 6 and len(r['findings']) >= 3"
    expect "study: report.html with the trade-off plot" grep -q "Task quality vs forgetting" "$WORK/study/report.html"
    expect "study: finding.json for the index names the variants against LoRA" grep -q '"finding" : "vs LoRA at equal rank' "$WORK/study/finding.json"
    local_mpirun 2 "$SUBSPACE" lora-null study "${STUDY[@]}" > "$WORK/study2.log" 2>&1
    expect "study rerun: every run skipped, same results" python3 -c "
import json, sys
log = open('$WORK/study2.log').read()
sys.exit(0 if 'training →' not in log and json.load(open('$R'))['methods'] == json.load(open('$R'))['methods'] else 1)"
else
    fail "study"; tail -5 "$WORK/study.log"
fi

# Bad input: named, non-zero exit, no hung rank.
build 2 "$WORK/bad-target" --variant null --targets q_proj,qq_proj; rc=$?
expect "unknown target: error names it" test $rc -ne 0 -a -n "$(grep -l qq_proj "$WORK/bad-target.log")"
build 2 "$WORK/bad-rank" --variant null --rank 32; rc=$?
expect "rank ≥ input width: error names the width" test $rc -ne 0 -a -n "$(grep -l 'input width 32' "$WORK/bad-rank.log")"
finish
