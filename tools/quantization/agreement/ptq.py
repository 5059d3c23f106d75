import os
WORK = os.environ.get('AGREE_DIR', '/tmp/agree')  # models, cached logits and results go here
os.makedirs(WORK, exist_ok=True)
"""PTQ top-1 agreement study. usage: ptq.py MODEL DATA [exps...]
MODEL: ours (MobileNetSharp random mobilenet_v2 seed 0, ReLU6, inputs in [0,1]) | tv (torchvision quantizable
mobilenet_v2 seed 0, ReLU, ImageNet mean/std) | tvr (tv rescaled, function-preserving)
DATA: fmnist | skimage"""
import sys, json, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import *
torch.manual_seed(0)
MODEL, DATA = sys.argv[1], sys.argv[2]
EXPS = sys.argv[3:]
LOG = open(f'{WORK}/results_{MODEL}_{DATA}.jsonl', 'a')


def log(**kw):
    print(json.dumps(kw), flush=True); LOG.write(json.dumps(kw) + '\n'); LOG.flush()


t0 = time.time()
if DATA == 'fmnist':
    cal, ev = fmnist()
else:
    cal, ev, _ = skimage_crops()
if MODEL == 'ours':  # MobileNetSharp's arch has no mean/std metadata: pixels in [0,1]
    cal = cal * STD + MEAN; ev = ev * STD + MEAN
    model = ours_model()
else:
    model = build_model(0)
    if MODEL == 'tvr':
        model = rescale(model, cal[:16])
fm = fused_copy(model)
import os
cache = f'{WORK}/ref_{MODEL}_{DATA}.pt'
if os.path.exists(cache):
    ref = torch.load(cache)
else:
    ref = run(fm, ev); torch.save(ref, cache)
log(exp='float', **gap_stats(ref), secs=time.time() - t0)


def top2gap(l):
    s = l.std(1); t = l.topk(2, 1).values
    return (t[:, 0] - t[:, 1]) / s


gref = top2gap(ref)


def report(name, out, **extra):
    a = agree(ref, out)
    sqnr = float(10 * torch.log10(ref.pow(2).sum() / (ref - out).pow(2).sum()))
    dis = ref.argmax(1) != out.argmax(1)
    med_dis_gap = float(gref[dis].median()) if dis.any() else None
    torch.save(out, WORK + '/out_%s_%s_%s.pt' % (MODEL, DATA, name.replace(' ', '_').replace('=', '')))
    log(exp=name, agreement=a, logit_sqnr_db=sqnr, median_float_gap_of_flipped=med_dis_gap,
        distinct_q_top1=int(out.argmax(1).unique().numel()), secs=round(time.time() - t0), **extra)


def sim_eval(act=None, wq=False, clip=False, bc=None, quant_logits=True, qp=None, bc_n=128):
    f = fused_copy(model)
    sim = Sim(f, act_kind=act or 'minmax', quant_logits=quant_logits)
    if act:
        if qp is None:
            sim.calibrate(cal)
        else:
            sim.qp = {k: v for k, v in qp.items()}
    if wq:
        quantize_weights(f, clip_search=clip)
    if bc:
        layers = weight_layers(f)
        fmean = pre_act_means(fm, cal[:bc_n], weight_layers(fm))
        sim.enable(bool(act))
        for n, mod in layers:
            qm = pre_act_means(f, cal[:bc_n], [(n, mod)], stop_after=n)[n]
            with torch.no_grad():
                mod.bias -= (qm - fmean[n])
    sim.enable(bool(act))
    out = run(f, ev)
    return out, sim.qp


qps = {}
for e in EXPS:
    if e == 'w':
        out, _ = sim_eval(wq=True); report('weights-only per-channel', out)
    elif e == 'wclip':
        out, _ = sim_eval(wq=True, clip=True); report('weights-only per-channel MSE-clip', out)
    elif e == 'wbc':
        out, _ = sim_eval(wq=True, bc=True); report('weights-only + bias correction', out)
    elif e.startswith('a_'):
        k = e[2:]; out, qps[k] = sim_eval(act=k); report(f'acts-only {k}', out)
    elif e.startswith('a_nologits_'):
        pass
    elif e.startswith('wa_'):  # wa_KIND[_nl][_bc][_clip]
        parts = e.split('_'); k = parts[1]
        nl = 'nl' in parts; bc = 'bc' in parts; clip = 'clip' in parts
        out, qp = sim_eval(act=k, wq=True, clip=clip, bc=bc, quant_logits=not nl, qp=qps.get(k))
        qps.setdefault(k, qp)
        report(f'W8A8 sim act={k}' + (' logits-float' if nl else '') + (' +biascorr' if bc else '') + (' +wMSEclip' if clip else ''), out)
    elif e.startswith('eager_'):
        from torch.ao.quantization import QConfig, get_default_qconfig, prepare, convert, observer as O
        torch.backends.quantized.engine = 'onednn'  # fbgemm is not compiled into Debian's torch 1.13
        q = copy.deepcopy(model).eval(); q.fuse_model()
        if e == 'eager_fbgemm':
            q.qconfig = get_default_qconfig('fbgemm')
        elif e == 'eager_onednn':
            q.qconfig = get_default_qconfig('onednn')
        elif e == 'eager_minmax':
            q.qconfig = QConfig(activation=O.MinMaxObserver.with_args(reduce_range=False),
                                weight=O.default_per_channel_weight_observer)
        prepare(q, inplace=True)
        with torch.no_grad():
            for i in range(0, len(cal), 32):
                q(cal[i:i + 32])
        convert(q, inplace=True)
        out = run(q, ev)
        report(e, out, engine='onednn', qconfig=str(q.qconfig)[:160])
LOG.close()
