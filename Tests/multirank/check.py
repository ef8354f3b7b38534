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


def tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = data[8 + n + a:8 + n + b]
    return out


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


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    error = globals()[command.replace("-", "_")](*args)
    if error:
        print(f"check {command}: {error}", file=sys.stderr)
        sys.exit(1)
