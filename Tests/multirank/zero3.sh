#!/usr/bin/env bash
# ZeRO-3 that shards for real (issue 12): sharded loading and saving round-trip an HF folder exactly at
# np = 1, 2, 3 (f32 single file, and bf16 in three shards with an index); ZeRO-3 at np=2 follows ZeRO-0
# at np=1 (losses, final weights); delta-svd from checkpoint shards equals delta-svd from the HF folders.
# Tiny models, a few steps: about a minute.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
make_corpus

# Width 16 and vocabulary 512: the embedding is three vocabulary slices (blocks of their own), the corpus's
# tokens falling in two of them.
COMMON=(--set data.path="$WORK/corpus" --set model.layers=2 --set model.width=16 --set model.vocab=512 --set model.heads=4 --set model.context=32
        --set data.sequence=32 --set training.global_batch=4 --set training.micro_batch=2 --set training.warmup=1
        --set evaluation.every=0 --set evaluation.sequences=4 --set checkpoint.every=2 --set checkpoint.keep=2)
train() { local np="$1" out="$2"; shift 2; local_mpirun "$np" "$SUBSPACE" train --config "$ROOT/configs/base.yaml" "${COMMON[@]}" --set run.output="$out" "$@" > "$out.log" 2>&1; }

# A base model (np=1, ZeRO-0), and the same weights as bf16 in three shards.
train 1 "$WORK/base" --set training.steps=2 --set training.zero_stage=0 || { fail "base run"; tail -5 "$WORK/base.log"; }
$CHECK make_bf16_shards "$WORK/base/final" "$WORK/bf16" 3

# Load into shards and save block by block with nothing changed (every tensor frozen): the same values.
for np in 1 2 3; do
    for source in base/final bf16; do
        out="$WORK/rt-$np-${source%%/*}"
        if train $np "$out" --set training.steps=1 --set training.global_batch=$((2 * np)) --set training.zero_stage=3 --set "training.freeze=['.*']" \
                --set model.source=hf --set model.path="$WORK/$source"; then
            expect "np=$np: ${source%%/*} loaded into shards and saved round-trips" $CHECK same_values "$out/final" "$WORK/$source"
        else
            fail "np=$np round-trip run from $source"; tail -5 "$out.log"
        fi
    done
done

# ZeRO-3 at np=2 from the HF folder follows ZeRO-0 at np=1: losses to 1e-5, final weights to 1e-5.
train 1 "$WORK/z0" --set training.steps=4 --set training.zero_stage=0 --set model.source=hf --set model.path="$WORK/base/final" \
    || { fail "np=1 ZeRO-0 run"; tail -5 "$WORK/z0.log"; }
train 2 "$WORK/z3" --set training.steps=4 --set training.zero_stage=3 --set model.source=hf --set model.path="$WORK/base/final" \
    || { fail "np=2 ZeRO-3 run"; tail -5 "$WORK/z3.log"; }
expect "np=2 ZeRO-3 losses equal np=1 ZeRO-0 (1e-5)" $CHECK same_losses "$WORK/z3" "$WORK/z0" 1e-5
expect "np=2 ZeRO-3 final weights equal np=1 ZeRO-0 (1e-5)" $CHECK same_folder "$WORK/z3/final" "$WORK/z0/final" 1e-5

# ΔW from shards: delta-svd reads the np=2 ZeRO-3 teacher's checkpoint files (run folder → newest checkpoint,
# or the step folder; the base as a checkpoint too) and gives the numbers of its HF folder.
dsvd() { local out="$1"; shift; local_mpirun 2 "$SUBSPACE" delta-svd --rank 4 --output "$WORK/$out" "$@" > "$WORK/$out.log" 2>&1 || { fail "delta-svd $out"; tail -5 "$WORK/$out.log"; }; }
dsvd dsvd-hf --base "$WORK/base/final" --tuned "$WORK/z3/final"
dsvd dsvd-run --base "$WORK/base/final" --tuned "$WORK/z3"
dsvd dsvd-ckpt --base "$WORK/base/checkpoints/step-00000002" --tuned "$WORK/z3/checkpoints/step-00000004"
expect "delta-svd from the ZeRO-3 run folder equals from its HF folder" $CHECK same_analysis "$WORK/dsvd-run" "$WORK/dsvd-hf" 1e-6
expect "delta-svd from two checkpoint folders equals from the HF folders" $CHECK same_analysis "$WORK/dsvd-ckpt" "$WORK/dsvd-hf" 1e-6
finish
