#!/usr/bin/env python3
# Run with /usr/bin/python3 (Debian python3-torch 1.13).
"""PyTorch training speed on this CPU, for comparison with MobileNetSharp's trainer.

The network: MobileNetV2 for 28x28x1 inputs and 10 classes (Fashion-MNIST), torchvision-style blocks
  stem 3x3 stride 1, 1 -> 16, BN, ReLU6
  inverted residuals (t, c, n, s) = (1,8,1,1) (6,16,2,1) (6,16,3,2) (6,32,4,2) (6,48,3,1) (6,80,3,2) (6,160,1,1):
    1x1 expand + BN + ReLU6 (when t != 1), 3x3 depthwise (stride s on a stage's first block) + BN + ReLU6,
    1x1 linear projection + BN, residual when stride 1 and in == out
  1x1 conv to 1280, BN, ReLU6; global average pool; dropout 0.2; Linear to 10
700,202 parameters (asserted). Its "standard-convolution twin" replaces every depthwise 3x3 with a full 3x3
convolution hidden -> hidden, everything else equal.

Training images/s: SGD (momentum 0.9) steps with CrossEntropyLoss on batches of 64 random images and labels, in
train mode (BN batch statistics, dropout on); warm-up steps (40, or fewer once 30 s have passed: the C# bench's rule for both engines), then timed steps. Each (network, threads)
runs in its own process, so torch.set_num_threads applies cleanly and the peak RSS (ru_maxrss) is that run's;
rss_after_import_mb is the process after `import torch`, before the model exists, for scale. The 1-minute load
average is printed too: on a shared machine the numbers are only as good as the CPU was idle.
Prints one JSON object per (network, threads).

  /usr/bin/python3 tools/training/bench_pytorch.py [--threads 1 2] [--warmup 40] [--steps 20] [--batch 64]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch
from torch import nn

SETTINGS = [(1, 8, 1, 1), (6, 16, 2, 1), (6, 16, 3, 2), (6, 32, 4, 2), (6, 48, 3, 1), (6, 80, 3, 2), (6, 160, 1, 1)]
EXPECTED_PARAMS = 700_202


def conv_bn(inp, out, kernel, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(out)]
    if relu:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, inp, out, stride, expand, depthwise):
        super().__init__()
        hidden = inp * expand
        self.residual = stride == 1 and inp == out
        layers = []
        if expand != 1:
            layers.append(conv_bn(inp, hidden, 1))
        layers.append(conv_bn(hidden, hidden, 3, stride, groups=hidden if depthwise else 1))
        layers.append(conv_bn(hidden, out, 1, relu=False))
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


def mobilenet_v2_28(depthwise=True, classes=10):
    layers = [conv_bn(1, 16, 3, 1)]
    inp = 16
    for t, c, n, s in SETTINGS:
        for i in range(n):
            layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t, depthwise))
            inp = c
    layers.append(conv_bn(inp, 1280, 1))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, classes))


def params(model):
    return sum(p.numel() for p in model.parameters())


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def cpu_capability():
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage:" in line:
            return line.split(":", 1)[1].strip()
    return None


def child(network, threads, warmup, steps, batch):
    baseline = rss_mb()  # torch imported, nothing built yet
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = mobilenet_v2_28(depthwise=network == "mobilenet_v2")
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    # As the C# bench: the warm-up stops after 30 s once 3 steps have run.
    started, warmed = time.perf_counter(), 0
    while warmed < warmup and (warmed < 3 or time.perf_counter() - started < 30):
        step()
        warmed += 1
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    total = sum(times)
    times.sort()
    print(json.dumps({
        "network": network,
        "params": params(model),
        "threads": threads,
        "batch": batch,
        "warmup_steps": warmed,
        "timed_steps": steps,
        "images_per_s": round(batch * steps / total, 1),
        "median_step_ms": round(1000 * times[len(times) // 2], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_after_import_mb": baseline,
        "torch": torch.__version__,
        "cpu_capability": cpu_capability(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--networks", nargs="+", default=["mobilenet_v2", "standard_conv_twin"],
                    choices=["mobilenet_v2", "standard_conv_twin"])
    ap.add_argument("--warmup", type=int, default=40)  # as the C# bench: its JIT settles by step ~31
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--child", nargs=2, metavar=("NETWORK", "THREADS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.child[0], int(a.child[1]), a.warmup, a.steps, a.batch)
        return

    n = params(mobilenet_v2_28(depthwise=True))
    assert n == EXPECTED_PARAMS, f"MobileNetV2-28 has {n:,} parameters, expected {EXPECTED_PARAMS:,}"
    print(f"# mobilenet_v2: {n:,} parameters; standard_conv_twin: {params(mobilenet_v2_28(depthwise=False)):,}", file=sys.stderr)
    for network in a.networks:
        for threads in a.threads:
            subprocess.run([sys.executable, os.path.abspath(__file__), "--child", network, str(threads),
                            "--warmup", str(a.warmup), "--steps", str(a.steps), "--batch", str(a.batch)], check=True)


if __name__ == "__main__":
    main()
