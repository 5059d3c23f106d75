#!/usr/bin/env python3
# Run with /usr/bin/python3 (Debian python3-torch, python3-torchvision).
"""Parameter counts of the issue-7 benchmark network, from torchvision, for MobileNetSharp's small-input test.

torchvision's mobilenet_v2(width_mult=0.5, num_classes=10), first conv changed to 1 input channel, and
the stem and the first stride-2 stage (the 24-channel stage, 16 at width 0.5) run at stride 1.
"""
import torch
import torchvision

m = torchvision.models.mobilenet_v2(width_mult=0.5, num_classes=10)
stem = m.features[0][0]
m.features[0][0] = torch.nn.Conv2d(1, stem.out_channels, 3, stride=1, padding=1, bias=False)
# features[2] is the first block of the first stride-2 stage (t=6, c=24*0.5 -> 16, n=2, s=2); its depthwise conv is conv[1][0].
m.features[2].conv[1][0].stride = (1, 1)
print(sum(p.numel() for p in m.parameters()))
with torch.no_grad():
    print(tuple(m.features(torch.zeros(1, 1, 28, 28)).shape))

# Multiply-accumulates of the convolutions and the classifier (what MobileNetSharp's CostModel counts).
macs = 0
def hook(mod, inp, out):
    global macs
    if isinstance(mod, torch.nn.Conv2d):
        macs += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
    elif isinstance(mod, torch.nn.Linear):
        macs += mod.in_features * mod.out_features
for mod in m.modules():
    if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
        mod.register_forward_hook(hook)
m.eval()
with torch.no_grad():
    m(torch.zeros(1, 1, 28, 28))
print(macs)
