#!/usr/bin/env bash
# Multi-rank training tests, run by launch/test after the release build. Each check prints PASS or FAIL;
# the last line is "N passed, N failed". Uses small models and a few steps so the whole file runs in a
# few minutes on 2 cores.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_corpus
"$SUBSPACE" data sft --output "$WORK/sft" --seed 1 --train 256 --test 32 >/dev/null || fail "sft data"

COMMON=(--set data.path="$WORK/corpus" --set model.layers=2 --set model.width=32 --set model.heads=4 --set model.context=32
        --set data.sequence=32 --set training.global_batch=8 --set training.micro_batch=2 --set training.steps=6
        --set training.warmup=2 --set evaluation.every=3 --set evaluation.sequences=8 --set checkpoint.every=3 --set checkpoint.keep=5)
train() { local np="$1" out="$2"; shift 2; local_mpirun "$np" "$SUBSPACE" train --config "$ROOT/configs/base.yaml" "${COMMON[@]}" --set run.output="$out" "$@" > "$out.log" 2>&1; }

# np=1 and np=2 give the same per-step losses for every ZeRO stage.
train 1 "$WORK/np1" --set training.zero_stage=0 || fail "np=1 run"
expect "loss decreases" $CHECK decreasing "$WORK/np1"
for stage in 0 1 2 3; do
    if train 2 "$WORK/np2-z$stage" --set training.zero_stage=$stage; then
        expect "np=2 ZeRO-$stage matches np=1 (1e-5)" $CHECK same_losses "$WORK/np2-z$stage" "$WORK/np1" 1e-5
    else
        fail "np=2 ZeRO-$stage run"; tail -5 "$WORK/np2-z$stage.log"
    fi
done

# Activation checkpointing recomputes layers in backward: the same losses bit for bit (np=1, and np=2
# under ZeRO-3, whose residency gathers each block again for the recomputation).
train 1 "$WORK/np1-ckpt" --set training.zero_stage=0 --set training.activation_checkpointing=layers \
    && expect "activation checkpointing np=1: same losses (bit-exact)" $CHECK same_losses "$WORK/np1-ckpt" "$WORK/np1" 0 \
    || { fail "checkpointing np=1 run"; tail -5 "$WORK/np1-ckpt.log"; }
train 2 "$WORK/np2-z3-ckpt" --set training.zero_stage=3 --set training.activation_checkpointing=layers \
    && expect "activation checkpointing np=2 ZeRO-3: same losses (bit-exact)" $CHECK same_losses "$WORK/np2-z3-ckpt" "$WORK/np2-z3" 0 \
    || { fail "checkpointing np=2 ZeRO-3 run"; tail -5 "$WORK/np2-z3-ckpt.log"; }

# Resume bit-exact at the same world size: restart run np2-z1 from its step-3 checkpoint.
train 2 "$WORK/resume" --set training.zero_stage=1 --set checkpoint.resume="$WORK/np2-z1/checkpoints/step-00000003" \
    && expect "resume at np=2 is bit-exact" $CHECK same_losses "$WORK/resume" "$WORK/np2-z1" 0 4 \
    || { fail "resume run"; tail -5 "$WORK/resume.log"; }
# Reshard: the np=2 ZeRO-3 checkpoint continued at np=1 ZeRO-0 follows the same trajectory.
train 1 "$WORK/reshard" --set training.zero_stage=0 --set checkpoint.resume="$WORK/np2-z3/checkpoints/step-00000003" \
    && expect "np=2 ZeRO-3 → np=1 ZeRO-0 resume" $CHECK same_losses "$WORK/reshard" "$WORK/np2-z3" 1e-5 4 \
    || { fail "reshard run"; tail -5 "$WORK/reshard.log"; }

# Frozen tensors stay bit-identical and others change (full fine-tuning from the np1 model).
train 2 "$WORK/frozen" --set model.source=hf --set model.path="$WORK/np1/final" --set training.zero_stage=2 \
    --set "training.freeze=[layers.0.attn.q.weight, 'layers\.1\.mlp\..*']" \
    && expect "frozen tensors unchanged" $CHECK same_tensor "$WORK/np1/final/model.safetensors" "$WORK/frozen/final/model.safetensors" \
        transformer.h.1.mlp.c_fc.weight transformer.h.1.mlp.c_proj.bias \
    && expect "trainable tensors changed" $CHECK different_tensor "$WORK/np1/final/model.safetensors" "$WORK/frozen/final/model.safetensors" \
        transformer.h.0.attn.c_proj.weight transformer.wte.weight \
    || { fail "frozen run"; tail -5 "$WORK/frozen.log"; }

# The ΔW analysis at np=2 gives the same numbers as at np=1 (the frozen run's model against its base).
for np in 1 2; do
    local_mpirun $np "$SUBSPACE" delta-svd --base "$WORK/np1/final" --tuned "$WORK/frozen/final" --rank 4 --output "$WORK/dsvd-$np" > "$WORK/dsvd-$np.log" 2>&1 \
        || { fail "delta-svd np=$np"; tail -5 "$WORK/dsvd-$np.log"; }
done
expect "delta-svd np=2 equals np=1" $CHECK same_analysis "$WORK/dsvd-2" "$WORK/dsvd-1" 1e-5
expect "delta-svd factors written" test -s "$WORK/dsvd-2/factors.safetensors"

# LoRA on SFT data at np=2: trains, and the adapter folder loads back.
train 2 "$WORK/lora" --set model.source=hf --set model.path="$WORK/np1/final" --set data.kind=sft --set data.path="$WORK/sft" \
    --set 'lora={rank: 4, alpha: 8, targets: [c_attn, c_fc]}' --set evaluation.exact_match=4 \
    && expect "LoRA adapter written" test -f "$WORK/lora/final/adapter_model.safetensors" \
    || { fail "LoRA run"; tail -5 "$WORK/lora.log"; }

# A corrupted checkpoint is refused with the file named.
cp -r "$WORK/np2-z1" "$WORK/corrupt"
victim="$WORK/corrupt/checkpoints/step-00000003/rank-00001-of-00002.safetensors"
truncate -s -100 "$victim"
train 2 "$WORK/corrupt-run" --set checkpoint.resume="$WORK/corrupt/checkpoints/step-00000003"
status=$?
expect "truncated checkpoint refused" test $status -ne 0
expect "…naming the file" grep -q "rank-00001-of-00002.safetensors" "$WORK/corrupt-run.log"
cp "$WORK/np2-z1/checkpoints/step-00000003/rank-00001-of-00002.safetensors" "$victim"
printf '\x01' | dd of="$victim" bs=1 seek=200 conv=notrunc 2>/dev/null
train 2 "$WORK/corrupt-run2" --set checkpoint.resume="$WORK/corrupt/checkpoints/step-00000003"
expect "checksum mismatch refused" test $? -ne 0
expect "…naming the checksum" grep -q "checksum" "$WORK/corrupt-run2.log"

# Bad configs each name their key, fail fast, and no rank hangs.
bad() {
    local key="$1"; shift
    timeout 60 bash -c "$(declare -f local_mpirun); local_mpirun 2 '$SUBSPACE' train --config '$ROOT/configs/base.yaml' $* > '$WORK/bad.log' 2>&1"
    local status=$?
    if [ $status -ne 0 ] && [ $status -ne 124 ] && grep -q -- "$key" "$WORK/bad.log"; then pass "bad config: $key"; else fail "bad config: $key (status $status)"; cat "$WORK/bad.log" | tail -3; fi
}
bad "training.global_batch" --set training.global_batch=7 --set training.micro_batch=2 --set data.path="$WORK/corpus"
bad "training.zero_stage" --set training.zero_stage=5
bad "training.lerning_rate" --set training.lerning_rate=0.1
bad "data.path" --set data.path=/nonexistent/corpus
bad "model.heads" --set model.heads=5 --set data.path="$WORK/corpus"

# SIGTERM (a cluster's preemption, sent to the ranks as Slurm does) saves a checkpoint and exits cleanly.
local_mpirun 2 "$SUBSPACE" train --config "$ROOT/configs/base.yaml" "${COMMON[@]}" --set training.steps=100000 \
    --set checkpoint.every=0 --set evaluation.every=0 --set run.output="$WORK/preempted" > "$WORK/preempted.log" 2>&1 &
launcher=$!
for _ in $(seq 1 120); do grep -q "step 1/" "$WORK/preempted.log" 2>/dev/null && break; sleep 0.5; done
pkill -TERM -f "^$SUBSPACE train .*run.output=$WORK/preempted"
timeout 60 tail --pid=$launcher -f /dev/null
wait $launcher; status=$?
expect "SIGTERM: clean exit ($status)" test $status -eq 0
expect "SIGTERM: checkpoint saved" bash -c "ls '$WORK/preempted/checkpoints' | grep -q '^step-'"
expect "SIGTERM: reported" grep -q "stopped by SIGTERM" "$WORK/preempted.log"

# A killed rank ends the whole job with a non-zero status within 15 s.
local_mpirun 2 "$SUBSPACE" train --config "$ROOT/configs/base.yaml" "${COMMON[@]}" --set training.steps=100000 \
    --set checkpoint.every=0 --set evaluation.every=0 --set run.output="$WORK/killed" > "$WORK/killed.log" 2>&1 &
launcher=$!
for _ in $(seq 1 120); do grep -q "step 1/" "$WORK/killed.log" 2>/dev/null && break; sleep 0.5; done
victim_pid=$(pgrep -f "^$SUBSPACE train .*run.output=$WORK/killed" | tail -1)
start=$(date +%s.%N)
kill -9 "$victim_pid" 2>/dev/null
timeout 30 tail --pid=$launcher -f /dev/null
wait $launcher; status=$?
elapsed=$(python3 -c "import time; print(round(time.time() - $start, 1))")
expect "killed rank: non-zero exit ($status)" test $status -ne 0
expect "killed rank: job ended in ${elapsed}s (< 15 s)" python3 -c "import sys; sys.exit(0 if $elapsed < 15 else 1)"

finish
