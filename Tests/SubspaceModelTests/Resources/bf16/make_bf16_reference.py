#!/usr/bin/env python3
"""PyTorch's own bf16 error on the reference fixtures, for `BF16ParityTests`.

For gpt2-tiny, llama-tiny and the llama-tiny-lora adapter, this runs the fixture's batch through the HF
model twice — in float32, and under `torch.autocast("cpu", dtype=torch.bfloat16)` (PyTorch's CPU mixed
precision: linear layers and matmuls in bf16, master weights, norms, softmax and the loss in float32) —
and records the relative Frobenius error ‖bf16 − fp32‖ / ‖fp32‖ of the logits, the loss and every
gradient (HF / PEFT names as in the fixture's `grad.*`), in `bf16_errors.json`. Subspace's bf16 run is
held to twice these figures against the fixture's float32 reference.

The LoRA fixture is applied without PEFT (not needed for this): each targeted Linear becomes
base(x) + scale · lora_B(lora_A(x)), which is PEFT's LoRA forward with dropout 0; the base is frozen.
GPT-2 and Llama run with `attn_implementation="eager"` (matmul + softmax attention).

Procedure (PyTorch CPU and transformers in a venv beside the sources, ignored by git; fixtures beside the
checkout in ../shared/fixtures, or $SUBSPACE_FIXTURES):

    python3 -m venv .venv-references
    .venv-references/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    .venv-references/bin/pip install transformers safetensors numpy
    .venv-references/bin/python Tests/SubspaceModelTests/Resources/bf16/make_bf16_reference.py

(bf16_errors.json was made with torch 2.13.0+cpu and transformers 5.24.0, recorded in the file.)

The float32 pass is also checked against the fixture's own logits and gradients (it must agree to the
fixtures' float32 tolerance), so the figures are errors against the same reference the test uses.
"""
import json
import os

import torch
import transformers
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
FIXTURES = os.environ.get("SUBSPACE_FIXTURES", os.path.join(REPO, "..", "shared", "fixtures"))


def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


class LoRALinear(torch.nn.Module):
    def __init__(self, base, a, b, scale):
        super().__init__()
        self.base = base
        self.lora_A = torch.nn.Parameter(a.clone())
        self.lora_B = torch.nn.Parameter(b.clone())
        self.scale = scale

    def forward(self, x):
        return self.base(x) + self.scale * torch.nn.functional.linear(torch.nn.functional.linear(x, self.lora_A), self.lora_B)


def load(name):
    folder = os.path.join(FIXTURES, name)
    ref = load_file(os.path.join(folder, "reference.safetensors"))
    if name.endswith("-lora"):
        model = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.join(FIXTURES, "llama-tiny"), attn_implementation="eager", dtype=torch.float32)
        for p in model.parameters():
            p.requires_grad_(False)
        config = json.load(open(os.path.join(folder, "adapter_config.json")))
        scale = config["lora_alpha"] / config["r"]
        weights = load_file(os.path.join(folder, "adapter_model.safetensors"))
        names = {}
        for module_name, module in list(model.named_modules()):
            if module_name.split(".")[-1] in config["target_modules"] and isinstance(module, torch.nn.Linear):
                key = "base_model.model." + module_name
                wrapped = LoRALinear(module, weights[key + ".lora_A.weight"], weights[key + ".lora_B.weight"], scale)
                parent = model.get_submodule(module_name.rsplit(".", 1)[0])
                setattr(parent, module_name.rsplit(".", 1)[1], wrapped)
                names[key + ".lora_A.default.weight"] = wrapped.lora_A
                names[key + ".lora_B.default.weight"] = wrapped.lora_B
        return model, ref, names
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    return model, ref, dict(model.named_parameters())


def run(model, ids, names, autocast):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in names.items()}
    return out.logits.detach().float(), out.loss.detach().float(), grads


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)   # deterministic sums; the figures do not depend on speed
    result = {"torch": torch.__version__, "transformers": transformers.__version__,
              "attention": "eager", "metric": "relative Frobenius error of autocast-bf16 against float32", "models": {}}
    for name in ["gpt2-tiny", "llama-tiny", "llama-tiny-lora"]:
        model, ref, names = load(name)
        model.eval()  # dropout is 0 in every fixture; eval() only makes that certain
        ids = ref["input_ids"]
        logits32, loss32, grads32 = run(model, ids, names, autocast=False)
        # The float32 pass must be the fixture's reference (HF's tied wte gradient includes the head's).
        check = {"logits": rel(logits32, ref["logits"]), "loss": rel(loss32, ref["loss"])}
        check["worst_grad"] = max(rel(grads32[n], ref["grad." + n]) for n in grads32)
        assert check["logits"] < 1e-5 and check["worst_grad"] < 1e-4, (name, check)
        logits16, loss16, grads16 = run(model, ids, names, autocast=True)
        grads = {n: rel(grads16[n], grads32[n]) for n in sorted(grads32)}
        result["models"][name] = {
            "logits": rel(logits16, logits32), "loss": rel(loss16, loss32), "grads": grads,
            "worst_grad": max(grads.values()), "fp32_against_fixture": check,
        }
        print(f"{name}: logits {result['models'][name]['logits']:.3e} loss {result['models'][name]['loss']:.3e} "
              f"worst grad {max(grads.values()):.3e} (fp32 vs fixture: logits {check['logits']:.1e}, grads {check['worst_grad']:.1e})")
    with open(os.path.join(HERE, "bf16_errors.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
