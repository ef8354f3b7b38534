#!/usr/bin/env python3
"""Checks for the multi-rank training tests (stdlib only): compare metrics.jsonl loss trajectories and
safetensors tensors between runs. Each subcommand exits 0 on success and prints why it failed otherwise."""
import json, struct, sys


def losses(run):
    out = {}
    with open(f"{run}/metrics.jsonl") as f:
        for line in f:
            o = json.loads(line)
            if "loss" in o:
                out[o["step"]] = o["loss"]
    return out


def safetensors(path):
    """Every tensor of one safetensors file: name → (dtype, shape, raw little-endian bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    out = {}
    for name, e in json.loads(data[8:8 + n]).items():
        if name != "__metadata__":
            a, b = e["data_offsets"]
            out[name] = (e["dtype"], e["shape"], data[8 + n + a:8 + n + b])
    return out


def tensors(path):
    return {name: blob for name, (_, _, blob) in safetensors(path).items()}


def folder_tensors(folder):
    """Every tensor of an HF folder (one model.safetensors, or shards named by model.safetensors.index.json)."""
    import os
    index = f"{folder}/model.safetensors.index.json"
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    out = {}
    for name in files:
        out.update({key: (dtype, blob) for key, (dtype, _, blob) in safetensors(f"{folder}/{name}").items()})
    return out


def same_folder(a, b, atol="0"):
    """The same tensors in two HF folders: bytes equal (atol 0), or f32 values within atol."""
    ta, tb = folder_tensors(a), folder_tensors(b)
    if sorted(ta) != sorted(tb):
        return f"tensor names differ: {sorted(set(ta) ^ set(tb))[:5]}"
    worst = (0.0, None)
    for name in ta:
        (da, xa), (db, xb) = ta[name], tb[name]
        if float(atol) == 0:
            if xa != xb:
                return f"{name} differs ({da} vs {db})"
            continue
        if da != "F32" or db != "F32":
            return f"{name}: {da}/{db}, tolerance needs F32"
        va, vb = struct.unpack(f"<{len(xa) // 4}f", xa), struct.unpack(f"<{len(xb) // 4}f", xb)
        d = max((abs(x - y) for x, y in zip(va, vb)), default=0.0)
        if d > worst[0]:
            worst = (d, name)
    if worst[0] > float(atol):
        return f"{worst[1]}: max |difference| {worst[0]:.3e} > {atol}"
    return None


def header_of(path):
    with open(path, "rb") as f:
        return json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))


def widen(dtype, raw):
    """f32 values of a tensor's bytes (bf16 and f16 widened exactly)."""
    if dtype == "F32":
        return struct.unpack(f"<{len(raw) // 4}f", raw)
    halves = struct.unpack(f"<{len(raw) // 2}H", raw)
    if dtype == "BF16":
        return struct.unpack(f"<{len(halves)}f", struct.pack(f"<{len(halves)}I", *[h << 16 for h in halves]))
    return struct.unpack(f"<{len(halves)}e", raw)


def same_values(a, b):
    """The same tensor values in two HF folders, whatever their dtypes and sharding (exact)."""
    ta, tb = folder_tensors(a), folder_tensors(b)
    if sorted(ta) != sorted(tb):
        return f"tensor names differ: {sorted(set(ta) ^ set(tb))[:5]}"
    for name in ta:
        if widen(*ta[name]) != widen(*tb[name]):
            return f"{name} differs"
    return None


def make_bf16_shards(src, dst, files="3"):
    """Rewrites an HF folder as bf16 (upper halves of the f32 bits) in several shards plus the index."""
    import os, shutil
    os.makedirs(dst, exist_ok=True)
    shutil.copy(f"{src}/config.json", f"{dst}/config.json")
    items = sorted(folder_tensors(src).items())
    n = int(files)
    weight_map = {}
    for i in range(n):
        name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        header, body = {}, b""
        for key, (dtype, raw) in items[i::n]:
            values = struct.unpack(f"<{len(raw) // 4}I", raw)
            data = struct.pack(f"<{len(values)}H", *[v >> 16 for v in values])
            shape = header_of(f"{src}/model.safetensors")[key]["shape"]
            header[key] = {"dtype": "BF16", "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
            body += data
            weight_map[key] = name
        h = json.dumps(header).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        with open(f"{dst}/{name}", "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + body)
    json.dump({"metadata": {}, "weight_map": weight_map}, open(f"{dst}/model.safetensors.index.json", "w"))
    return None


def same_losses(a, b, rtol, first="1", last=None):
    la, lb = losses(a), losses(b)
    steps = [s for s in sorted(la) if s >= int(first) and (last is None or s <= int(last))]
    if not steps:
        return f"no steps in {a}"
    for s in steps:
        if s not in lb:
            return f"step {s} missing in {b}"
        x, y = la[s], lb[s]
        if float(rtol) == 0:
            if x != y:
                return f"step {s}: {x!r} != {y!r} (bit-exact expected)"
        elif abs(x - y) > float(rtol) * abs(y):
            return f"step {s}: {x} vs {y}, relative difference {abs(x - y) / abs(y):.2e} > {rtol}"
    return None


def decreasing(run):
    l = losses(run)
    steps = sorted(l)
    if l[steps[-1]] >= l[steps[0]]:
        return f"loss did not decrease: {l[steps[0]]} → {l[steps[-1]]}"
    return None


def same_tensor(file_a, file_b, *names):
    ta, tb = tensors(file_a), tensors(file_b)
    for name in names:
        if ta.get(name) is None or tb.get(name) is None:
            return f"{name} missing"
        if ta[name] != tb[name]:
            return f"{name} differs"
    return None


def different_tensor(file_a, file_b, *names):
    ta, tb = tensors(file_a), tensors(file_b)
    for name in names:
        if ta[name] == tb[name]:
            return f"{name} did not change"
    return None


def same_analysis(a, b, rtol):
    """Two delta-svd outputs agree: the same modules, and every singular value and figure within rtol."""
    with open(f"{a}/analysis.json") as f:
        x = json.load(f)
    with open(f"{b}/analysis.json") as f:
        y = json.load(f)
    lx, ly = {l["name"]: l for l in x["layers"]}, {l["name"]: l for l in y["layers"]}
    if set(lx) != set(ly):
        return "different modules"
    for name in lx:
        for key in ("energy_at_rank", "relative_error_at_rank", "effective_rank"):
            u, v = lx[name][key], ly[name][key]
            if u is None or v is None:  # undefined (ΔW = 0, e.g. a frozen module) must be so in both
                if u is not v:
                    return f"{name} {key}: {u} vs {v}"
                continue
            if abs(u - v) > float(rtol) * max(1.0, abs(v)):
                return f"{name} {key}: {u} vs {v}"
        for u, v in zip(lx[name]["singular_values"], ly[name]["singular_values"]):
            if abs(u - v) > float(rtol) * max(1e-6, abs(v)):
                return f"{name} singular values: {u} vs {v}"
        if lx[name]["rank_for_energy"] != ly[name]["rank_for_energy"]:
            return f"{name} rank_for_energy differs"
    return None


def pipeline_summary(path):
    """The ΔW study's summary.json: equal budgets; every method (teacher included) with a result per seed
    and a sweep that either brackets its best rate or says why not; the rank study's rows."""
    with open(path) as f:
        s = json.load(f)
    if not s["equal_budget"]:
        return "budgets differ"
    seeds = len(s["seeds"])
    for row in s["rows"]:
        if len(row["steps"]) != seeds or len(set(row["steps"])) != 1:
            return f"{row['method']}: steps {row['steps']} for {seeds} seeds"
        if row["final_val_loss"] is None or len(row["final_val_loss"]["values"]) != seeds:
            return f"{row['method']}: final_val_loss over {seeds} seeds missing"
    for sweep in s["sweeps"]:
        rates = [p["learning_rate"] for p in sweep["points"]]
        if rates != sorted(rates):
            return f"{sweep['method']}: rates not ascending"
        best = sweep["best_learning_rate"]
        bracketed = rates[0] < best < rates[-1]
        if bracketed != sweep["bracketed"]:
            return f"{sweep['method']}: bracketed flag wrong"
        if not bracketed and "not bracketed" not in sweep["note"] and len(rates) > 1:
            return f"{sweep['method']}: at an edge without saying so"
    if not s["ranks"]:
        return "no rank study rows"
    if not s["finding"]:
        return "no finding"
    return None


def floats(path):
    """name → list of float32 values of a safetensors file (F32 tensors only)."""
    return {name: list(struct.unpack(f"<{len(raw) // 4}f", raw)) for name, raw in tensors(path).items()}


def same_transfer(a, b, rtol):
    """Two lora-x outputs agree: the same modules and decisions, φ within rtol, and every adapter value
    within rtol of the largest magnitude in its tensor."""
    with open(f"{a}/transfer.json") as f:
        x = json.load(f)
    with open(f"{b}/transfer.json") as f:
        y = json.load(f)
    mx, my = {m["name"]: m for m in x["modules"]}, {m["name"]: m for m in y["modules"]}
    if set(mx) != set(my):
        return "different modules"
    for name in mx:
        if mx[name]["transferred"] != my[name]["transferred"]:
            return f"{name}: transferred differs"
        for key in ("phi_u", "phi_v", "chance"):
            if abs(mx[name][key] - my[name][key]) > float(rtol):
                return f"{name} {key}: {mx[name][key]} vs {my[name][key]}"
    ta, tb = floats(f"{a}/adapter_model.safetensors"), floats(f"{b}/adapter_model.safetensors")
    if set(ta) != set(tb):
        return "different adapter tensors"
    for name in ta:
        scale = max(1e-30, max(abs(v) for v in tb[name]))
        worst = max(abs(u - v) for u, v in zip(ta[name], tb[name])) / scale
        if worst > float(rtol):
            return f"{name}: worst difference {worst:.2e} of its largest value"
    return None


def adapter_fits(adapter, model):
    """Every lora_A is [r, in] and every lora_B [out, r] of the module's weight in the HF folder `model`."""
    r = json.load(open(f"{adapter}/adapter_config.json"))["r"]
    gpt2 = json.load(open(f"{model}/config.json"))["model_type"] == "gpt2"   # Conv1D weights are stored [in, out]
    weights = {name: shape for name, (_, shape, _) in safetensors(f"{model}/model.safetensors").items()}
    names = list(safetensors(f"{adapter}/adapter_model.safetensors").items())
    if not names:
        return "no adapter tensors"
    for name, (_, shape, _) in names:
        module, factor = name.removeprefix("base_model.model.").rsplit(".lora_", 1)
        w = weights.get(module + ".weight")
        if w is None:
            return f"{name}: the model has no {module}.weight"
        out, inp = (w[1], w[0]) if gpt2 else (w[0], w[1])
        want = [r, inp] if factor.startswith("A") else [out, r]
        if shape != want:
            return f"{name}: shape {shape}, the target's {module} needs {want}"
    return None


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    error = globals()[command.replace("-", "_")](*args)
    if error:
        print(f"check {command}: {error}", file=sys.stderr)
        sys.exit(1)
