"""PyTorch twin of `layerinv train --layers pool1 --crop 64 --batch 8` on the bundled VGG-16 trunk:
the same photos, crops, flips, Adam, warm-up and cosine schedule, loss and held-out PSNR (centre
224 crops of the val/ photos, 0-255 after undoing Caffe's preprocessing). Used to find that
candle's default initialisation crippled our decoders (weights/README.md).
Usage: python3 scripts/torch_train_pool1.py STEPS [default|kaiming] [LR] [sae|swwae]
Needs torch, pillow, safetensors; photos from scripts/gather_photos.py."""
import sys, glob, math, random, time, os
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from PIL import Image
from safetensors.numpy import load_file
torch.set_num_threads(2)
steps = int(sys.argv[1]); init = sys.argv[2] if len(sys.argv) > 2 else 'default'
lr_peak = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-3
kind = sys.argv[4] if len(sys.argv) > 4 else 'sae'
crop = 64; B = 8
W = load_file(os.path.join(os.path.dirname(__file__), '..', 'weights', 'vgg16_imagenet_trunk.f16.safetensors'))
c1 = nn.Conv2d(3, 64, 3, padding=1); c2 = nn.Conv2d(64, 64, 3, padding=1)
for c, i in ((c1, 0), (c2, 2)):
    c.weight.data = torch.from_numpy(W[f'features.{i}.weight'].astype(np.float32)); c.bias.data = torch.from_numpy(W[f'features.{i}.bias'].astype(np.float32))
    c.requires_grad_(False)
MEAN = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
def prep(a):  # HWC uint8 RGB -> 3HW BGR minus mean
    t = torch.from_numpy(np.ascontiguousarray(a[:, :, ::-1])).permute(2, 0, 1).float()
    return t - MEAN[0]
def load(p, size):
    im = Image.open(p).convert('RGB'); w, h = im.size; s = size / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    return np.asarray(im.resize((nw, nh), Image.BILINEAR))
def centre(a, size):
    h, w, _ = a.shape; y, x = (h - size) // 2, (w - size) // 2
    return a[y:y + size, x:x + size]
D = os.environ.get('LAYERINV_PHOTOS', os.path.expanduser('~/.cache/layerinv/photos'))
train = [load(p, 224) for p in sorted(glob.glob(D + '/train/*'))]
val = [prep(centre(load(p, 224), 224)) for p in sorted(glob.glob(D + '/val/*'))]
d1 = nn.Conv2d(64, 64, 3, padding=1); d2 = nn.Conv2d(64, 3, 3, padding=1)
if init == 'kaiming':
    for d in (d1, d2):
        nn.init.kaiming_normal_(d.weight)
params = list(d1.parameters()) + list(d2.parameters())
opt = torch.optim.Adam(params, lr_peak)
def enc(x):
    y = F.relu(c2(F.relu(c1(x))))
    return F.max_pool2d(y, 2, 2, return_indices=True)
def dec(zi):
    z, idx = zi
    if kind == 'swwae': u = F.max_unpool2d(z, idx, 2, 2)
    else:
        n, c, h, w = z.shape; u = z.new_zeros(n, c, 2 * h, 2 * w); u[:, :, 1::2, 1::2] = z
    return d2(F.relu(d1(u)))
def lr_at(s, total):
    warm = min((s + 1) / 50, 1.0); t = min(s / total, 1.0)
    return lr_peak * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
rng = random.Random(0); t0 = time.time()
for s in range(steps):
    xs = []
    for _ in range(B):
        a = rng.choice(train); h, w, _ = a.shape
        y, x = rng.randrange(h - crop + 1), rng.randrange(w - crop + 1); a = a[y:y + crop, x:x + crop]
        if rng.random() < 0.5: a = a[:, ::-1]
        xs.append(prep(a))
    x = torch.stack(xs)
    for g in opt.param_groups: g['lr'] = lr_at(s, steps)
    with torch.no_grad(): z = enc(x)
    loss = F.mse_loss(dec(z), x) / 255 ** 2
    opt.zero_grad(); loss.backward(); opt.step()
    if s % 100 == 0 or s == steps - 1: print(s, loss.item(), f'{time.time() - t0:.0f}s', flush=True)
ps = []
with torch.no_grad():
    for x in val:
        y = dec(enc(x[None]))[0]
        a = (x + MEAN[0]).round().clamp(0, 255); b = (y + MEAN[0]).round().clamp(0, 255)
        mse = ((a - b) / 255).pow(2).mean().item(); ps.append(-10 * math.log10(mse))
print('val PSNR', np.mean(ps))
