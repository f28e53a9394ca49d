# PyTorch side of examples/latency.rs: the batch-1 latency of torch_ref.py split into the encoder pass
# and each decoder (best of N), then whole passes one by one. Usage: python scripts/torch_latency.py N
import os, sys, time, torch
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'reference'))
from torch_ref import Encoder, Decoder
torch.set_num_threads(2)
R=int(sys.argv[1]) if len(sys.argv)>1 else 5
with torch.no_grad():
    enc=Encoder().eval(); x=torch.randn(1,3,224,224)
    decs={(l,k):Decoder(l,k).eval() for l in ['pool2','pool5'] for k in ['sae','swwae']}
    codes,sw=enc.all(x)
    def t(f):
        f(); best=1e9
        for _ in range(R):
            s=time.perf_counter(); f(); best=min(best,time.perf_counter()-s)
        return best*1e3
    print('encoder_all %.1f'%t(lambda: enc.all(x)))
    def trunk():
        y=x
        for b in enc.blocks: y,_=torch.nn.functional.max_pool2d(b(y),2,2,return_indices=True)
    print('encoder_trunk %.1f'%t(trunk))
    for (l,k),d in decs.items(): print(f'{l}_{k} %.1f'%t(lambda: d(codes[l],sw)))
    for _ in range(R):
        s=time.perf_counter()
        codes,sw=enc.all(x)
        for (l,k),d in decs.items(): d(codes[l],sw)
        print('infer_all %.1f'%((time.perf_counter()-s)*1e3))
