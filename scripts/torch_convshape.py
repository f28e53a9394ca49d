# PyTorch side of examples/convshape.rs: conv2d + ReLU on the VGG-16 3x3 shapes, best of R runs.
# Usage: python scripts/torch_convshape.py BATCH R
import torch,time,sys
torch.set_num_threads(2)
shapes=[(3,64,224),(64,64,224),(64,3,224),(64,128,112),(128,64,112),(128,128,112),(128,256,56),(256,128,56),(256,256,56),(256,512,28),(512,256,28),(512,512,28),(512,512,14)]
B=int(sys.argv[1]); R=int(sys.argv[2])
with torch.no_grad():
  for ci,co,h in shapes:
    x=torch.randn(B,ci,h,h); w=torch.randn(co,ci,3,3); b=torch.randn(co)
    f=lambda: torch.relu(torch.nn.functional.conv2d(x,w,b,padding=1))
    f();f()
    best=1e9
    for _ in range(R):
        t=time.perf_counter(); f(); best=min(best,time.perf_counter()-t)
    mac=B*ci*co*9*h*h
    print(f"{ci:4}->{co:4} {h:4}  fwd {best*1e3:7.2f} ms {mac/best/1e9:5.1f} GMAC/s",flush=True)
