//! The machinery behind `cudnn.rs`'s operations: per-thread cuDNN handles bound to candle's
//! stream, descriptors per convolution geometry, the algorithm choice for each direction (timed
//! once, as PyTorch's `cudnn.benchmark`), workspaces, and one call wrapper.

use candle_core::cuda_backend::cudarc::cudnn::sys;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DevicePtrMut};
use candle_core::cuda_backend::{CudaDType, DeviceId};
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

pub(super) fn ck(s: sys::cudnnStatus_t) -> Result<()> {
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
pub(super) struct Geom {
    pub(super) n: usize,
    pub(super) cin: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) cout: usize,
    pub(super) k: usize,
    pub(super) pad: usize,
    /// f32 or bf16 (for input, kernel and output alike; the arithmetic is f32 either way).
    pub(super) dtype: DType,
}

impl Geom {
    pub(super) fn out_hw(&self) -> (usize, usize) {
        (self.h + 2 * self.pad + 1 - self.k, self.w + 2 * self.pad + 1 - self.k)
    }
    pub(super) fn x_len(&self) -> usize {
        self.n * self.cin * self.h * self.w
    }
    pub(super) fn y_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        self.n * self.cout * oh * ow
    }
    pub(super) fn w_len(&self) -> usize {
        self.cout * self.cin * self.k * self.k
    }
}

/// An algorithm cuDNN timed fastest, the math type it ran with and its workspace.
#[derive(Clone, Copy)]
pub(super) struct Choice<A> {
    algo: A,
    math: sys::cudnnMathType_t,
    workspace: usize,
}

/// Descriptors of one geometry, and the algorithm chosen for each direction once it was needed.
/// Never destroyed: a model has a few dozen geometries.
pub(super) struct Plan {
    pub(super) x: sys::cudnnTensorDescriptor_t,
    pub(super) y: sys::cudnnTensorDescriptor_t,
    pub(super) w: sys::cudnnFilterDescriptor_t,
    pub(super) conv: sys::cudnnConvolutionDescriptor_t,
    pub(super) fwd: Option<Choice<sys::cudnnConvolutionFwdAlgo_t>>,
    pub(super) bwd_data: Option<Choice<sys::cudnnConvolutionBwdDataAlgo_t>>,
    pub(super) bwd_filter: Option<Choice<sys::cudnnConvolutionBwdFilterAlgo_t>>,
}

impl Plan {
    fn new(g: &Geom) -> Result<Self> {
        let i = |v: usize| v as i32;
        let (oh, ow) = g.out_hw();
        let nchw = sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW;
        let f32t = sys::cudnnDataType_t::CUDNN_DATA_FLOAT;
        let data = match g.dtype {
            DType::F32 => f32t,
            DType::BF16 => sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16,
            d => candle_core::bail!("cudnn conv2d: unsupported dtype {d:?}"),
        };
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
            ck(sys::cudnnSetTensor4dDescriptor(p.x, nchw, data, i(g.n), i(g.cin), i(g.h), i(g.w)))?;
            ck(sys::cudnnCreateTensorDescriptor(&mut p.y))?;
            ck(sys::cudnnSetTensor4dDescriptor(p.y, nchw, data, i(g.n), i(g.cout), i(oh), i(ow)))?;
            ck(sys::cudnnCreateFilterDescriptor(&mut p.w))?;
            ck(sys::cudnnSetFilter4dDescriptor(p.w, data, nchw, i(g.cout), i(g.cin), i(g.k), i(g.k)))?;
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
pub(super) fn choose<A: Copy + std::fmt::Debug>(
    what: &str,
    g: &Geom,
    conv: sys::cudnnConvolutionDescriptor_t,
    find: impl FnOnce() -> Result<Vec<Row<A>>>,
    heuristic: impl FnOnce() -> Result<Vec<Row<A>>>,
) -> Result<Choice<A>> {
    // SAFETY: sets one field of a live descriptor (the last launch may have left another).
    unsafe { ck(sys::cudnnSetConvolutionMathType(conv, sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH))? };
    let ok = |rows: &[Row<A>]| {
        rows.iter().find(|r| r.1 == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS).map(|r| Choice {
            algo: r.0,
            math: r.2,
            workspace: r.3,
        })
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
        eprintln!(
            "cudnn {what} {g:?}: {how} {:?} {:?} workspace {} [{}]",
            choice.algo,
            choice.math,
            choice.workspace,
            tried.join(" ")
        );
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

/// The data of a contiguous storage of `len` elements (what the descriptors describe).
pub(super) fn view<'a, T: CudaDType>(
    s: &'a CudaStorage,
    l: &Layout,
    len: usize,
    what: &str,
) -> Result<CudaView<'a, T>> {
    let v = crate::ops::cuda::view::<T>(s, l, what)?;
    if v.len() != len {
        candle_core::bail!("cudnn conv2d: {what} has {} elements, the convolution needs {len}", v.len())
    }
    Ok(v)
}

pub(super) const ONE: f32 = 1.0;
pub(super) const ZERO: f32 = 0.0;

pub(super) fn ptr(p: u64) -> *mut c_void {
    p as usize as *mut c_void
}

pub(super) fn scale(v: &f32) -> *const c_void {
    v as *const f32 as *const c_void
}

/// Run one cuDNN call on this thread's handle: `pick` returns the (cached) algorithm choice,
/// `call` gets the handle, the plan, the algorithm and the workspace pointer and size.
///
/// # Safety
/// `call` hands cuDNN raw device pointers: the buffers it passes must be live for the call, on
/// `dev`'s stream, laid out as the plan's descriptors for geometry `g` say (sizes, strides,
/// dtype), and not aliased where cuDNN writes. `launch` checks none of it.
pub(super) unsafe fn launch<A: Copy>(
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
        // SAFETY: the call writes at most `$n` results into `$res` and their count into `$got`;
        // its descriptors and buffers are the plan's (see the caller).
        unsafe { ck($call)? };
        $res[..$got as usize].iter().map(|r| (r.algo, r.status, r.mathType, r.memory)).collect::<Vec<_>>()
    }};
}
