#!/usr/bin/env bash
# Run folders, outputs and messages a user can trust (issue 17), run by launch/test after the release
# build. One check per row of the issue: saved work is never damaged or silently mixed, sizes are checked
# before they are allocated, and every message names what is at fault. Tiny models and a few steps.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_corpus
"$SUBSPACE" data sft --output "$WORK/sft" --seed 1 --train 128 --test 16 >/dev/null || fail "sft data"

COMMON=(--set data.path="$WORK/corpus" --set model.layers=1 --set model.width=16 --set model.heads=2 --set model.context=32
        --set data.sequence=32 --set training.global_batch=4 --set training.micro_batch=2 --set training.steps=4 --set training.warmup=0
        --set evaluation.every=0 --set evaluation.sequences=4 --set checkpoint.every=2 --set checkpoint.keep=5)
# local_mpirun under a time limit, so a hung rank fails the check instead of the whole script.
mpi() { local np="$1"; shift
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader \
        OMPI_MCA_rmaps_base_oversubscribe=1 timeout 120 mpirun --bind-to none --oversubscribe -np "$np" "$@"; }
train() { local np="$1" out="$2"; shift 2
    mpi "$np" "$SUBSPACE" train --config "$ROOT/configs/base.yaml" "${COMMON[@]}" --set run.output="$out" "$@" > "$out.log" 2>&1; }
# A failure that names `$1` (grep -E) in the log `$2`, without a crash or a Foundation error dump.
named() { grep -qE -- "$1" "$2" && ! grep -qE "Fatal error|NSCocoaErrorDomain|Error Domain|backtrace|SIGABRT|Stack dump" "$2"; }
refused() { local name="$1" status="$2" pattern="$3" log="$4"
    if [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && named "$pattern" "$log"; then pass "$name"; else fail "$name (status $status)"; tail -4 "$log"; fi; }
# Checksum of a run folder's content (not the lock, nor the watchdog's per-job sequence files).
sum() { find "$1" -type f ! -name .lock ! -path "*/.watchdog/*" -print0 2>/dev/null | sort -z | xargs -0 sha256sum 2>/dev/null | sha256sum; }

# --- 1. The run folder is a unit ------------------------------------------------------------------------
train 2 "$WORK/a" || { fail "first run"; tail -5 "$WORK/a.log"; }
expect "lineage.json written" test -s "$WORK/a/lineage.json"

# A second run on a folder whose lock is held is refused at once, naming the holder.
python3 -c "
import fcntl, os, socket, sys, time
f = open('$WORK/a/.lock', 'w'); fcntl.flock(f, fcntl.LOCK_EX)
f.write(f'pid {os.getpid()} on host {socket.gethostname()}'); f.flush()
open('$WORK/held', 'w').close(); time.sleep(60)" &
holder=$!
for _ in $(seq 1 50); do [ -e "$WORK/held" ] && break; sleep 0.1; done
before=$(sum "$WORK/a")
train 2 "$WORK/a" --set training.steps=6; status=$?
refused "locked folder refused, naming the holder's pid" $status "in use by another run \(pid $holder on host" "$WORK/a.log"
expect "…and nothing in it changed" test "$before" = "$(sum "$WORK/a")"
kill $holder; wait $holder 2>/dev/null
# A lock left by a process that is gone is recognised as stale and taken over.
echo "pid 999999 on host $(hostname) since 2026-01-01T00:00:00Z" > "$WORK/a/.lock"
train 1 "$WORK/a" --set training.steps=6 && expect "stale lock taken over and said so" grep -q "stale lock (pid 999999" "$WORK/a.log" \
    || { fail "run after a stale lock"; tail -3 "$WORK/a.log"; }

# resume: never into a folder holding a run is refused, and the run is untouched.
before=$(sum "$WORK/a")
train 2 "$WORK/a" --set checkpoint.resume=never; status=$?
refused "resume never over an earlier run refused" $status "checkpoint.resume: .*holds an earlier run \(final/" "$WORK/a.log"
expect "…final/, checkpoints, metrics and config.resolved.yaml untouched" test "$before" = "$(sum "$WORK/a")"

# A changed trajectory setting is a different lineage: refused with both values, unless asked for.
train 2 "$WORK/a" --set training.steps=8 --set training.learning_rate=0.01; status=$?
refused "resume of another lineage refused, naming both" $status "training.optimizer: lr 0.001 .* → lr 0.01" "$WORK/a.log"
expect "…config.resolved.yaml not rewritten" test "$before" = "$(sum "$WORK/a")"
train 2 "$WORK/a" --set training.steps=8 --set training.learning_rate=0.01 --set checkpoint.allow_other_lineage=true \
    && expect "allow_other_lineage resumes it" grep -q "resumed from .*step-00000006 at step 6" "$WORK/a.log" \
    || { fail "allow_other_lineage run"; tail -3 "$WORK/a.log"; }

# A shape changed against the checkpoint fails before anything is written.
cp -r "$WORK/a" "$WORK/b"; rm -f "$WORK/b/lineage.json"; before=$(sum "$WORK/b")
train 2 "$WORK/b" --set training.steps=8 --set training.learning_rate=0.01 --set model.width=32 --set model.heads=2; status=$?
refused "changed width refused" $status "width|shape" "$WORK/b.log"
expect "…config.resolved.yaml not rewritten" test "$before" = "$(sum "$WORK/b")"

# A checkpoint beyond training.steps is reported, not silently finished.
rm -rf "$WORK/b/final"; before=$(sum "$WORK/b")
train 2 "$WORK/b" --set training.steps=2 --set training.learning_rate=0.01; status=$?
refused "checkpoint beyond training.steps reported" $status "training.steps: 2 is less than the step 8" "$WORK/b.log"
expect "…config.resolved.yaml still says 8 steps" grep -q "steps: 8" "$WORK/b/config.resolved.yaml"

# SFT teacher whose run.output holds the pre-training run and whose model.path is that run's final/.
before=$(sum "$WORK/a")
train 2 "$WORK/a" --set model.source=hf --set model.path="$WORK/a/final" --set data.kind=sft --set data.path="$WORK/sft"; status=$?
refused "model.path inside run.output refused" $status "model.path: .*lies inside run.output" "$WORK/a.log"
cp -r "$WORK/a/final" "$WORK/a-final"
train 2 "$WORK/a" --set model.source=hf --set model.path="$WORK/a-final" --set data.kind=sft --set data.path="$WORK/sft"; status=$?
refused "SFT over a pre-training folder refused (lineage)" $status "lineage: .*data: corpus .* → sft" "$WORK/a.log"
expect "…the pre-training run untouched" test "$before" = "$(sum "$WORK/a")"

# forward never writes over its inputs.
python3 - "$WORK/ids.safetensors" <<'EOF'
import json, struct, sys
ids = [1, 2, 3, 4]
header = json.dumps({"input_ids": {"dtype": "I64", "shape": [1, 4], "data_offsets": [0, 32]}}).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(header)) + header + struct.pack("<4q", *ids))
EOF
cp "$WORK/ids.safetensors" "$WORK/ids.orig"; cp "$WORK/a-final/model.safetensors" "$WORK/model.orig"
"$SUBSPACE" forward --model "$WORK/a-final" --input "$WORK/ids.safetensors" --output "$WORK/ids.safetensors" > "$WORK/fwd.log" 2>&1
refused "forward --output = --input refused" $? "--output .* is the --input" "$WORK/fwd.log"
"$SUBSPACE" forward --model "$WORK/a-final" --input "$WORK/ids.safetensors" --output "$WORK/a-final/model.safetensors" > "$WORK/fwd.log" 2>&1
refused "forward --output inside --model refused" $? "inside the --model folder" "$WORK/fwd.log"
expect "…input and weights intact" bash -c "cmp -s '$WORK/ids.safetensors' '$WORK/ids.orig' && cmp -s '$WORK/a-final/model.safetensors' '$WORK/model.orig'"

# data commands do not replace a user's files.
mkdir -p "$WORK/mine"; echo "my notes" > "$WORK/mine/train.jsonl"; echo keep > "$WORK/mine/notes.txt"
"$SUBSPACE" data sft --output "$WORK/mine" --train 8 --test 2 > "$WORK/data.log" 2>&1
refused "data sft into a folder of the user's files refused" $? "did not write \(notes.txt\)" "$WORK/data.log"
"$SUBSPACE" data corpus --input "$WORK/text" --output "$WORK/mine" > "$WORK/data.log" 2>&1
refused "data corpus into a folder of the user's files refused" $? "did not write \(notes.txt, train.jsonl\)" "$WORK/data.log"
expect "…the user's files intact" grep -q "my notes" "$WORK/mine/train.jsonl"
"$SUBSPACE" data sft --output "$WORK/sft" --seed 1 --train 128 --test 16 > "$WORK/data.log" 2>&1
expect "data sft over its own earlier output still works" test $? -eq 0

# LoRA on a fresh base saves the base, so the adapter can be used.
train 2 "$WORK/lora-new" --set lora.rank=2 \
    && expect "LoRA on model.source new: base saved beside the adapter" test -s "$WORK/lora-new/final/base/model.safetensors" \
    && expect "…and named in adapter_config.json" python3 -c "import json, sys; sys.exit(json.load(open('$WORK/lora-new/final/adapter_config.json'))['base_model_name_or_path'] != '$WORK/lora-new/final/base')" \
    && expect "…and forward runs base + adapter" "$SUBSPACE" forward --model "$WORK/lora-new/final/base" --adapter "$WORK/lora-new/final" \
        --input "$WORK/ids.safetensors" --output "$WORK/lora-out.safetensors" \
    || { fail "LoRA on a new base"; tail -3 "$WORK/lora-new.log"; }

# --- 2. Sizes are checked before they are allocated ----------------------------------------------------
train 2 "$WORK/huge-vocab" --set model.vocab=100000000; status=$?
refused "model.vocab 1e8 at np=2: error naming the key and the bytes" $status "model.vocab: the run needs about .* bytes" "$WORK/huge-vocab.log"
expect "…nothing written" test ! -e "$WORK/huge-vocab/config.resolved.yaml"
train 1 "$WORK/huge-layers" --set model.layers=1000 --set model.width=4096 --set model.heads=32; status=$?
refused "1000 layers × 4096: error naming model.width and layers" $status "model.width: .*model.layers 1000 × model.width 4096" "$WORK/huge-layers.log"
train 2 "$WORK/huge-context" --set model.context=10000000 --set data.sequence=10000000; status=$?
refused "context 1e7 at np=2: error naming data.sequence" $status "data.sequence: the run needs about" "$WORK/huge-context.log"
"$SUBSPACE" bench train --width 100000 --heads 8 > "$WORK/bench.log" 2>&1
refused "bench train --width 100000 refused" $? "more than the .* of memory .*--width 100000" "$WORK/bench.log"
"$SUBSPACE" bench train --context 10000000 > "$WORK/bench.log" 2>&1
refused "bench train --context 1e7 refused" $? "--context 10000000" "$WORK/bench.log"
mpi 2 "$SUBSPACE" bench allreduce --sizes 100G > "$WORK/bench.log" 2>&1
refused "bench allreduce --sizes 100G refused" $? "--sizes 100G: the largest size needs" "$WORK/bench.log"
# A refusal under a launcher (OMPI_COMM_WORLD_SIZE set) waits until its pipe has been read before the
# process ends, so mpirun cannot tear the job down with the reason still unread (LauncherOutput); without
# a launcher it ends at once. The reader starts after 0.7 s; the wait is at most 2 s.
launcher_output() { python3 - "$SUBSPACE" "$1" <<'PY'
import os, subprocess, sys, time
binary, launcher = sys.argv[1], sys.argv[2] == "launcher"
env = dict(os.environ, OMPI_COMM_WORLD_SIZE="1") if launcher else {k: v for k, v in os.environ.items()
      if k not in ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK")}
p = subprocess.Popen([binary, "data", "sft", "--seed", "x"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
if launcher:
    time.sleep(0.7)
    alive = p.poll() is None
else:
    try: p.wait(timeout=1.5); alive = False
    except subprocess.TimeoutExpired: alive = True
message = p.stderr.read().decode()
code = p.wait(timeout=10)
ok = alive == launcher and code == 64 and "The value 'x' is invalid for '--seed" in message
print(f"launcher={launcher} alive={alive} status={code} message={message[:60]!r}") if not ok else None
sys.exit(0 if ok else 1)
PY
}
expect "a refusal under a launcher waits until its message is read" launcher_output launcher
expect "…without a launcher it ends without waiting" launcher_output none
start=$(date +%s.%N)
timeout 60 "$SUBSPACE" bench gemm --sizes 1 --seconds 0.05 > "$WORK/bench.log" 2>&1
expect "bench gemm --sizes 1 --seconds 0.05 ends within 5 s" python3 -c "import time, sys; sys.exit(0 if time.time() - $start < 5 else 1)"
"$SUBSPACE" bench gemm --seconds inf > "$WORK/bench.log" 2>&1
refused "bench gemm --seconds inf refused" $? "--seconds must be a number in \(0, 600\]" "$WORK/bench.log"

# Edited checkpoint manifests are refused, naming the field.
manifest_edit() { local field="$1" value="$2"; rm -rf "$WORK/edit"; cp -r "$WORK/b" "$WORK/edit"; rm -rf "$WORK/edit/final"
    python3 -c "
import json, sys; p = '$WORK/edit/checkpoints/step-00000008/manifest.json'; m = json.load(open(p)); m['$field'] = $value; json.dump(m, open(p, 'w'))"; }
manifest_edit step -5
train 2 "$WORK/edit" --set training.steps=10 --set training.learning_rate=0.01; status=$?
refused "manifest step -5 refused" $status "has step -5; a step is ≥ 0" "$WORK/edit.log"
manifest_edit world_size 3
train 2 "$WORK/edit" --set training.steps=10 --set training.learning_rate=0.01; status=$?
refused "manifest world_size edited: refused" $status "world_size 3 means rank-00000-of-00003" "$WORK/edit.log"
manifest_edit zero_stage 7
train 2 "$WORK/edit" --set training.steps=10 --set training.learning_rate=0.01; status=$?
refused "manifest zero_stage 7 refused" $status "zero_stage 7; it is 0, 1, 2 or 3" "$WORK/edit.log"

# --- 3. Every message names the thing at fault ------------------------------------------------------------
: > "$WORK/afile"
train 1 "$WORK/afile"; status=$?
refused "run.output a file: named, no NSError dump" $status "run.output: .*afile is a file, not a folder" "$WORK/afile.log"
mpi 1 "$SUBSPACE" train --config "$ROOT/configs/base.yaml" "${COMMON[@]}" --set run.output="/proc/subspace-safety-$$" > "$WORK/proc.log" 2>&1
refused "run.output under /proc: named, no NSError dump" $? "run.output: cannot create the folder /proc/subspace-safety" "$WORK/proc.log"
mkdir -p "$WORK/home"
( cd "$WORK" && HOME="$WORK/home" train 1 "$WORK/tilde-run" --set 'run.output=~/tilde' ) \
    && expect "run.output ~/… expanded to the home folder" test -d "$WORK/home/tilde/final" \
    && expect "…and no folder named ~ made" test ! -e "$WORK/~" \
    || { fail "run.output ~/…"; tail -3 "$WORK/tilde-run.log"; }
"$SUBSPACE" train --config "$WORK" > "$WORK/cfg.log" 2>&1
refused "--config a folder: named" $? "$WORK: is a folder; --config takes a YAML file" "$WORK/cfg.log"
train 1 "$WORK/bpe-on-bytes" --set data.tokenizer="$FIX/bpe-tokenizer/tokenizer.json" --set model.vocab=50257; status=$?
refused "BPE data.tokenizer on a bytes corpus refused" $status "data.tokenizer: is .*tokenizer.json, but the corpus at data.path was tokenized with bytes" "$WORK/bpe-on-bytes.log"

# delta-svd: the rank against the modules, NaN weights by tensor, the output before the SVDs, negative numbers
# (the "tuned" model: the fresh base the LoRA run saved, of the same shapes).
OTHER="$WORK/lora-new/final/base"
mpi 2 "$SUBSPACE" delta-svd --base "$WORK/a-final" --tuned "$OTHER" --rank 100000 --output "$WORK/dsvd" > "$WORK/dsvd.log" 2>&1
refused "delta-svd --rank 100000 on 16-wide modules refused" $? "rank 100000 is more than min\(out, in\) = 16 .* the rank can be at most 16" "$WORK/dsvd.log"
expect "…before any SVD or file" bash -c "! grep -q 'svd ' '$WORK/dsvd.log' && test ! -e '$WORK/dsvd/factors.safetensors'"
"$SUBSPACE" delta-svd --base "$WORK/a-final" --tuned "$OTHER" --rank -1 --output "$WORK/dsvd" > "$WORK/dsvd.log" 2>&1
refused "delta-svd --rank -1: must be ≥ 1" $? "rank must be ≥ 1, got -1" "$WORK/dsvd.log"
mpi 2 "$SUBSPACE" delta-svd --base "$WORK/a-final" --tuned "$OTHER" --rank 4 --output /proc/subspace-dsvd > "$WORK/dsvd.log" 2>&1
refused "delta-svd unwritable --output fails before the SVDs" $? "/proc/subspace-dsvd: --output: cannot create the folder" "$WORK/dsvd.log"
expect "…having computed none" bash -c "! grep -q 'svd ' '$WORK/dsvd.log'"
cp -r "$OTHER" "$WORK/nan-final"
python3 - "$WORK/nan-final/model.safetensors" <<'PY'
import json, struct, sys
p = sys.argv[1]; data = bytearray(open(p, "rb").read()); n = struct.unpack("<Q", data[:8])[0]
e = json.loads(data[8:8 + n])["transformer.h.0.mlp.c_fc.weight"]
struct.pack_into("<f", data, 8 + n + e["data_offsets"][0] + 4 * 5, float("nan")); open(p, "wb").write(data)
PY
mpi 2 "$SUBSPACE" delta-svd --base "$WORK/a-final" --tuned "$WORK/nan-final" --rank 4 --output "$WORK/dsvd-nan" > "$WORK/dsvd.log" 2>&1
refused "delta-svd NaN weight named by tensor, not LAPACK" $? "tensor 'transformer.h.0.mlp.c_fc.*tuned model's weight holds nan" "$WORK/dsvd.log"

# compare: an analysis of other models is refused; the right one is accepted.
train 2 "$WORK/teach" --set model.source=hf --set model.path="$WORK/a-final" --set data.kind=sft --set data.path="$WORK/sft" \
    --set evaluation.exact_match=0 || { fail "teacher run"; tail -3 "$WORK/teach.log"; }
train 2 "$WORK/stud" --set model.source=hf --set model.path="$WORK/a-final" --set data.kind=sft --set data.path="$WORK/sft" \
    --set evaluation.exact_match=0 --set lora.rank=2 || { fail "student run"; tail -3 "$WORK/stud.log"; }
mpi 1 "$SUBSPACE" delta-svd --base "$WORK/a-final" --tuned "$OTHER" --rank 2 --output "$WORK/dsvd-other" > /dev/null 2>&1
mpi 1 "$SUBSPACE" delta-svd --base "$WORK/a-final" --tuned "$WORK/teach/final" --rank 2 --output "$WORK/dsvd-teach" > /dev/null 2>&1
mpi 1 "$SUBSPACE" compare --base "$WORK/a-final" --teacher "$WORK/teach" --student "s=$WORK/stud" --analysis "$WORK/dsvd-other" \
    --output "$WORK/cmp" > "$WORK/cmp.log" 2>&1
refused "compare --analysis of other models refused" $? "--analysis is the delta-svd of other models: tuned .*lora-new/final/base" "$WORK/cmp.log"
mpi 1 "$SUBSPACE" compare --base "$WORK/a-final" --teacher "$WORK/teach" --student "s=$WORK/stud" --analysis "$WORK/dsvd-teach" \
    --output "$WORK/cmp" > "$WORK/cmp.log" 2>&1
expect "compare with its own analysis runs" test $? -eq 0

# A pipeline's stage override is named as the pipeline config's set: entry.
cat > "$WORK/pipeline.yaml" <<YAML
output: $WORK/pipe
corpus: {text: $WORK/text, shards: $WORK/pipe-corpus, tokenizer: bytes, validation_fraction: 0.1}
sft: {path: $WORK/sft, seed: 1, train: 128, test: 16}
base: {config: $ROOT/configs/base.yaml, set: [training.stpes=2000]}
YAML
mpi 1 "$SUBSPACE" pipeline --config "$WORK/pipeline.yaml" > "$WORK/pipe.log" 2>&1
refused "pipeline set: typo named as the stage's set: entry" $? "pipeline base.set entry 'training.stpes=2000': training.stpes: unknown key; did you mean training.steps" "$WORK/pipe.log"

# params --check-step under mpirun prints its table once.
mpi 2 "$SUBSPACE" params --config "$ROOT/configs/qk-freeze.yaml" --set data.path="$WORK/corpus" --set model.layers=1 --set model.width=16 \
    --set model.heads=2 --set model.context=32 --set data.sequence=32 --set training.global_batch=4 --set training.micro_batch=2 \
    --check-step > "$WORK/params.log" 2>&1
expect "params --check-step under mpirun: one table" test "$(grep -c "^W_q and W_k" "$WORK/params.log")" -eq 1

# --- 4. What was skipped is said, once ---------------------------------------------------------------------
train 2 "$WORK/short-sft" --set model.source=hf --set model.path="$WORK/a-final" --set data.kind=sft --set data.path="$WORK/sft" \
    --set data.sequence=13 --set evaluation.exact_match=0 --set training.steps=1
expect "dropped SFT examples said once" test "$(grep -cE "data: train.jsonl: [1-9][0-9]* of 128 examples dropped" "$WORK/short-sft.log")" -eq 1
"$SUBSPACE" data corpus --input "$WORK/text" --output "$WORK/corpus0" --validation-fraction 0 > "$WORK/corpus0.log" 2>&1
expect "validation fraction 0 said by data corpus" grep -q "will not evaluate" "$WORK/corpus0.log"
train 2 "$WORK/noeval" --set data.path="$WORK/corpus0" --set training.steps=1
expect "evaluation off said once by train" test "$(grep -c "evaluation: off" "$WORK/noeval.log")" -eq 1
SUBSPACE_BLAS_THREADS=abc train 2 "$WORK/blas1" --set training.steps=1
expect "SUBSPACE_BLAS_THREADS=abc: ignored, said once" test "$(grep -c "SUBSPACE_BLAS_THREADS=abc is not a whole number ≥ 1; ignored" "$WORK/blas1.log")" -eq 1
SUBSPACE_BLAS_THREADS=100000 train 2 "$WORK/blas2" --set training.steps=1
expect "SUBSPACE_BLAS_THREADS=100000: clamped, said once" test "$(grep -cE "SUBSPACE_BLAS_THREADS=100000 is more than the [0-9]+ cores" "$WORK/blas2.log")" -eq 1
train 1 "$WORK/yaml11" --set training.overlap_communication=yes; status=$?
refused "YAML 1.1 'yes' refused as a boolean (YAML 1.2)" $status "training.overlap_communication: expected true or false, got yes" "$WORK/yaml11.log"
train 1 "$WORK/yaml11b" --set training.steps=1_000; status=$?
refused "YAML 1.1 '1_000' refused as a number (YAML 1.2)" $status "training.steps: expected an integer ≥ 1, got" "$WORK/yaml11b.log"


# --- generate and eval, as a new user would (issue 15) -------------------------------------------------
train 1 "$WORK/gen" --set training.steps=2 || { fail "model for generate/eval"; tail -3 "$WORK/gen.log"; }
M="$WORK/gen/final"
gen() { "$SUBSPACE" generate --model "$M" --tokenizer bytes --prompt "KING:" --max-new-tokens 12 "$@"; }
gen > "$WORK/gen1.txt" 2> "$WORK/gen.err" && gen > "$WORK/gen2.txt" 2>> "$WORK/gen.err"
expect "generate: greedy text, the same on a second run" bash -c "test -s '$WORK/gen1.txt' && cmp -s '$WORK/gen1.txt' '$WORK/gen2.txt'"
gen --temperature 0.8 --top-k 20 --top-p 0.9 --seed 5 > "$WORK/gen3.txt" 2>> "$WORK/gen.err" \
    && gen --temperature 0.8 --top-k 20 --top-p 0.9 --seed 5 > "$WORK/gen4.txt" 2>> "$WORK/gen.err"
expect "generate: sampled text, the same for the same seed" bash -c "test -s '$WORK/gen3.txt' && cmp -s '$WORK/gen3.txt' '$WORK/gen4.txt'"
gen --temperature nan > "$WORK/g.log" 2>&1; refused "generate --temperature nan refused" $? "--temperature must be a finite number" "$WORK/g.log"
gen --stop "" > "$WORK/g.log" 2>&1; refused "generate --stop '' refused" $? "--stop takes a non-empty text" "$WORK/g.log"
gen --top-p 2 > "$WORK/g.log" 2>&1; refused "generate --top-p 2 refused" $? "--top-p must be in \(0, 1\]" "$WORK/g.log"
gen --max-new-tokens 0 > "$WORK/g.log" 2>&1; refused "generate --max-new-tokens 0 refused" $? "--max-new-tokens must be at least 1" "$WORK/g.log"
"$SUBSPACE" generate --model "$M" --prompt "KING:" > "$WORK/g.log" 2>&1
refused "generate on a byte-level model without --tokenizer: says --tokenizer bytes" $? "--tokenizer bytes" "$WORK/g.log"
echo '[]' > "$WORK/chat0.json"
"$SUBSPACE" generate --model "$M" --tokenizer bytes --chat "$WORK/chat0.json" > "$WORK/g.log" 2>&1; refused "generate --chat with an empty list refused" $? "chat0.json: holds no messages" "$WORK/g.log"
# eval splits the data over ranks: the same loss and exact match at np = 1, 2 and 3.
for np in 1 2 3; do
    mpi "$np" "$SUBSPACE" eval --model "$M" --tokenizer bytes --data "$WORK/sft/test.jsonl" --exact-match 5 --max-new-tokens 8 \
        --output "$WORK/eval$np.json" > "$WORK/eval$np.log" 2>&1 || { fail "eval at np=$np"; tail -3 "$WORK/eval$np.log"; }
done
expect "eval: loss and exact match the same at np = 1, 2, 3 (1e-6)" python3 -c "
import json, sys
r = [json.load(open('$WORK/eval%d.json' % n)) for n in (1, 2, 3)]
ok = all(abs(x['loss'] - r[0]['loss']) <= 1e-6 * abs(r[0]['loss']) and x['exact_match'] == r[0]['exact_match']
         and x['tokens'] == r[0]['tokens'] and x['exact_match_examples'] == 5 for x in r) and [x['ranks'] for x in r] == [1, 2, 3]
sys.exit(0 if ok else print(r) or 1)"
"$SUBSPACE" eval --model "$M" --tokenizer bytes --data "$WORK/sft/test.jsonl" --max-new-tokens 0 > "$WORK/eval0.log" 2>&1
refused "eval --max-new-tokens 0 with exact match refused" $? "--max-new-tokens must be at least 1 for exact match" "$WORK/eval0.log"
mpi 3 "$SUBSPACE" eval --model "$M" --tokenizer bytes --data "$WORK/missing.jsonl" > "$WORK/eval-missing.log" 2>&1
refused "eval on a missing file at np=3 refused, naming it" $? "missing.jsonl" "$WORK/eval-missing.log"
finish
