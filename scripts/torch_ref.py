"""PyTorch reference for the layer-inversion workload: VGG-16 encoder (frozen), per-layer decoders
mirroring it, MSE loss, Adam. SAE/SWWAE: unpool (fixed or recorded switches) -> 3x3 convs, ReLU
except the last layer. Up-conv (Dosovitskiy & Brox as layerinv builds it, docs/upconv.md): each
pooling undone by nearest-neighbour x2 upsampling and a 5x5 convolution, then the same 3x3 convs,
leaky ReLU 0.2 except the last layer; written as a PyTorch user would (upsample, then convolve).

The performance anchor: what a user would otherwise run. Random weights (timing only).
Prints one JSON object with the same keys as `layerinv bench --json`:
  device, threads, batch, dtype,
  encoder_fwd_ms_per_img                 (batch `--batch`, all taps in one pass, no grad)
  train_img_per_s: {layer: {kind}}       (encoder fwd no-grad + decoder fwd/bwd + optimizer step)
  infer_all_ms                           (batch 1: one encoder pass + every decoder in --layers, every kind)
Usage: python3 scripts/torch_ref.py [--device cpu|cuda] [--threads N] [--batch 8] [--steps 5]
                            [--dtype fp32|bf16] [--layers pool1,pool2,pool3,pool4,pool5]
                            [--kinds sae,swwae,upconv]
"""
import argparse, time, json
import torch, torch.nn as nn, torch.nn.functional as F

CFG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M']
LAYERS = ['pool1', 'pool2', 'pool3', 'pool4', 'pool5', 'fc6', 'fc7', 'fc8']


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList()
        cin, blk = 3, []
        for v in CFG:
            if v == 'M':
                self.blocks.append(nn.Sequential(*blk)); blk = []
            else:
                blk += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=True)]; cin = v
        self.fc6, self.fc7, self.fc8 = nn.Linear(25088, 4096), nn.Linear(4096, 4096), nn.Linear(4096, 1000)

    def all(self, x):
        """Every layer's code in one pass: ({layer: code}, switches)."""
        codes, sw = {}, []
        for i, b in enumerate(self.blocks):
            x, idx = F.max_pool2d(b(x), 2, 2, return_indices=True)
            sw.append(idx); codes[LAYERS[i]] = x
        x = torch.relu(self.fc6(x.flatten(1))); codes['fc6'] = x
        x = torch.relu(self.fc7(x)); codes['fc7'] = x
        codes['fc8'] = self.fc8(x)
        return codes, sw

    def forward(self, x, upto):
        """Returns (code, switches list)."""
        sw = []
        for i, b in enumerate(self.blocks):
            x = b(x)
            x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
            sw.append(idx)
            if upto == LAYERS[i]:
                return x, sw
        x = torch.relu(self.fc6(x.flatten(1)))
        if upto == 'fc6': return x, sw
        x = torch.relu(self.fc7(x))
        if upto == 'fc7': return x, sw
        return self.fc8(x), sw


class Decoder(nn.Module):
    """Mirror of the encoder from layer `frm` down to the image. kind: 'sae' (fixed switches),
    'swwae' (recorded switches) or 'upconv' (upsample + 5x5 convolution, leaky ReLU)."""
    def __init__(self, frm, kind):
        super().__init__()
        self.kind, self.frm = kind, frm
        li = LAYERS.index(frm)
        self.fcs = nn.ModuleList()
        if li >= 5:
            dims = {'fc8': [1000, 4096, 4096, 25088], 'fc7': [4096, 4096, 25088], 'fc6': [4096, 25088]}[frm]
            self.fcs = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        nblocks = min(li, 4) + 1
        # per encoder block, list of (cin,cout) of its convs
        enc_blocks, cin, cur = [], 3, []
        for v in CFG:
            if v == 'M': enc_blocks.append(cur); cur = []
            else: cur.append((cin, v)); cin = v
        self.dec = nn.ModuleList()
        self.up = nn.ModuleList()
        for b in reversed(enc_blocks[:nblocks]):
            self.dec.append(nn.ModuleList(nn.Conv2d(co, ci, 3, padding=1) for ci, co in reversed(b)))
            if kind == 'upconv':
                c = b[-1][1]
                self.up.append(nn.Conv2d(c, c, 5, padding=2))
        self.nblocks = nblocks
        self.slope = 0.2 if kind == 'upconv' else 0.0

    def act(self, x):
        return F.leaky_relu(x, self.slope) if self.slope else torch.relu(x)

    def unpool(self, x, idx, bi):
        if self.kind == 'upconv':
            return self.act(self.up[bi](F.interpolate(x, scale_factor=2, mode='nearest')))
        if self.kind == 'swwae':
            return F.max_unpool2d(x, idx, 2, 2)
        n, c, h, w = x.shape
        y = x.new_zeros(n, c, 2 * h, 2 * w)
        y[:, :, 1::2, 1::2] = x  # fixed switch at window offset k//2, as the official code
        return y

    def forward(self, code, sw):
        x = code
        if len(self.fcs):
            for i, fc in enumerate(self.fcs):
                x = self.act(fc(x))
            x = x.view(-1, 512, 7, 7)
        for bi, convs in enumerate(self.dec):
            x = self.unpool(x, sw[self.nblocks - 1 - bi], bi)
            for j, c in enumerate(convs):
                x = c(x)
                last = bi == len(self.dec) - 1 and j == len(convs) - 1
                if not last: x = self.act(x)
        return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--threads', type=int, default=0)
    ap.add_argument('--steps', type=int, default=5)
    ap.add_argument('--dtype', default='fp32')
    ap.add_argument('--layers', default='pool1,pool2,pool3,pool4,pool5')
    ap.add_argument('--kinds', default='sae,swwae,upconv')
    a = ap.parse_args()
    kinds = a.kinds.split(',')
    if a.threads: torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.backends.cudnn.benchmark = True
    enc = Encoder().to(dev).eval()
    amp = torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=a.dtype == 'bf16')
    sync = (lambda: torch.cuda.synchronize()) if dev.type == 'cuda' else (lambda: None)
    out = {'device': str(torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'cpu'), 'torch': torch.__version__,
           'threads': torch.get_num_threads(), 'batch': a.batch, 'dtype': a.dtype, 'train_img_per_s': {}}
    layers = a.layers.split(',')
    x = torch.randn(a.batch, 3, 224, 224, device=dev)
    def enc_fwd():
        with torch.no_grad(), amp:
            enc.all(x)
    for _ in range(2): enc_fwd()
    sync(); t = time.perf_counter()
    for _ in range(a.steps): enc_fwd()
    sync(); out['encoder_fwd_ms_per_img'] = round((time.perf_counter() - t) / (a.steps * a.batch) * 1000, 3)
    for layer in layers:
        for kind in kinds:
            dec = Decoder(layer, kind).to(dev)
            opt = torch.optim.Adam(dec.parameters(), 1e-4)
            def step():
                with torch.no_grad(), amp:
                    code, sw = enc(x, layer)
                with amp:
                    y = dec(code, sw)
                    loss = F.mse_loss(y.float(), x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            for _ in range(2): step()
            sync(); t = time.perf_counter()
            for _ in range(a.steps): step()
            sync(); dt = time.perf_counter() - t
            out['train_img_per_s'].setdefault(layer, {})[kind] = round(a.batch * a.steps / dt, 2)
    if True:
        decs = {(l, k): Decoder(l, k).to(dev).eval() for l in layers for k in kinds}
        x = torch.randn(1, 3, 224, 224, device=dev)
        def infer():
            with torch.no_grad(), amp:
                codes, sw = enc.all(x)
                for l in layers:
                    for k in kinds:
                        decs[(l, k)](codes[l], sw)
        for _ in range(2): infer()
        sync(); t = time.perf_counter()
        n = 10 if dev.type == 'cuda' else 2
        for _ in range(n): infer()
        sync()
        out['infer_all_ms'] = round((time.perf_counter() - t) / n * 1000, 1)
    print(json.dumps(out))


if __name__ == '__main__':
    main()
