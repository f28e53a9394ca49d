# PyTorch side of examples/convshape.rs: conv2d + ReLU on the VGG-16 3x3 shapes, best of R runs;
# with `train`, forward and both gradients (what a training step runs per layer), as convshape's.
# Usage: python scripts/torch_convshape.py BATCH R [train]
import torch,time,sys
torch.set_num_threads(2)
shapes=[(3,64,224),(64,64,224),(64,3,224),(64,128,112),(128,64,112),(128,128,112),(128,256,56),(256,128,56),(256,256,56),(256,512,28),(512,256,28),(512,512,28),(512,512,14)]
B=int(sys.argv[1]); R=int(sys.argv[2]); train=len(sys.argv)>3 and sys.argv[3]=='train'
torch.set_grad_enabled(train)
for ci,co,h in shapes:
    x=torch.randn(B,ci,h,h,requires_grad=train); w=torch.randn(co,ci,3,3,requires_grad=train); b=torch.randn(co)
    dy=torch.randn(B,co,h,h)
    def f():
        y=torch.relu(torch.nn.functional.conv2d(x,w,b,padding=1))
        if train: (y*dy).sum().backward()
    f();f()
    best=1e9
    for _ in range(R):
        t=time.perf_counter(); f(); best=min(best,time.perf_counter()-t)
    mac=B*ci*co*9*h*h*(3 if train else 1)
    print(f"{ci:4}->{co:4} {h:4}  {'train' if train else 'fwd'} {best*1e3:7.2f} ms {mac/best/1e9:5.1f} GMAC/s",flush=True)
