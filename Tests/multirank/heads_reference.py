#!/usr/bin/env python3
"""Independent reference for `subspace heads importance` (Python standard library only).

Head gates act on the input of the attention output projection, so
  - ablation of head (l, h): zero the input columns [h*D, (h+1)*D) of layer l's o_proj (GPT-2's c_proj,
    stored [in, out]: rows) in a copy of the model, run `subspace forward` on the whole batch, subtract
    the unmodified loss;
  - dL_s/dxi_(l,h) = sum over those columns of W_O * dL_s/dW_O, with dL_s/dW_O from `subspace forward
    --grads` on sequence s alone (its mean token loss).

  heads_reference.py reference SUBSPACE MODEL_DIR INPUT OUT.json
  heads_reference.py compare A.json B.json RTOL ATOL   (exit 1 when they differ)
  heads_reference.py same A.json B.json ...             (bit-identical arrays and loss)
  heads_reference.py ids FIXTURE_REFERENCE OUT           (the input_ids of a fixture's reference file)
"""
import json, os, shutil, struct, subprocess, sys, tempfile
from array import array

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check import safetensors  # noqa: E402

DTYPES = {"F32": ("f", 4), "I64": ("q", 8), "I32": ("i", 4)}


def read(path):
    """name → (dtype, shape, array of values), through check.py's safetensors reader."""
    return {name: (dtype, shape, array(DTYPES[dtype][0], blob)) for name, (dtype, shape, blob) in safetensors(path).items()}


def write(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, (dtype, shape, values) in tensors.items():
        blob = values.tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def o_proj(tensors, layer):
    for name, transposed in ((f"transformer.h.{layer}.attn.c_proj.weight", True),
                             (f"model.layers.{layer}.self_attn.o_proj.weight", False)):
        if name in tensors:
            return name, transposed
    raise SystemExit(f"no attention output projection for layer {layer}")


def head_entries(shape, transposed, h, D):
    """Flat indices of W_O's entries that read head h's input dimensions."""
    rows, cols = shape
    if transposed:  # [in, out]: rows are input dimensions
        return [r * cols + c for r in range(h * D, (h + 1) * D) for c in range(cols)]
    return [r * cols + c for r in range(rows) for c in range(h * D, (h + 1) * D)]


def forward(subspace, model, ids_file, out_file, grads):
    cmd = [subspace, "forward", "--model", model, "--input", ids_file, "--output", out_file] + (["--grads"] if grads else [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return read(out_file)


def reference(subspace, model_dir, input_file, out_json):
    config = json.load(open(os.path.join(model_dir, "config.json")))
    L = config.get("num_hidden_layers", config.get("n_layer"))
    H = config.get("num_attention_heads", config.get("n_head"))
    C = config.get("hidden_size", config.get("n_embd"))
    D = config.get("head_dim") or C // H
    weights = read(os.path.join(model_dir, "model.safetensors"))
    dtype, (N, T), ids = read(input_file)["input_ids"]
    work = tempfile.mkdtemp()
    try:
        base = forward(subspace, model_dir, input_file, os.path.join(work, "out.safetensors"), False)
        loss = base["loss"][2][0]
        ablation = []
        for l in range(L):
            name, transposed = o_proj(weights, l)
            dt, shape, values = weights[name]
            row = []
            for h in range(H):
                copy = dict(weights)
                zeroed = array("f", values)
                for i in head_entries(shape, transposed, h, D):
                    zeroed[i] = 0.0
                copy[name] = (dt, shape, zeroed)
                folder = os.path.join(work, "ablated")
                os.makedirs(folder, exist_ok=True)
                shutil.copy(os.path.join(model_dir, "config.json"), folder)
                write(os.path.join(folder, "model.safetensors"), copy)
                out = forward(subspace, folder, input_file, os.path.join(work, "out.safetensors"), False)
                row.append(out["loss"][2][0] - loss)
            ablation.append(row)
        taylor = [[0.0] * H for _ in range(L)]
        fisher = [[0.0] * H for _ in range(L)]
        for s in range(N):
            single = os.path.join(work, "one.safetensors")
            write(single, {"input_ids": (dtype, [1, T], array(ids.typecode, ids[s * T:(s + 1) * T]))})
            out = forward(subspace, model_dir, single, os.path.join(work, "out.safetensors"), True)
            for l in range(L):
                name, transposed = o_proj(weights, l)
                _, shape, w = weights[name]
                g = out["grad." + name][2]
                for h in range(H):
                    d = sum(w[i] * g[i] for i in head_entries(shape, transposed, h, D))
                    taylor[l][h] += abs(d) / N
                    fisher[l][h] += d * d / N
        json.dump({"layers": L, "heads": H, "loss": loss, "ablation": ablation, "taylor": taylor, "fisher": fisher},
                  open(out_json, "w"), indent=1)
    finally:
        shutil.rmtree(work)


def compare(a_file, b_file, rtol, atol):
    a, b = json.load(open(a_file)), json.load(open(b_file))
    worst = (0.0, None)
    for key in ("ablation", "taylor", "fisher"):
        scale = max(abs(x) for row in b[key] for x in row)
        for l, (ra, rb) in enumerate(zip(a[key], b[key])):
            for h, (x, y) in enumerate(zip(ra, rb)):
                excess = abs(x - y) - (atol + rtol * scale)
                if excess > worst[0]:
                    worst = (excess, f"{key}[{l}][{h}]: {x} vs {y} (scale {scale})")
    if abs(a["loss"] - b["loss"]) > atol + rtol * abs(b["loss"]):
        worst = (1.0, f"loss {a['loss']} vs {b['loss']}")
    if worst[1]:
        print("differ:", worst[1])
        return 1
    return 0


def same(files):
    first = json.load(open(files[0]))
    for other in files[1:]:
        o = json.load(open(other))
        for key in ("loss", "ablation", "taylor", "fisher"):
            if first[key] != o[key]:
                print(f"{key} differs between {files[0]} and {other}")
                return 1
    return 0


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "reference":
        reference(*sys.argv[2:6])
    elif mode == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])))
    elif mode == "ids":
        write(sys.argv[3], {"input_ids": read(sys.argv[2])["input_ids"]})
    elif mode == "same":
        sys.exit(same(sys.argv[2:]))
    else:
        raise SystemExit(__doc__)
