#!/usr/bin/env python3
"""Inverse-frequency tables of rotary scaling, computed with numpy (float32) following transformers'
`modeling_rope_utils` (`_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`,
`_compute_llama3_parameters`), for `RotaryScalingTests`. torch was not installed in this session, so the
reference is this transcription of the published formulas, not transformers itself.

    python3 -m venv .venv-references && .venv-references/bin/pip install numpy
    .venv-references/bin/python Tests/SubspaceModelTests/Resources/rope/make_rope_reference.py
"""
import json
import math
import os

import numpy as np


def default(theta, dim):
    return (1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.int64).astype(np.float32) / np.float32(dim)))).astype(np.float32)


def linear(theta, dim, factor):
    return (default(theta, dim) / np.float32(factor)).astype(np.float32)


def llama3(theta, dim, factor, low_freq_factor, high_freq_factor, old_context_len):
    inv_freq = default(theta, dim)
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    wavelen = (2 * math.pi / inv_freq).astype(np.float32)
    inv_freq_llama = np.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq).astype(np.float32)
    smooth_factor = ((old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)).astype(np.float32)
    smoothed = ((1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama).astype(np.float32)
    is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
    return np.where(is_medium, smoothed, inv_freq_llama).astype(np.float32)


cases = [
    {"name": "llama3.1", "theta": 500000.0, "dim": 128,
     "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
     "inv_freq": llama3(500000.0, 128, 8.0, 1.0, 4.0, 8192)},
    {"name": "llama3.2", "theta": 500000.0, "dim": 64,
     "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
     "inv_freq": llama3(500000.0, 64, 32.0, 1.0, 4.0, 8192)},
    {"name": "linear", "theta": 10000.0, "dim": 64, "rope_scaling": {"rope_type": "linear", "factor": 4.0},
     "inv_freq": linear(10000.0, 64, 4.0)},
    {"name": "default", "theta": 1000000.0, "dim": 64, "rope_scaling": None, "inv_freq": default(1000000.0, 64)},
]
for c in cases:
    c["inv_freq"] = [float(x) for x in c["inv_freq"]]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "inv_freq.json"), "w") as f:
    json.dump(cases, f, indent=1)
    f.write("\n")
