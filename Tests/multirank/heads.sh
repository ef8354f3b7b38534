#!/usr/bin/env bash
# Multi-rank tests of the heads study (issue 10): `heads importance` on the reference fixtures against an
# independent computation (Tests/multirank/heads_reference.py: o_proj columns zeroed / weight gradients
# through `subspace forward`), identical at np = 1, 2, 3; then a scaled-down `heads study` at np = 2,
# re-measured at np = 1 from the same trained models (the training runs are skipped), which must give identical tables.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
REF="python3 $ROOT/Tests/multirank/heads_reference.py"

for m in gpt2-tiny llama-tiny; do
    $REF ids "$FIX/$m/reference.safetensors" "$WORK/ids-$m.safetensors"
    ok=1
    for np in 1 2 3; do
        local_mpirun "$np" "$SUBSPACE" heads importance --model "$FIX/$m" --input "$WORK/ids-$m.safetensors" \
            --output "$WORK/$m-np$np.json" --micro-batch $((np == 1 ? 8 : 1)) > "$WORK/$m-np$np.log" 2>&1 \
            || { ok=0; tail -5 "$WORK/$m-np$np.log"; }
    done
    if [ $ok = 1 ]; then
        expect "$m: importance identical at np=1,2,3" $REF same "$WORK/$m-np1.json" "$WORK/$m-np2.json" "$WORK/$m-np3.json"
        $REF reference "$SUBSPACE" "$FIX/$m" "$WORK/ids-$m.safetensors" "$WORK/$m-ref.json" \
            && expect "$m: importance matches the o_proj-column reference" $REF compare "$WORK/$m-np1.json" "$WORK/$m-ref.json" 1e-5 2e-6 \
            || fail "$m: reference computation"
    else
        fail "$m: heads importance runs"
    fi
done

# A scaled-down study: tiny base pretrained on the fixture play, FFT and LoRA on a small SFT set, 3 seeds.
make_corpus
cat > "$WORK/heads.yaml" <<YAML
output: $WORK/study
base:
  model: null
  config: $ROOT/configs/base.yaml
  set: [data.path=$WORK/corpus, model.layers=2, model.width=32, model.heads=4, training.steps=30, training.warmup=5,
        training.global_batch=8, training.micro_batch=4, evaluation.every=30, evaluation.sequences=8, checkpoint.every=30]
sft: {path: $WORK/sft, seed: 1, train: 128, test: 32}
fft:
  config: $ROOT/configs/teacher.yaml
  set: [training.steps=12, training.warmup=2, training.global_batch=8, training.micro_batch=4, evaluation.every=12,
        evaluation.sequences=8, evaluation.exact_match=0, checkpoint.every=12]
  learning_rates: [0.001, 0.003]
  max_extensions: 1
lora:
  config: $ROOT/configs/student-lora.yaml
  set: [training.steps=12, training.warmup=2, training.global_batch=8, training.micro_batch=4, evaluation.every=12,
        evaluation.sequences=8, evaluation.exact_match=0, checkpoint.every=12]
  learning_rates: [0.003, 0.01]
  max_extensions: 1
seeds: [1, 2, 3]
evaluation_sequences: 16
plasticity_sequences: 16
micro_batch: 4
permutations: 200
YAML
if local_mpirun 2 "$SUBSPACE" heads study --config "$WORK/heads.yaml" > "$WORK/study.log" 2>&1; then
    for f in heads.csv heads.jsonl stats.json report.md report.html; do
        expect "study wrote $f" test -s "$WORK/study/$f"
    done
    expect "report.html holds SVG figures" grep -q "<svg" "$WORK/study/report.html"
    expect "stats.json has Spearman and top-K entries for 3 seeds; I_pre vs P (the base alone) once, with one p-value" python3 -c "
import json, sys
s = json.load(open('$WORK/study/stats.json'))
whats = {a['what'] for a in s['aggregates']}
ok = len(s['seeds']) == 3 and 'spearman' in whats and any('overlap' in w for w in whats)
base = [a for a in s['aggregates'] if a['method'] == 'base']
ok = ok and all(len(a['pValues']) == 3 for a in s['aggregates'] if a['method'] != 'base')
ok = ok and {(a['x'], a['y']) for a in base} == {('I_pre', 'P')} and len(base) == 4 and all(len(a['pValues']) == 1 for a in base)
ok = ok and not any({p['x'], p['y']} == {'I_pre', 'P'} for seed in s['seeds'] for p in seed['pairs'])
ok = ok and all(e['kind'] == 'important but static' for seed in s['seeds'] for m in seed['counterExamples'].values() for e in m)
ok = ok and all(e['kind'] == 'plastic but unimportant' and 'updateRelative' not in e for e in s['baseCounterExamples'])
sys.exit(0 if ok else 1)"
    expect "each method's LR sweep: ≥ 2 rates on the first seed, the chosen rate over 3 seeds, its runs measured" python3 -c "
import json, sys
r = json.load(open('$WORK/study/results.json'))
sw = r['sweeps']
ok = [s['method'] for s in sw] == ['fft', 'lora']
for s in sw:
    chosen = [p for p in s['points'] if p['learningRate'] == s['bestLearningRate']]
    ok = ok and len(s['points']) >= 2 and all(1 in p['seeds'] for p in s['points']) and len(chosen) == 1
    ok = ok and sorted(chosen[0]['seeds']) == [1, 2, 3] and [x['seed'] for x in s['seedRuns']] == [1, 2, 3]
    ok = ok and isinstance(s['bracketed'], bool) and (s['bracketed'] or 'not bracketed' in s['note'])
sys.exit(0 if ok else 1)"
    expect "report.md has the sweep table and finding.json a line" \
        bash -c "grep -q 'Learning-rate sweeps' '$WORK/study/report.md' && grep -q 'swept rate' '$WORK/study/finding.json'"
    expect "heads.csv has 2 methods × 3 seeds × 8 heads" test "$(($(wc -l < "$WORK/study/heads.csv") - 1))" -eq 48
    # Same trained models, measured again at np = 1: identical tables and statistics.
    mkdir -p "$WORK/np2" && cp "$WORK/study/heads.csv" "$WORK/study/stats.json" "$WORK/np2/"
    if local_mpirun 1 "$SUBSPACE" heads study --config "$WORK/heads.yaml" > "$WORK/study1.log" 2>&1; then
        expect "np=1 skipped the training runs" grep -q "done earlier" "$WORK/study1.log"
        expect "np=1 and np=2 give identical per-head tables" cmp -s "$WORK/np2/heads.csv" "$WORK/study/heads.csv"
        expect "np=1 and np=2 give identical statistics" cmp -s "$WORK/np2/stats.json" "$WORK/study/stats.json"
    else
        fail "study re-measured at np=1"; tail -5 "$WORK/study1.log"
    fi
else
    fail "heads study at np=2"; tail -15 "$WORK/study.log"
fi
finish
