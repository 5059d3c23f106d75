import os
WORK = os.environ.get('AGREE_DIR', '/tmp/agree')  # models, cached logits and results go here
os.makedirs(WORK, exist_ok=True)
import gzip, glob, os, copy
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.set_num_threads(2)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
FM = '/usr/share/datasets/fashion-mnist/'


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    n = int.from_bytes(data[4:8], 'big')
    return np.frombuffer(data, np.uint8, offset=16).reshape(n, 28, 28)


def prep_gray(imgs_u8):
    x = torch.from_numpy(np.ascontiguousarray(imgs_u8)).float().div(255.0).unsqueeze(1)
    x = F.interpolate(x, size=(224, 224), mode='bilinear', align_corners=False)
    x = x.repeat(1, 3, 1, 1)
    return (x - MEAN) / STD


def fmnist(n_calib=256, n_eval=1000, seed=0):
    tr = read_idx(FM + 'train-images-idx3-ubyte.gz')
    te = read_idx(FM + 't10k-images-idx3-ubyte.gz')
    rng = np.random.RandomState(seed)
    idx = rng.choice(len(tr), n_calib, replace=False)
    return prep_gray(tr[idx]), prep_gray(te[:n_eval])


def skimage_crops(n_calib=256, n_eval=1000, seed=0):
    from PIL import Image
    d = '/usr/lib/python3/dist-packages/skimage/data/'
    imgs = []
    for p in sorted(glob.glob(d + '*.png') + glob.glob(d + '*.jpg')):
        try:
            im = Image.open(p)
            im = im.convert('RGB')
        except Exception:
            continue
        a = np.asarray(im)
        if a.shape[0] >= 224 and a.shape[1] >= 224:
            imgs.append((os.path.basename(p), a))
    rng = np.random.RandomState(seed)

    def crops(n):
        out = np.empty((n, 224, 224, 3), np.uint8)
        for i in range(n):
            _, a = imgs[rng.randint(len(imgs))]
            y = rng.randint(a.shape[0] - 223); x = rng.randint(a.shape[1] - 223)
            out[i] = a[y:y + 224, x:x + 224]
        t = torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255.0)
        return (t - MEAN) / STD
    names = [n for n, _ in imgs]
    return crops(n_calib), crops(n_eval), names


def build_model(seed=0):
    torch.manual_seed(seed)
    m = torchvision.models.quantization.mobilenet_v2(weights=None, quantize=False)
    return m.eval()


@torch.no_grad()
def run(model, x, bs=50):
    return torch.cat([model(x[i:i + bs]) for i in range(0, len(x), bs)])


def gap_stats(logits):
    s = logits.std(dim=1, keepdim=True)
    t2 = logits.topk(2, dim=1).values
    gap = (t2[:, 0] - t2[:, 1]) / s[:, 0]
    top1 = logits.argmax(1)
    return dict(median_gap_std=float(gap.median()), distinct_top1=int(top1.unique().numel()),
                most_common_share=float(torch.bincount(top1).max()) / len(top1))


def agree(a, b):
    return float((a.argmax(1) == b.argmax(1)).float().mean())


# ---------------------------------------------------------------- fake-quant simulation
class Percentile:
    """per-tensor asymmetric uint8 range clipping the outer p% at each end (sampled)"""
    def __init__(self, p=99.999):
        self.p = p; self.lo = []; self.hi = []

    def __call__(self, x):
        v = x.detach().flatten()
        if v.numel() > 4_000_000:
            v = v[torch.randint(v.numel(), (4_000_000,))]
        q = torch.tensor([1 - self.p / 100, self.p / 100])
        lo, hi = torch.quantile(v, q)
        self.lo.append(float(lo)); self.hi.append(float(hi))
        return x

    def calculate_qparams(self):
        lo = min(0.0, float(np.mean(self.lo))); hi = max(0.0, float(np.mean(self.hi)))
        scale = max((hi - lo) / 255.0, 1e-8)
        zp = int(np.clip(round(-lo / scale), 0, 255))
        return torch.tensor([scale]), torch.tensor([zp])


def make_obs(kind):
    from torch.ao.quantization import observer as O
    if kind == 'minmax':
        return O.MinMaxObserver(dtype=torch.quint8, reduce_range=False)
    if kind == 'minmax_rr':
        return O.MinMaxObserver(dtype=torch.quint8, reduce_range=True)
    if kind == 'hist':
        return O.HistogramObserver(dtype=torch.quint8, reduce_range=False)
    if kind == 'hist_rr':
        return O.HistogramObserver(dtype=torch.quint8, reduce_range=True)
    if kind.startswith('pct'):
        return Percentile(float(kind[3:]))
    raise ValueError(kind)


def act_points(fm):
    """(name, module) whose output is an int8 activation in the eager-mode quantized graph"""
    pts = [('quant', fm.quant)]
    mods = dict(fm.features.named_modules())
    cr = {n for n, m in mods.items() if isinstance(m, nn.intrinsic.ConvReLU2d)}
    for name, mod in mods.items():
        parent = name.rsplit('.', 1)[0] if '.' in name else ''
        if name in cr or (type(mod) is nn.Conv2d and parent not in cr):
            pts.append(('features.' + name, mod))
        if isinstance(mod, nn.quantized.FloatFunctional) and mods[parent].use_res_connect:
            pts.append(('features.' + name + '.add', mod.activation_post_process))
    pts.append(('logits', fm.classifier[1]))
    return pts


def weight_layers(fm):
    """conv / linear modules that own weights (inner conv of fused ConvReLU2d)"""
    return [(n, m) for n, m in fm.named_modules() if type(m) in (nn.Conv2d, nn.Linear)]


def fused_copy(model):
    fm = copy.deepcopy(model).eval()
    fm.fuse_model()
    return fm


class Sim:
    """Fake-quant simulation of the eager int8 graph on a fused float model."""
    def __init__(self, fm, act_kind=None, quant_logits=True, quant_avgpool=True):
        self.fm = fm
        self.pts = act_points(fm)
        if not quant_logits:
            self.pts = [p for p in self.pts if p[0] != 'logits']
        self.act_kind = act_kind
        self.qp = {}
        self.hooks = []
        self.mode = 'off'
        self.quant_avgpool = quant_avgpool
        self.last_feat = 'features.18'
        for name, mod in self.pts:
            self.hooks.append(mod.register_forward_hook(self._hook(name)))
        if quant_avgpool:
            self.hooks.append(fm.classifier[1].register_forward_pre_hook(self._pool_hook))
        self.obs = {}

    def _hook(self, name):
        def h(mod, inp, out):
            if self.mode == 'observe':
                self.obs[name](out.detach())
                return out
            if self.mode == 'quant':
                s, z = self.qp[name]
                return torch.fake_quantize_per_tensor_affine(out, s, z, 0, 255)
            return out
        return h

    def _pool_hook(self, mod, inp):
        if self.mode == 'quant':
            s, z = self.qp[self.last_feat]
            return (torch.fake_quantize_per_tensor_affine(inp[0], s, z, 0, 255),)
        return None

    @torch.no_grad()
    def calibrate(self, x, bs=32):
        self.obs = {n: make_obs(self.act_kind) for n, _ in self.pts}
        self.mode = 'observe'
        for i in range(0, len(x), bs):
            self.fm(x[i:i + bs])
        self.mode = 'off'
        for n, o in self.obs.items():
            s, z = o.calculate_qparams()
            self.qp[n] = (float(s.flatten()[0]), int(z.flatten()[0]))
        self.obs = {}

    def enable(self, on=True):
        self.mode = 'quant' if on else 'off'


@torch.no_grad()
def quantize_weights(fm, clip_search=False):
    """per-channel symmetric int8 weights (PyTorch default_per_channel_weight_observer semantics)"""
    for n, m in weight_layers(fm):
        w = m.weight.data
        wf = w.reshape(w.shape[0], -1)
        amax = wf.abs().max(1).values.clamp_min(1e-12)
        if clip_search:
            best = None
            for r in np.linspace(0.5, 1.0, 26):
                s = amax * r / 127.5
                q = (wf / s[:, None]).round().clamp(-128, 127) * s[:, None]
                err = ((q - wf) ** 2).sum(1)
                if best is None:
                    best = (err, s)
                else:
                    better = err < best[0]
                    best = (torch.where(better, err, best[0]), torch.where(better, s, best[1]))
            scale = best[1]
        else:
            scale = amax / 127.5  # (max-min)/255 over symmetric range, as torch's observer
        q = (wf / scale[:, None]).round().clamp(-128, 127) * scale[:, None]
        m.weight.data = q.reshape(w.shape)
        if m.bias is None:
            m.bias = nn.Parameter(torch.zeros(w.shape[0]))


def pre_act_means(fm, x, layers, bs=32, stop_after=None, quant_sim=None):
    """mean per output channel of each weight layer's output (before ReLU) over N,H,W"""
    sums = {}; cnt = {}
    hs = []

    class Stop(Exception):
        pass

    def mk(n):
        def h(mod, inp, out):
            d = (0, 2, 3) if out.dim() == 4 else (0,)
            sums[n] = sums.get(n, 0) + out.double().sum(d)
            cnt[n] = cnt.get(n, 0) + out.numel() // out.shape[1]
            if stop_after is not None and n == stop_after:
                raise Stop()
        return h
    for n, m in layers:
        h = m.register_forward_hook(mk(n))
        m._forward_hooks.move_to_end(h.id, last=False)  # see the output before any fake-quant hook
        hs.append(h)
    with torch.no_grad():
        for i in range(0, len(x), bs):
            try:
                fm(x[i:i + bs])
            except Stop:
                pass
    for h in hs:
        h.remove()
    return {n: (sums[n] / cnt[n]).float() for n in sums}


@torch.no_grad()
def rescale(model, x):
    """Function-preserving (up to a positive logit scale) per-conv rescaling so every activation has std ~1.
    Valid because all biases are zero (fresh BN: gamma=1, beta=0, mean=0, var=1) and ReLU is positively
    homogeneous: in a residual block expand*dw*project scales multiply to 1, so branch and skip stay in ratio."""
    from torchvision.models.mobilenetv2 import InvertedResidual
    m = copy.deepcopy(model).eval()
    convs_done = []

    def out_std(conv):
        st = {}
        h = conv.register_forward_hook(lambda mm, i, o: st.__setitem__('s', float(o.std())))
        m(x)
        h.remove()
        return st['s']
    for blk in m.features:
        convs = [c for c in blk.modules() if isinstance(c, nn.Conv2d)]
        if isinstance(blk, InvertedResidual) and blk.use_res_connect:
            prod = 1.0
            for c in convs[:-1]:
                f = 1.0 / out_std(c); c.weight.mul_(f); prod *= f
            convs[-1].weight.div_(prod)
        else:
            for c in convs:
                c.weight.mul_(1.0 / out_std(c))
    lin = m.classifier[1]
    st = {}
    h = lin.register_forward_hook(lambda mm, i, o: st.__setitem__('s', float(o.std())))
    m(x); h.remove()
    lin.weight.mul_(1.0 / st['s'])
    return m


@torch.no_grad()
def builder_like_init(model, seed=0):
    """Re-initialise like MobileNetSharp's GraphBuilder: He-normal fan_in convs (depthwise fan_in = 9),
    random BN (gamma U(.8,1.2), beta U(-.1,.1), mean U(-.1,.1), var U(.5,1.5)), Linear N(0,.01) + bias U(-.01,.01)."""
    g = torch.Generator().manual_seed(seed)
    m = copy.deepcopy(model)
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            fan_in = mod.weight[0].numel()
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
        elif isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            u = lambda lo, hi: torch.rand(c, generator=g) * (hi - lo) + lo
            mod.weight.copy_(u(.8, 1.2)); mod.bias.copy_(u(-.1, .1))
            mod.running_mean.copy_(u(-.1, .1)); mod.running_var.copy_(u(.5, 1.5))
        elif isinstance(mod, nn.Linear):
            mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * 0.01)
            mod.bias.copy_(torch.rand(mod.bias.shape, generator=g) * 0.02 - 0.01)
    return m.eval()


# ---- generic versions (work for ReLU and ReLU6 models); override the earlier definitions
from torchvision.ops.misc import Conv2dNormActivation
from torchvision.models.mobilenetv2 import InvertedResidual


@torch.no_grad()
def fused_copy(model):
    """fold every BatchNorm into the preceding conv (conv gets a bias, BN becomes Identity)"""
    fm = copy.deepcopy(model).eval()
    for seq in [m for m in fm.modules() if isinstance(m, nn.Sequential)]:
        keys = list(seq._modules.keys())
        for i in range(len(keys) - 1):
            c, b = seq._modules[keys[i]], seq._modules[keys[i + 1]]
            if isinstance(c, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                s = b.weight / torch.sqrt(b.running_var + b.eps)
                bias = c.bias if c.bias is not None else torch.zeros(c.out_channels)
                c.weight.mul_(s.view(-1, 1, 1, 1))
                c.bias = nn.Parameter(b.bias + (bias - b.running_mean) * s)
                seq._modules[keys[i + 1]] = nn.Identity()
    return fm


def act_points(fm):
    pts = [('quant', fm.quant)]
    for name, mod in fm.features.named_modules():
        if isinstance(mod, Conv2dNormActivation):
            pts.append(('features.' + name, mod))
        elif isinstance(mod, InvertedResidual):
            last = [c for c in mod.conv if isinstance(c, nn.Conv2d)][-1]
            pts.append(('features.' + name + '.proj', last))
            if mod.use_res_connect:
                pts.append(('features.' + name + '.add', mod.skip_add.activation_post_process))
    pts.append(('logits', fm.classifier[1]))
    return pts


def relu6_model(model):
    m = copy.deepcopy(model)
    for mod in m.modules():
        for k, c in list(mod._modules.items()):
            if type(c) is nn.ReLU:
                mod._modules[k] = nn.ReLU6()
    return m.eval()


@torch.no_grad()
def ours_model(path=WORK + '/ours_v2.onnx'):
    """torchvision MobileNetV2 (ReLU6) with the weights of MobileNetSharp's random mobilenet_v2 (seed 0) copied in"""
    import onnx
    from onnx import numpy_helper
    g = onnx.load(path).graph
    init = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
    convs = [n.input[1] for n in g.node if n.op_type == 'Conv']
    bns = [n.input[1:5] for n in g.node if n.op_type == 'BatchNormalization']
    gemm = [n for n in g.node if n.op_type == 'Gemm'][0]
    m = relu6_model(build_model(0))
    tc = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
    tb = [x for x in m.modules() if isinstance(x, nn.BatchNorm2d)]
    assert len(tc) == len(convs) and len(tb) == len(bns)
    for c, w in zip(tc, convs):
        assert c.weight.shape == init[w].shape, (c, init[w].shape)
        c.weight.copy_(init[w])
    for b, (w, bb, mu, var) in zip(tb, bns):
        b.weight.copy_(init[w]); b.bias.copy_(init[bb]); b.running_mean.copy_(init[mu]); b.running_var.copy_(init[var])
    lin = m.classifier[1]
    attrs = {a.name: a for a in gemm.attribute}
    W = init[gemm.input[1]]
    if 'transB' in attrs and attrs['transB'].i == 1:
        lin.weight.copy_(W)
    else:
        lin.weight.copy_(W.t())
    lin.bias.copy_(init[gemm.input[2]])
    return m.eval()
