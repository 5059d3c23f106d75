#!/usr/bin/python3
"""Regenerates the exporter-variant fixtures of the ONNX import tests.

The canonical torchvision fixtures (tests/fixtures/torchvision, tools/fixtures/gen_torchvision.py) are
opset 13, constant-folded, with static shapes. These are the other ways torch.onnx writes the same
networks, shrunk to a few thousand parameters so they cost almost nothing to keep:

    shufflenet_v2   opset 12, constant folding off, symbolic batch: Shape/Gather/Cast/Div/Unsqueeze/Concat
                    chains feed the channel shuffle's Reshape
    mobilenet_v3    opset 14, symbolic batch: HardSwish as an operator
    resnet          opset 9, BatchNormalization kept (not folded into the convolutions), symbolic batch
    mnasnet         opset 11, symbolic batch: ReduceMean with attribute axes

Each gets <name>.onnx, <name>.input.npy (batch 1) and <name>.output.npy (PyTorch, eval mode).

    /usr/bin/python3 make_fixtures.py
"""
import os
import sys

import numpy as np
import torch
from torchvision.models import mnasnet, mobilenetv3, resnet, shufflenetv2

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))


class TinyResNet(resnet.ResNet):
    """resnet18's graph (7x7 stem, max pool, two BasicBlocks per stage, 1x1 downsample) with 4 to 16 channels."""

    def __init__(self):
        super().__init__(resnet.BasicBlock, [2, 2, 2, 2], num_classes=10)
        self.inplanes = 4
        self.conv1 = torch.nn.Conv2d(3, 4, 7, 2, 3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(4)
        self.layer1 = self._make_layer(resnet.BasicBlock, 4, 2)
        self.layer2 = self._make_layer(resnet.BasicBlock, 8, 2, stride=2)
        self.layer3 = self._make_layer(resnet.BasicBlock, 12, 2, stride=2)
        self.layer4 = self._make_layer(resnet.BasicBlock, 16, 2, stride=2)
        self.fc = torch.nn.Linear(16, 10)


def tiny_mnasnet():
    model = mnasnet.MNASNet(0.1, num_classes=10)
    # The fixed 1280-wide head dominates the size; narrow it, keeping the stem-to-head structure.
    last = model.layers[14]
    model.layers[14] = torch.nn.Conv2d(last.in_channels, 32, 1, bias=False)
    model.layers[15] = torch.nn.BatchNorm2d(32)
    model.classifier[1] = torch.nn.Linear(32, 10)
    return model


# name: (builder, resolution, opset, export options)
VARIANTS = {
    "shufflenet_v2": (lambda: shufflenetv2.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 64], num_classes=10), 40, 12,
                      {"do_constant_folding": False}),
    "mobilenet_v3": (lambda: mobilenetv3.mobilenet_v3_small(width_mult=0.1, num_classes=10), 40, 14, {}),
    "resnet": (TinyResNet, 40, 9, {"training": torch.onnx.TrainingMode.PRESERVE}),
    "mnasnet": (tiny_mnasnet, 40, 11, {}),
}


def randomize(model, seed):
    """Random weights with non-trivial batch-norm statistics, so folding and normalization really matter."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model.eval()


def main():
    for i, (name, (build, resolution, opset, options)) in enumerate(VARIANTS.items()):
        model = randomize(build(), i)
        torch.manual_seed(1234 + i)
        x = torch.rand(1, 3, resolution, resolution) * 2 - 1
        with torch.no_grad():
            y = model(x)
        path = os.path.join(HERE, name + ".onnx")
        torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **options)
        np.save(os.path.join(HERE, name + ".input.npy"), x.numpy())
        np.save(os.path.join(HERE, name + ".output.npy"), y.numpy())
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: opset {opset}, {params} parameters, {os.path.getsize(path) // 1024} KiB")


if __name__ == "__main__":
    main()
