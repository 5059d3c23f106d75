#!/usr/bin/env python3
# Run with /usr/bin/python3 (Debian python3-torch 1.13). Writes tests/MobileNetSharp.Tests/Training/Fixtures/optimizers.json.
"""Expected values for MobileNetSharp's optimizers, schedules and gradient clipping, from PyTorch itself.

torch.optim.SGD and torch.optim.AdamW run a few steps on small fixed tensors with a new gradient and learning rate
each step; 1-D parameters (MobileNetSharp's DecayExempt ones) sit in a param group with weight_decay=0. Every
hyper-parameter is first rounded to float32, because the C# side receives floats. The JSON holds float32 values
printed exactly (Python's repr of the double that equals the float32), so the C# test reads them back bit for bit.
"""
import json
import math
import os

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "tests", "MobileNetSharp.Tests", "Training", "Fixtures", "optimizers.json")

torch.manual_seed(20261130)
STEPS = 5
f32 = lambda x: float(np.float32(x))
# Shapes cover the vector path and a scalar tail (8 floats per AVX2 vector), 2-D and 4-D weights, and 1-D biases.
SHAPES = {"conv.weight": [2, 1, 3, 3], "fc.weight": [4, 5], "fc.bias": [4], "bn.gamma": [3]}


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def make_case():
    params = {n: torch.randn(s) for n, s in SHAPES.items()}
    grads = [{n: torch.randn(s) * 0.5 for n, s in SHAPES.items()} for _ in range(STEPS)]
    lrs = [f32(x) for x in (0.1, 0.05, 0.2, 0.1, 0.01)]
    return params, grads, lrs


def run(opt_factory, state_keys):
    params0, grads, lrs = make_case()
    tensors = {n: p.clone().requires_grad_(True) for n, p in params0.items()}
    decaying = [t for n, t in tensors.items() if len(SHAPES[n]) > 1]
    exempt = [t for n, t in tensors.items() if len(SHAPES[n]) <= 1]
    opt = opt_factory(decaying, exempt)
    after = []
    for step in range(STEPS):
        for n, t in tensors.items():
            t.grad = grads[step][n].clone()
        for g in opt.param_groups:
            g["lr"] = lrs[step]
        opt.step()
        after.append({n: flat(t) for n, t in tensors.items()})
    state = {}
    for n, t in tensors.items():
        for key, torch_key in state_keys:
            state[f"{n}/{key}"] = flat(opt.state[t][torch_key])
    return {
        "params": [{"name": n, "shape": SHAPES[n], "value": flat(params0[n])} for n in SHAPES],
        "grads": [{n: flat(g[n]) for n in SHAPES} for g in grads],
        "lrs": lrs,
        "after": after,
        "state": state,
    }


def sgd_case(momentum, nesterov, weight_decay):
    momentum, weight_decay = f32(momentum), f32(weight_decay)
    def factory(decaying, exempt):
        return torch.optim.SGD([{"params": decaying, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}],
                               lr=0.1, momentum=momentum, nesterov=nesterov, dampening=0)
    case = run(factory, [("momentum", "momentum_buffer")] if momentum > 0 else [])
    case.update(momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    return case


def adamw_case(beta1, beta2, eps, weight_decay):
    beta1, beta2, eps, weight_decay = f32(beta1), f32(beta2), f32(eps), f32(weight_decay)
    def factory(decaying, exempt):
        return torch.optim.AdamW([{"params": decaying, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}],
                                 lr=0.1, betas=(beta1, beta2), eps=eps, amsgrad=False)
    case = run(factory, [("exp_avg", "exp_avg"), ("exp_avg_sq", "exp_avg_sq")])
    case.update(beta1=beta1, beta2=beta2, epsilon=eps, weight_decay=weight_decay)
    return case


def cosine(base, total, warmup, minimum, step):
    if step < warmup:
        return base * (step + 1) / warmup
    if step >= total:
        return minimum
    t = (step - warmup) / (total - warmup)
    return minimum + (base - minimum) * (1 + math.cos(math.pi * t)) / 2


def step_lr(base, size, gamma, warmup, step):
    if step < warmup:
        return base * (step + 1) / warmup
    return base * gamma ** ((step - warmup) // size)


def torch_rates(scheduler_factory, base, n):
    """The lr torch's own scheduler gives at steps 0..n-1 (its closed form where it has one)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base)
    sched = scheduler_factory(opt)
    rates = []
    for _ in range(n):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates


def schedules():
    cases = []
    for base, total, warmup, minimum in [(0.1, 10, 0, 0.0), (0.4, 20, 5, 0.001), (0.05, 7, 7, 0.0), (1.0, 1, 0, 0.5)]:
        base, minimum = f32(base), f32(minimum)
        steps = list(range(total + 3))
        rates = [cosine(base, total, warmup, minimum, s) for s in steps]
        if warmup == 0:
            # Same numbers as torch's CosineAnnealingLR with T_max = total (through the end; it then rises again, we clamp).
            ref = torch_rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total, eta_min=minimum), base, total + 1)
            assert all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(rates, ref)), (rates, ref)
        cases.append({"kind": "cosine", "base": base, "total": total, "warmup": warmup, "min": minimum,
                      "steps": steps, "rates": [f32(r) for r in rates]})
    for base, size, gamma, warmup in [(0.1, 3, 0.1, 0), (0.2, 4, 0.5, 3)]:
        base, gamma = f32(base), f32(gamma)
        steps = list(range(16))
        rates = [step_lr(base, size, gamma, warmup, s) for s in steps]
        if warmup == 0:
            ref = torch_rates(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=size, gamma=gamma), base, len(steps))
            assert all(abs(a - b) <= 1e-6 * max(1.0, abs(b)) for a, b in zip(rates, ref)), (rates, ref)
        cases.append({"kind": "step", "base": base, "step_size": size, "gamma": gamma, "warmup": warmup,
                      "steps": steps, "rates": [f32(r) for r in rates]})
    return cases


def clipping():
    cases = []
    for max_norm, scale in [(1.0, 1.0), (100.0, 1.0), (0.25, 0.01)]:
        max_norm = f32(max_norm)
        grads = {n: torch.randn(s) * scale for n, s in SHAPES.items()}
        ps = []
        for n in SHAPES:
            p = torch.nn.Parameter(torch.zeros(SHAPES[n]))
            p.grad = grads[n].clone()
            ps.append(p)
        norm = torch.nn.utils.clip_grad_norm_(ps, max_norm)
        cases.append({"max_norm": max_norm, "shapes": [SHAPES[n] for n in SHAPES],
                      "grads": [flat(grads[n]) for n in SHAPES], "norm": float(norm), "clipped": [flat(p.grad) for p in ps]})
    return cases


fixture = {
    "generator": "tools/training/gen_optimizer_fixtures.py",
    "torch": torch.__version__,
    "sgd": [sgd_case(0.0, False, 0.0), sgd_case(0.9, False, 0.0), sgd_case(0.9, False, 0.01),
            sgd_case(0.9, True, 0.05), sgd_case(0.5, True, 0.0)],
    "adamw": [adamw_case(0.9, 0.999, 1e-8, 0.01), adamw_case(0.8, 0.99, 1e-6, 0.1), adamw_case(0.9, 0.999, 1e-8, 0.0)],
    "schedules": schedules(),
    "clipping": clipping(),
}
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    json.dump(fixture, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {os.path.normpath(OUT)}")
