"""PyTorch's kernel times for one training step (and one encoder pass), beside torch_ref.py.
Usage: python3 torch_prof.py LAYER KIND BATCH"""
import sys, torch, torch.nn.functional as F
sys.path.insert(0, __import__('os').path.dirname(__file__))
from torch_ref import Encoder, Decoder
layer, kind, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.backends.cudnn.benchmark = True
dev = torch.device('cuda')
enc = Encoder().to(dev).eval()
dec = Decoder(layer, kind).to(dev)
opt = torch.optim.Adam(dec.parameters(), 1e-4)
x = torch.randn(batch, 3, 224, 224, device=dev)
def step():
    with torch.no_grad():
        code, sw = enc(x, layer)
    y = dec(code, sw)
    loss = F.mse_loss(y, x)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
for _ in range(3): step()
torch.cuda.synchronize()
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA]) as p:
    step()
    torch.cuda.synchronize()
print(p.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))
