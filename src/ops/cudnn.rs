//! cuDNN convolution for f32 tensors on CUDA: the forward pass (called from the `Conv` op in
//! `conv.rs`, which adds bias and ReLU in one more kernel), and the input and weight gradients as
//! candle custom ops, so a decoder's whole backward pass runs in cuDNN (candle's own CUDA backward
//! goes through a naive transposed-convolution kernel).
//!
//! As PyTorch with `cudnn.benchmark = True`: the first call of each geometry times every cuDNN
//! algorithm for it (`cudnnFind*`) and keeps the fastest; tensor-core math is allowed, so f32
//! convolutions use TF32 on Ampere and later (set `NVIDIA_TF32_OVERRIDE=0` to forbid it, as the
//! CUDA tests do to compare exactly). Descriptors and choices are kept per thread, since cuDNN
//! handles must not be shared between threads.

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DevicePtr, DevicePtrMut};
use candle_core::cuda_backend::DeviceId;
use candle_core::{CpuStorage, CudaDevice, CudaStorage, CustomOp2, Layout, Result, Shape, Tensor};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

/// `(dX, dW)` of `conv2d(x, w)` (stride 1, zero padding `pad`) for the output gradient `dy`.
pub fn backward(x: &Tensor, w: &Tensor, dy: &Tensor, pad: usize) -> Result<(Tensor, Tensor)> {
    let (_, _, h, wd) = x.dims4()?;
    let (_, _, k, _) = w.dims4()?;
    let dy = dy.contiguous()?;
    let dx = dy.apply_op2_no_bwd(&w.contiguous()?, &ConvBackwardData { pad, hw: (h, wd) })?;
    let dw = x.contiguous()?.apply_op2_no_bwd(&dy, &ConvBackwardFilter { pad, k })?;
    Ok((dx, dw))
}

fn ck(s: sys::cudnnStatus_t) -> Result<()> {
    if s == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        Ok(())
    } else {
        candle_core::bail!("cuDNN: {s:?}")
    }
}

fn drv<T>(r: std::result::Result<T, candle_core::cuda_backend::cudarc::driver::DriverError>) -> Result<T> {
    r.map_err(candle_core::Error::wrap)
}

/// One convolution geometry (stride 1): the key for descriptors and algorithm choices.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Geom {
    n: usize,
    cin: usize,
    h: usize,
    w: usize,
    cout: usize,
    k: usize,
    pad: usize,
}

impl Geom {
    fn out_hw(&self) -> (usize, usize) {
        (self.h + 2 * self.pad + 1 - self.k, self.w + 2 * self.pad + 1 - self.k)
    }
    fn x_len(&self) -> usize {
        self.n * self.cin * self.h * self.w
    }
    fn y_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.n * self.cout * oh * ow
    }
    fn w_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }
}

/// An algorithm cuDNN timed fastest, the math type it ran with and its workspace.
#[derive(Clone, Copy)]
struct Choice<A> {
    algo: A,
    math: sys::cudnnMathType_t,
    workspace: usize,
}

/// Descriptors of one geometry, and the algorithm chosen for each direction once it was needed.
/// Never destroyed: a model has a few dozen geometries.
struct Plan {
    x: sys::cudnnTensorDescriptor_t,
    y: sys::cudnnTensorDescriptor_t,
    w: sys::cudnnFilterDescriptor_t,
    conv: sys::cudnnConvolutionDescriptor_t,
    fwd: Option<Choice<sys::cudnnConvolutionFwdAlgo_t>>,
    bwd_data: Option<Choice<sys::cudnnConvolutionBwdDataAlgo_t>>,
    bwd_filter: Option<Choice<sys::cudnnConvolutionBwdFilterAlgo_t>>,
}

impl Plan {
    fn new(g: &Geom) -> Result<Self> {
        let i = |v: usize| v as i32;
        let (oh, ow) = g.out_hw();
        let (nchw, f32t) = (sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW, sys::cudnnDataType_t::CUDNN_DATA_FLOAT);
        let mut p = Plan {
            x: std::ptr::null_mut(),
            y: std::ptr::null_mut(),
            w: std::ptr::null_mut(),
            conv: std::ptr::null_mut(),
            fwd: None,
            bwd_data: None,
            bwd_filter: None,
        };
        // SAFETY: plain descriptor set-up; every out-pointer is a live field of `p`.
        unsafe {
            ck(sys::cudnnCreateTensorDescriptor(&mut p.x))?;
            ck(sys::cudnnSetTensor4dDescriptor(p.x, nchw, f32t, i(g.n), i(g.cin), i(g.h), i(g.w)))?;
            ck(sys::cudnnCreateTensorDescriptor(&mut p.y))?;
            ck(sys::cudnnSetTensor4dDescriptor(p.y, nchw, f32t, i(g.n), i(g.cout), i(oh), i(ow)))?;
            ck(sys::cudnnCreateFilterDescriptor(&mut p.w))?;
            ck(sys::cudnnSetFilter4dDescriptor(p.w, f32t, nchw, i(g.cout), i(g.cin), i(g.k), i(g.k)))?;
            ck(sys::cudnnCreateConvolutionDescriptor(&mut p.conv))?;
            ck(sys::cudnnSetConvolution2dDescriptor(
                p.conv,
                i(g.pad),
                i(g.pad),
                1,
                1,
                1,
                1,
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                f32t,
            ))?;
        }
        Ok(p)
    }
}

/// Per thread: a cuDNN handle per device (bound to candle's stream) and the plans.
#[derive(Default)]
struct State {
    handles: HashMap<DeviceId, sys::cudnnHandle_t>,
    plans: HashMap<(DeviceId, Geom), Plan>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

/// Run `f` with this thread's handle for `dev` and the plan for `g`.
fn with_plan<T>(dev: &CudaDevice, g: Geom, f: impl FnOnce(sys::cudnnHandle_t, &mut Plan) -> Result<T>) -> Result<T> {
    let stream = dev.cuda_stream();
    drv(stream.context().bind_to_thread())?;
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        let handle = match s.handles.get(&dev.id()) {
            Some(h) => *h,
            None => {
                let mut h = std::ptr::null_mut();
                // SAFETY: creates a handle and points it at candle's stream, which outlives it
                // (the device keeps the stream for the life of the program).
                unsafe {
                    ck(sys::cudnnCreate(&mut h))?;
                    ck(sys::cudnnSetStream(h, stream.cu_stream() as _))?;
                }
                s.handles.insert(dev.id(), h);
                h
            }
        };
        let plan = match s.plans.entry((dev.id(), g)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Plan::new(&g)?),
        };
        f(handle, plan)
    })
}

/// One row of cuDNN's algorithm list: (algorithm, status, math type, workspace bytes).
type Row<A> = (A, sys::cudnnStatus_t, sys::cudnnMathType_t, usize);

/// Choose the algorithm for one direction of one geometry: the fastest that ran in `find`
/// (`cudnnFind*`, which times them all; rows come sorted by time), else the first that cuDNN's
/// heuristics (`*_v7`) offer. Tensor-core math (TF32 for f32) is allowed in both, as in PyTorch.
/// `LAYERINV_CUDNN_LOG=1` prints each choice to stderr.
fn choose<A: Copy + std::fmt::Debug>(
    what: &str,
    g: &Geom,
    conv: sys::cudnnConvolutionDescriptor_t,
    find: impl FnOnce() -> Result<Vec<Row<A>>>,
    heuristic: impl FnOnce() -> Result<Vec<Row<A>>>,
) -> Result<Choice<A>> {
    // SAFETY: sets one field of a live descriptor (the last launch may have left another).
    unsafe { ck(sys::cudnnSetConvolutionMathType(conv, sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH))? };
    let ok = |rows: &[Row<A>]| {
        rows.iter().find(|r| r.1 == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS).map(|r| Choice { algo: r.0, math: r.2, workspace: r.3 })
    };
    let timed = find()?;
    let (choice, how) = match ok(&timed) {
        Some(c) => (c, "timed"),
        None => match ok(&heuristic()?) {
            Some(c) => (c, "heuristic"),
            None => {
                let tried: Vec<_> = timed.iter().map(|r| format!("{:?}: {:?}", r.0, r.1)).collect();
                candle_core::bail!("cuDNN has no {what} algorithm for {g:?} (timed: {})", tried.join(", "))
            }
        },
    };
    if std::env::var_os("LAYERINV_CUDNN_LOG").is_some() {
        let tried: Vec<_> = timed.iter().map(|r| format!("{:?}={:?}", r.0, r.1)).collect();
        eprintln!("cudnn {what} {g:?}: {how} {:?} {:?} workspace {} [{}]", choice.algo, choice.math, choice.workspace, tried.join(" "));
    }
    Ok(choice)
}

fn workspace(dev: &CudaDevice, bytes: usize) -> Result<Option<CudaSlice<u8>>> {
    if bytes == 0 {
        return Ok(None);
    }
    // SAFETY: scratch memory, written by cuDNN before it is read.
    Ok(Some(unsafe { dev.alloc::<u8>(bytes)? }))
}

/// The f32 data of a contiguous storage of `len` elements (what the descriptors describe).
fn view<'a>(s: &'a CudaStorage, l: &Layout, len: usize, what: &str) -> Result<CudaView<'a, f32>> {
    let v = super::cuda::view::<f32>(s, l, what)?;
    if v.len() != len {
        candle_core::bail!("cudnn conv2d: {what} has {} elements, the convolution needs {len}", v.len())
    }
    Ok(v)
}

const ONE: f32 = 1.0;
const ZERO: f32 = 0.0;

fn ptr(p: u64) -> *mut c_void {
    p as usize as *mut c_void
}

fn scale(v: &f32) -> *const c_void {
    v as *const f32 as *const c_void
}

/// Run one cuDNN call on this thread's handle: `pick` returns the (cached) algorithm choice,
/// `call` gets the handle, the plan, the algorithm and the workspace pointer and size.
fn launch<A: Copy>(
    dev: &CudaDevice,
    g: Geom,
    pick: impl FnOnce(sys::cudnnHandle_t, &mut Plan) -> Result<Choice<A>>,
    call: impl FnOnce(sys::cudnnHandle_t, &Plan, A, *mut c_void, usize) -> sys::cudnnStatus_t,
) -> Result<()> {
    with_plan(dev, g, |handle, plan| {
        let c = pick(handle, plan)?;
        let stream = dev.cuda_stream();
        let mut buf = workspace(dev, c.workspace)?;
        let guard = buf.as_mut().map(|b| b.device_ptr_mut(&stream));
        let ws = guard.as_ref().map_or(std::ptr::null_mut(), |(p, _)| ptr(*p));
        // SAFETY: the plan's descriptors describe the buffers the caller passes to `call`.
        unsafe { ck(sys::cudnnSetConvolutionMathType(plan.conv, c.math))? };
        ck(call(handle, plan, c.algo, ws, c.workspace))
    })
}

/// `cudnnFind*` into `n` result slots, reduced to (algo, status, math, memory) rows.
macro_rules! find {
    ($perf:ty, $n:expr, |$res:ident, $got:ident| $call:expr) => {{
        // SAFETY: zeroed plain-data result structs; cuDNN fills `got` of them and allocates its
        // own buffers to time the algorithms.
        let mut $res: [$perf; $n] = [unsafe { std::mem::zeroed() }; $n];
        let mut $got = 0;
        unsafe { ck($call)? };
        $res[..$got as usize].iter().map(|r| (r.algo, r.status, r.mathType, r.memory)).collect::<Vec<_>>()
    }};
}

/// `conv2d(x, w)` (stride 1, zero padding `pad`, no bias) on contiguous f32 storages: the output
/// buffer, its device and shape `(N, Cout, H', W')`.
pub fn forward(xs: &CudaStorage, xl: &Layout, ws: &CudaStorage, wl: &Layout, pad: usize) -> Result<(CudaSlice<f32>, CudaDevice, Shape)> {
    let (n, cin, h, w) = xl.shape().dims4()?;
    let (cout, _, k, _) = wl.shape().dims4()?;
    let g = Geom { n, cin, h, w, cout, k, pad };
    let dev = xs.device().clone();
    let stream = dev.cuda_stream();
    let (x, wt) = (view(xs, xl, g.x_len(), "input")?, view(ws, wl, g.w_len(), "kernel")?);
    // SAFETY: fully written (beta = 0) by the convolution below.
    let mut y = unsafe { dev.alloc::<f32>(g.y_len())? };
    {
        let ((xp, _g1), (wp, _g2), (yp, _g3)) = (x.device_ptr(&stream), wt.device_ptr(&stream), y.device_ptr_mut(&stream));
        let pick = |handle, p: &mut Plan| match p.fwd {
            Some(c) => Ok(c),
            None => {
                let c = choose(
                    "forward",
                    &g,
                    p.conv,
                    || Ok(find!(sys::cudnnConvolutionFwdAlgoPerf_t, 8, |res, got| sys::cudnnFindConvolutionForwardAlgorithm(
                        handle, p.x, p.w, p.conv, p.y, 8, &mut got, res.as_mut_ptr()
                    ))),
                    || Ok(find!(sys::cudnnConvolutionFwdAlgoPerf_t, 8, |res, got| sys::cudnnGetConvolutionForwardAlgorithm_v7(
                        handle, p.x, p.w, p.conv, p.y, 8, &mut got, res.as_mut_ptr()
                    ))),
                )?;
                Ok(*p.fwd.insert(c))
            }
        };
        launch(&dev, g, pick, |handle, p, algo, sp, sn| unsafe {
            sys::cudnnConvolutionForward(handle, scale(&ONE), p.x, ptr(xp), p.w, ptr(wp), p.conv, algo, sp, sn, scale(&ZERO), p.y, ptr(yp))
        })?;
    }
    let (oh, ow) = g.out_hw();
    Ok((y, dev, Shape::from((n, cout, oh, ow))))
}

/// `dX` from `(dY, W)`.
struct ConvBackwardData {
    pad: usize,
    hw: (usize, usize),
}

impl CustomOp2 for ConvBackwardData {
    fn name(&self) -> &'static str {
        "cudnn-conv2d-data-grad"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("cudnn-conv2d-data-grad runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, dys: &CudaStorage, dyl: &Layout, ws: &CudaStorage, wl: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, cout, _, _) = dyl.shape().dims4()?;
        let (_, cin, k, _) = wl.shape().dims4()?;
        let g = Geom { n, cin, h: self.hw.0, w: self.hw.1, cout, k, pad: self.pad };
        let dev = dys.device().clone();
        let stream = dev.cuda_stream();
        let (dy, wt) = (view(dys, dyl, g.y_len(), "output gradient")?, view(ws, wl, g.w_len(), "kernel")?);
        // SAFETY: fully written (beta = 0) by the call below.
        let mut dx = unsafe { dev.alloc::<f32>(g.x_len())? };
        {
            let ((dyp, _g1), (wp, _g2), (dxp, _g3)) = (dy.device_ptr(&stream), wt.device_ptr(&stream), dx.device_ptr_mut(&stream));
            let pick = |handle, p: &mut Plan| match p.bwd_data {
                Some(c) => Ok(c),
                None => {
                    let c = choose(
                        "backward-data",
                        &g,
                        p.conv,
                        || Ok(find!(sys::cudnnConvolutionBwdDataAlgoPerf_t, 6, |res, got| sys::cudnnFindConvolutionBackwardDataAlgorithm(
                            handle, p.w, p.y, p.conv, p.x, 6, &mut got, res.as_mut_ptr()
                        ))),
                        || Ok(find!(sys::cudnnConvolutionBwdDataAlgoPerf_t, 6, |res, got| sys::cudnnGetConvolutionBackwardDataAlgorithm_v7(
                            handle, p.w, p.y, p.conv, p.x, 6, &mut got, res.as_mut_ptr()
                        ))),
                    )?;
                    Ok(*p.bwd_data.insert(c))
                }
            };
            launch(&dev, g, pick, |handle, p, algo, sp, sn| unsafe {
                sys::cudnnConvolutionBackwardData(handle, scale(&ONE), p.w, ptr(wp), p.y, ptr(dyp), p.conv, algo, sp, sn, scale(&ZERO), p.x, ptr(dxp))
            })?;
        }
        Ok((CudaStorage::wrap_cuda_slice(dx, dev), Shape::from((n, cin, g.h, g.w))))
    }
}

/// `dW` from `(X, dY)`.
struct ConvBackwardFilter {
    pad: usize,
    k: usize,
}

impl CustomOp2 for ConvBackwardFilter {
    fn name(&self) -> &'static str {
        "cudnn-conv2d-filter-grad"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("cudnn-conv2d-filter-grad runs on CUDA tensors only")
    }

    fn cuda_fwd(&self, xs: &CudaStorage, xl: &Layout, dys: &CudaStorage, dyl: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, cin, h, w) = xl.shape().dims4()?;
        let (_, cout, _, _) = dyl.shape().dims4()?;
        let g = Geom { n, cin, h, w, cout, k: self.k, pad: self.pad };
        let dev = xs.device().clone();
        let stream = dev.cuda_stream();
        let (x, dy) = (view(xs, xl, g.x_len(), "input")?, view(dys, dyl, g.y_len(), "output gradient")?);
        // SAFETY: fully written (beta = 0) by the call below.
        let mut dw = unsafe { dev.alloc::<f32>(g.w_len())? };
        {
            let ((xp, _g1), (dyp, _g2), (dwp, _g3)) = (x.device_ptr(&stream), dy.device_ptr(&stream), dw.device_ptr_mut(&stream));
            let pick = |handle, p: &mut Plan| match p.bwd_filter {
                Some(c) => Ok(c),
                None => {
                    let c = choose(
                        "backward-filter",
                        &g,
                        p.conv,
                        || Ok(find!(sys::cudnnConvolutionBwdFilterAlgoPerf_t, 7, |res, got| sys::cudnnFindConvolutionBackwardFilterAlgorithm(
                            handle, p.x, p.y, p.conv, p.w, 7, &mut got, res.as_mut_ptr()
                        ))),
                        || Ok(find!(sys::cudnnConvolutionBwdFilterAlgoPerf_t, 7, |res, got| sys::cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                            handle, p.x, p.y, p.conv, p.w, 7, &mut got, res.as_mut_ptr()
                        ))),
                    )?;
                    Ok(*p.bwd_filter.insert(c))
                }
            };
            launch(&dev, g, pick, |handle, p, algo, sp, sn| unsafe {
                sys::cudnnConvolutionBackwardFilter(handle, scale(&ONE), p.x, ptr(xp), p.y, ptr(dyp), p.conv, algo, sp, sn, scale(&ZERO), p.w, ptr(dwp))
            })?;
        }
        Ok((CudaStorage::wrap_cuda_slice(dw, dev), Shape::from((cout, cin, self.k, self.k))))
    }
}
