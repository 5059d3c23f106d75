import os
WORK = os.environ.get('AGREE_DIR', '/tmp/agree')  # models, cached logits and results go here
os.makedirs(WORK, exist_ok=True)
import sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import *
m = build_model(0)
x = torch.randn(1, 3, 224, 224)
torch.onnx.export(m, x, WORK + '/tv_v2.onnx', opset_version=13, input_names=['input'], output_names=['logits'],
                  dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}})
print('ok')
