import os
WORK = os.environ.get('AGREE_DIR', '/tmp/agree')  # models, cached logits and results go here
os.makedirs(WORK, exist_ok=True)
"""How much smaller must the logit error be for 95% agreement? Scale a measured error (out-ref) by k, and iid noise."""
import sys, torch, glob
ref = torch.load(WORK + '/ref_ours_fmnist.pt')
def agree(a, b): return float((a.argmax(1) == b.argmax(1)).float().mean())
def sqnr(e): return float(10 * torch.log10(ref.pow(2).sum() / e.pow(2).sum()))
s = ref.std(1, keepdim=True); t = ref.topk(2, 1).values; gap = (t[:, 0] - t[:, 1]) / s[:, 0]
print('float: distinct top1', ref.argmax(1).unique().numel(), 'share of commonest', torch.bincount(ref.argmax(1)).max().item() / len(ref))
for q in [0.05, 0.1, 0.165, 0.25, 0.5]: print(f'  gap quantile {q}: {float(gap.quantile(q)):.4f} std')
for f in sys.argv[1:]:
    out = torch.load(f); e = out - ref
    print(f, 'agreement', agree(ref, out), 'SQNR %.1f dB' % sqnr(e))
    for k in [1, 0.7, 0.5, 0.35, 0.25, 0.18, 0.125]:
        print('   error x%.3f  SQNR %.1f dB  agreement %.3f' % (k, sqnr(k * e), agree(ref, ref + k * e)))
g = torch.Generator().manual_seed(0)
for db in [20, 25, 30, 35, 40]:
    n = torch.randn(ref.shape, generator=g); n = n * (ref.pow(2).mean() / n.pow(2).mean()).sqrt() * 10 ** (-db / 20)
    print('iid noise SQNR %d dB agreement %.3f' % (db, agree(ref, ref + n)))
