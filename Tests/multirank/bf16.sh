#!/usr/bin/env bash
# bf16 precision under mpirun (issue 14): np=2 training in bf16 equals np=1 in bf16 per step (ZeRO 0 and
# 3: replicated weights converted once per optimizer step, and blocks gathered and converted at acquire),
# and bf16 is not fp32 in disguise. On a CPU without AVX-512 BF16 / AMX, bf16 is first shown to be
# refused naming the key, then the runs use the emulated products (SUBSPACE_BF16_EMULATE=1: the same bf16
# roundings through fp32 GEMMs), so the plumbing is tested on any machine.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_corpus

COMMON=(--set data.path="$WORK/corpus" --set model.layers=2 --set model.width=32 --set model.heads=4 --set model.context=32
        --set data.sequence=32 --set training.global_batch=8 --set training.micro_batch=2 --set training.steps=5
        --set training.warmup=2 --set evaluation.every=0 --set evaluation.sequences=8 --set checkpoint.every=0)
train() { local np="$1" out="$2"; shift 2; local_mpirun "$np" "$SUBSPACE" train --config "$ROOT/configs/base.yaml" "${COMMON[@]}" --set run.output="$out" "$@" > "$out.log" 2>&1; }

train 1 "$WORK/probe" --set training.precision=bf16
if [ $? -ne 0 ]; then
    expect "bf16 refused without AVX-512 BF16, naming the key" grep -q "training.precision: bf16.*AVX-512 BF16" "$WORK/probe.log"
    expect "…and nothing written" test ! -e "$WORK/probe/metrics.jsonl"
    export SUBSPACE_BF16_EMULATE=1
    echo "# this CPU has no bf16 instructions: the runs below use SUBSPACE_BF16_EMULATE=1"
fi

train 1 "$WORK/fp32" || { fail "np=1 fp32 run"; tail -5 "$WORK/fp32.log"; }
train 1 "$WORK/np1" --set training.precision=bf16 || { fail "np=1 bf16 run"; tail -5 "$WORK/np1.log"; }
expect "bf16 losses near fp32's (1e-2)" $CHECK same_losses "$WORK/np1" "$WORK/fp32" 1e-2
expect "bf16 losses are not fp32's" python3 -c "
import json, sys
a = [json.loads(l)['loss'] for l in open('$WORK/np1/metrics.jsonl') if '\"loss\"' in l]
b = [json.loads(l)['loss'] for l in open('$WORK/fp32/metrics.jsonl') if '\"loss\"' in l]
sys.exit(0 if a and a != b else 1)"
# The precision is part of the run's lineage: resuming the fp32 run in bf16 is refused naming the key and
# both values, and nothing in the folder changes.
sum() { find "$1" -type f ! -name .lock ! -path "*/.watchdog/*" -print0 2>/dev/null | sort -z | xargs -0 sha256sum 2>/dev/null | sha256sum; }
before=$(sum "$WORK/fp32")
train 1 "$WORK/fp32" --set training.precision=bf16 --set training.steps=6; status=$?
expect "resuming an fp32 run in bf16 refused (non-zero exit)" test "$status" -ne 0
expect "…naming training.precision: fp32 → bf16" grep -q "another lineage: training.precision: fp32 → bf16" "$WORK/fp32.log"
expect "…and nothing in the run folder changed" test "$before" = "$(sum "$WORK/fp32")"
for stage in 0 3; do
    if train 2 "$WORK/np2-z$stage" --set training.precision=bf16 --set training.zero_stage=$stage; then
        expect "bf16 np=2 ZeRO-$stage matches np=1 (1e-5)" $CHECK same_losses "$WORK/np2-z$stage" "$WORK/np1" 1e-5
    else
        fail "bf16 np=2 ZeRO-$stage run"; tail -5 "$WORK/np2-z$stage.log"
    fi
done
finish
