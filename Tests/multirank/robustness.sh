#!/usr/bin/env bash
# Multi-rank robustness tests (issue 13), run by launch/test after the release build: a rank frozen with
# SIGSTOP ends the job within the watchdog's limit naming it (train, and the Q/K study); evaluation with
# uneven splits and exact-match generation at ZeRO 0–3 and np = 2, 3; a NaN gradient injected at a chosen
# step stops the run before the update with the checkpoints untouched. Last line: "N passed, N failed".
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_corpus
"$SUBSPACE" data sft --output "$WORK/sft" --seed 1 --train 64 --test 16 >/dev/null || fail "sft data"

TINY=(--set model.layers=2 --set model.width=32 --set model.heads=4 --set model.context=64 --set data.sequence=64
      --set training.global_batch=6 --set training.micro_batch=1 --set training.warmup=1)

# The pid of world rank $2 among mpirun $1's processes.
rank_pid() {
    local p
    for p in $(pgrep -d ' ' -f "$SUBSPACE"); do
        if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then
            [ "$(ps -o ppid= -p $p | tr -d ' ')" = "$1" ] && { echo $p; return; }
        fi
    done
}

# hang NAME LOG READY_FILE PATTERN -- COMMAND…: starts COMMAND, waits for PATTERN in READY_FILE, freezes
# world rank 2 with SIGSTOP and checks that the job ends within the 5 s watchdog + 10 s, naming rank 2.
hang() {
    local name="$1" log="$2" file="$3" ready="$4"; shift 5
    "$@" > "$log" 2>&1 &
    local job=$!
    local mpirun_pid="" victim="" i
    for i in $(seq 600); do
        mpirun_pid=$(pgrep -P $job -x mpirun || true); [ -n "$mpirun_pid" ] || mpirun_pid=$job
        grep -q "$ready" "$file" 2>/dev/null && victim=$(rank_pid "$mpirun_pid" 2) && [ -n "$victim" ] && break
        sleep 0.1
    done
    if [ -z "$victim" ]; then fail "$name: rank 2 never got going"; tail -5 "$log"; kill $job 2>/dev/null; wait $job; return; fi
    kill -STOP "$victim"
    local stopped=$(date +%s.%N)
    for i in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
    local took=$(python3 -c "import time; print(f'{time.time() - $stopped:.1f}')")
    if kill -0 $job 2>/dev/null; then
        fail "$name: still running 30 s after SIGSTOP"; kill -CONT "$victim"; kill -9 "$victim" $job 2>/dev/null
    else
        wait $job; local status=$?
        expect "$name: job ended (status $status) ${took} s after SIGSTOP, within 5 + 10 s" \
            python3 -c "import sys; sys.exit(0 if $status != 0 and $took <= 15 else 1)"
        expect "$name: the watchdog names rank 2 as silent" grep -qE "ranks silent for over [0-9.]+ s \\([^)]*\\): 2 \\(last heard [0-9]+ s ago, when it had entered #[0-9]+\\)" "$log" \
            || { tail -5 "$log"; }
    fi
    kill -CONT "$victim" 2>/dev/null; kill -9 "$victim" 2>/dev/null
    grep -m2 "watchdog:" "$log"
}

hang "train np=3, rank 2 stopped" "$WORK/hang-train.log" "$WORK/hang-train/metrics.jsonl" '"step":2' -- \
    local_mpirun 3 "$SUBSPACE" train --config "$ROOT/configs/base.yaml" "${TINY[@]}" --set data.path="$WORK/corpus" \
        --set training.steps=100000 --set faults.watchdog_seconds=5 --set evaluation.every=0 --set checkpoint.every=0 \
        --set run.output="$WORK/hang-train"
# The study: three groups of one rank each; ranks 0 and 1 finish theirs and wait for rank 2 at the gather.
hang "qk-freeze np=3, rank 2 stopped" "$WORK/hang-qk.log" "$WORK/hang-qk.log" "ortho-frozen seed 1\] started" -- \
    local_mpirun 3 "$SUBSPACE" qk-freeze --config "$ROOT/configs/qk-freeze.yaml" "${TINY[@]}" --set data.path="$WORK/corpus" \
        --set training.steps=3 --set faults.watchdog_seconds=5 --set evaluation.every=0 --set study.export_final=false \
        --set run.output="$WORK/hang-qk"

# Uneven evaluation (5 sequences over 2 or 3 ranks) and exact match on 5 examples of different lengths, at
# every ZeRO stage: every run finishes and reports the same validation loss (the same model at every np).
for np in 2 3; do
    for stage in 0 1 2 3; do
        out="$WORK/eval-np$np-z$stage"
        timeout 120 bash -c "$(declare -f local_mpirun); local_mpirun $np '$SUBSPACE' train --config '$ROOT/configs/base.yaml' \
            ${TINY[*]} --set data.kind=sft --set data.path='$WORK/sft' --set training.steps=2 --set training.zero_stage=$stage \
            --set evaluation.every=1 --set evaluation.sequences=5 --set evaluation.exact_match=5 --set evaluation.max_new_tokens=6 \
            --set checkpoint.every=0 --set run.output='$out'" > "$out.log" 2>&1
        status=$?
        if [ $status -eq 0 ]; then
            expect "np=$np ZeRO-$stage uneven evaluation and exact match finish" grep -q '"exact_match"' "$out/metrics.jsonl"
        else
            fail "np=$np ZeRO-$stage uneven evaluation (status $status$([ $status -eq 124 ] && echo ': hung'))"; tail -3 "$out.log"
        fi
    done
done
expect "validation loss the same at np=2, 3 and every stage (1e-5)" python3 - "$WORK" <<'EOF'
import json, sys, glob
values = {}
for path in sorted(glob.glob(sys.argv[1] + "/eval-np*/metrics.jsonl")):
    lines = [json.loads(l) for l in open(path) if '"val_loss"' in l]
    values[path.split("/")[-2]] = [(l["val_loss"], l["exact_match"]) for l in lines]
ref = values.get("eval-np2-z0")
ok = ref is not None and len(values) == 8 and all(
    len(v) == len(ref) and all(abs(a[0] - b[0]) <= 1e-5 * max(1, abs(b[0])) and a[1] == b[1] for a, b in zip(v, ref))
    for v in values.values())
print(values if not ok else f"val_loss/exact_match {ref}")
sys.exit(0 if ok else 1)
EOF

# A NaN gradient at step 4 (injected on the last rank) stops the run before the update, naming the step;
# the step-3 checkpoint is untouched and nothing later is written.
for stage in 0 3; do
    out="$WORK/nan-z$stage"
    timeout 120 bash -c "$(declare -f local_mpirun); local_mpirun 2 -x SUBSPACE_FAULT_NAN_STEP=4 '$SUBSPACE' train --config '$ROOT/configs/base.yaml' \
        ${TINY[*]} --set data.path='$WORK/corpus' --set training.steps=6 --set training.zero_stage=$stage \
        --set evaluation.every=0 --set checkpoint.every=3 --set run.output='$out'" > "$out.log" 2>&1
    status=$?
    expect "ZeRO-$stage NaN at step 4: run fails (status $status)" test $status -ne 0 -a $status -ne 124
    expect "ZeRO-$stage NaN at step 4: the message names step 4 and the gradient norm" grep -q "step 4: the gradient norm" "$out.log"
    expect "ZeRO-$stage NaN at step 4: step-3 checkpoint kept, no later one, metrics end at step 3" python3 - "$out" <<'EOF'
import json, os, sys
out = sys.argv[1]
ckpts = sorted(os.listdir(out + "/checkpoints"))
steps = [json.loads(l)["step"] for l in open(out + "/metrics.jsonl") if '"loss"' in l]
manifest = json.load(open(out + "/checkpoints/step-00000003/manifest.json"))
sys.exit(0 if ckpts == ["step-00000003"] and steps == [1, 2, 3] and manifest["step"] == 3 else 1)
EOF
done

finish
