#!/usr/bin/env python3
"""Whole-model references for rotary scaling, from HF transformers itself (`LlamaForCausalLM`), for
`RotaryScalingTests.scaledModelMatchesTransformers`.

The weights and the batch are the read-only llama-tiny fixture's (../shared/fixtures/llama-tiny); only
config.json changes: `rope_parameters` set to each case below, with a short `original_max_position_embeddings`
so that the scaling changes frequencies inside the fixture's 24 positions. For each case the script writes
`<case>.config.json` (the config transformers ran) and `<case>.reference.safetensors`: `logits` [B, T, V],
`loss` [1] (labels = input_ids, HF's shift) and `grad.<name>` for every parameter. float32, CPU.

Procedure (versions used: torch 2.13.0+cpu, transformers 5.24.0, safetensors, numpy):
    python3 -m venv .venv-references
    .venv-references/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    .venv-references/bin/pip install transformers safetensors numpy
    .venv-references/bin/python Tests/SubspaceModelTests/Resources/rope/make_rope_model_reference.py
(run from the checkout, with ../shared/fixtures beside it).
"""
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.normpath(os.path.join(HERE, "../../../../../shared/fixtures/llama-tiny"))

CASES = {
    "llama3": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
}

torch.manual_seed(0)
base = json.load(open(os.path.join(FIXTURE, "config.json")))
weights = load_file(os.path.join(FIXTURE, "model.safetensors"))
ids = load_file(os.path.join(FIXTURE, "reference.safetensors"))["input_ids"]
for name, rope in CASES.items():
    cfg = dict(base)
    cfg["rope_parameters"] = rope
    config = LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "transformers_version")})
    model = LlamaForCausalLM(config).float().eval()
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    tensors = {"logits": out.logits.detach().contiguous(), "loss": out.loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        tensors["grad." + n] = p.grad.detach().contiguous()
    save_file(tensors, os.path.join(HERE, f"{name}.reference.safetensors"))
    with open(os.path.join(HERE, f"{name}.config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
        f.write("\n")
    print(name, "loss", float(out.loss))
