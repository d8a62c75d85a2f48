//! EfficientNet-Lite0's frozen forward pass on the fast kernels: BatchNorm folded when the
//! weights load, NHWC from the stem to the pooled features, bias / ReLU6 / residual fused into
//! the producing convolution, one set of buffers per thread reused across layers and calls.
//!
//! Parallelism: a batch with at least as many images as threads runs one image per thread
//! (no synchronisation inside the network); the rest, and batch 1, split every layer over the
//! threads by rows.

use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::depthwise::{DepthwiseWeights, depthwise};
use super::fold::{FoldedConv, fold};
use super::pointwise::{Activation, PackedWeights, pointwise};
use super::stem::StemConv;
use super::{check_images, image_len};
use crate::error::{Error, Result};
use crate::model::efficientnet::{EfficientNetLite0, FEATURES, activation_shape};

/// Version of the fast path's arithmetic: part of feature-cache keys, raised whenever a change
/// can move a feature value. `tests/infer.rs` holds the hash of the features of real photos
/// per version and instruction set and fails when the features change under the same version.
pub const ENGINE_VERSION: &str = "lite0-fast-1";

/// Seconds spent per kind of layer, summed over the images (and over threads where images run
/// one per thread).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerTimes {
    /// The 3x3 stride-2 stem (im2col and its matrix product).
    pub stem: f64,
    /// 1x1 expansion convolutions.
    pub expand: f64,
    /// Depthwise convolutions.
    pub depthwise: f64,
    /// 1x1 projections (with the residual sum).
    pub project: f64,
    /// The 1x1 head convolution to 1280 channels.
    pub head: f64,
    /// Global average pooling.
    pub pool: f64,
}

impl LayerTimes {
    /// Total seconds.
    pub fn total(&self) -> f64 {
        self.stem + self.expand + self.depthwise + self.project + self.head + self.pool
    }

    fn add(&mut self, other: &LayerTimes) {
        self.stem += other.stem;
        self.expand += other.expand;
        self.depthwise += other.depthwise;
        self.project += other.project;
        self.head += other.head;
        self.pool += other.pool;
    }
}

/// One inverted-residual block.
#[derive(Debug, Clone)]
struct Block {
    expand: Option<PackedWeights>,
    depthwise: DepthwiseWeights,
    project: PackedWeights,
    skip: bool,
}

/// Buffers of one forward pass, grown on demand and kept for the next.
#[derive(Debug, Default)]
struct Workspace {
    /// im2col rows of the stem.
    col: Vec<f32>,
    /// Block input and output, swapped after every block.
    x: Vec<f32>,
    y: Vec<f32>,
    /// Expanded activations, and the head's output.
    hidden: Vec<f32>,
    /// Depthwise output.
    dw: Vec<f32>,
}

fn grow(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}

/// Runs `f`, adding its wall time to `slot` when profiling.
fn timed<R>(slot: Option<&mut f64>, f: impl FnOnce() -> R) -> R {
    match slot {
        None => f(),
        Some(slot) => {
            let started = Instant::now();
            let r = f();
            *slot += started.elapsed().as_secs_f64();
            r
        }
    }
}

/// EfficientNet-Lite0's backbone (stem to pooled features) for inference on CPU.
///
/// Built from the Burn network ([`EfficientNetLite0`], the reference and training path) with
/// [`Lite0Inference::new`]; gives the same pooled features within float rounding (tested to
/// 1e-4) several times faster. Thread-safe: share it (`&self`) between threads.
#[derive(Debug)]
pub struct Lite0Inference {
    stem: StemConv,
    blocks: Vec<Block>,
    head: PackedWeights,
    workspaces: Mutex<Vec<Workspace>>,
}

impl Lite0Inference {
    /// Folds the network's BatchNorms into its convolutions and packs the weights.
    pub fn new(net: &EfficientNetLite0) -> Result<Self> {
        let stem = fold(&net.conv_stem, &net.bn0, "stem")?;
        let [out, channels, kh, kw] = stem.shape;
        if kh != kw {
            return Err(Error::invalid("backbone", "stem: square kernels only"));
        }
        let stem = StemConv::new(&stem.weights, &stem.bias, out, channels, kh, stem.stride);
        let mut blocks = Vec::with_capacity(net.blocks.len());
        for (i, b) in net.blocks.iter().enumerate() {
            let name = |part: &str| format!("block {i} {part}");
            let expand = match (&b.expand_conv, &b.bn0) {
                (Some(conv), Some(bn)) => {
                    Some(pointwise_weights(fold(conv, bn, &name("expand"))?)?)
                }
                _ => None,
            };
            let dw = fold(&b.depthwise_conv, &b.bn1, &name("depthwise"))?;
            let [channels, per_group, k, k2] = dw.shape;
            if per_group != 1 || k != k2 || !(k == 3 || k == 5) {
                return Err(Error::invalid(
                    "backbone",
                    format!(
                        "{}: depthwise 3x3 or 5x5 expected, got {:?}",
                        name("depthwise"),
                        dw.shape
                    ),
                ));
            }
            let depthwise = DepthwiseWeights::new(&dw.weights, &dw.bias, channels, k, dw.stride);
            let project = pointwise_weights(fold(&b.project_conv, &b.bn2, &name("project"))?)?;
            let inputs = expand.as_ref().map_or(channels, |e| e.inputs());
            if expand.as_ref().is_some_and(|e| e.outputs() != channels)
                || project.inputs() != channels
                || (b.skip && project.outputs() != inputs)
            {
                return Err(Error::invalid(
                    "backbone",
                    format!("block {i}: widths do not chain"),
                ));
            }
            blocks.push(Block {
                expand,
                depthwise,
                project,
                skip: b.skip,
            });
        }
        let head = pointwise_weights(fold(&net.conv_head, &net.bn1, "head")?)?;
        if head.outputs() != FEATURES {
            return Err(Error::invalid("backbone", "head: 1280 outputs expected"));
        }
        Ok(Lite0Inference {
            stem,
            blocks,
            head,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// Width of the pooled features (1280).
    pub fn dim(&self) -> usize {
        FEATURES
    }

    /// Multiply-accumulates of one image's forward pass at `height x width` (the
    /// convolutions; 0.384 G at 224 px, 0.501 G at 256 px).
    pub fn macs(&self, height: usize, width: usize) -> u64 {
        let (mut h, mut w) = self.stem.output_size(height, width);
        let mut c = self.stem.outputs();
        let mut macs = h * w * c * self.stem.patch();
        for block in &self.blocks {
            let hidden = block.depthwise.channels();
            if block.expand.is_some() {
                macs += h * w * c * hidden;
            }
            let (oh, ow) = block.depthwise.output_size(h, w);
            let k = block.depthwise.kernel();
            macs += oh * ow * hidden * k * k;
            let co = block.project.outputs();
            macs += oh * ow * hidden * co;
            (h, w, c) = (oh, ow, co);
        }
        (macs + h * w * c * FEATURES) as u64
    }

    /// Pooled features `[n, 1280]` (row-major) of `n` images given as one `[n, 3, height,
    /// width]` slice of normalised values (the layout of [`crate::vision::Preprocess::to_chw`]).
    pub fn features(
        &self,
        images: &[f32],
        n: usize,
        height: usize,
        width: usize,
    ) -> Result<Vec<f32>> {
        let per_image = image_len(height, width)?;
        if images.len() != n.saturating_mul(per_image) {
            return Err(Error::invalid(
                "images",
                format!(
                    "expected {n} x 3 x {height} x {width} = {} values, got {}",
                    n.saturating_mul(per_image),
                    images.len()
                ),
            ));
        }
        let refs: Vec<&[f32]> = images.chunks_exact(per_image).collect();
        self.run(&refs, height, width, false).map(|(f, _)| f)
    }

    /// Pooled features of separate images (each `3 x height x width`), `[n, 1280]` row-major.
    pub fn features_of(&self, images: &[&[f32]], height: usize, width: usize) -> Result<Vec<f32>> {
        check_images(images, height, width)?;
        self.run(images, height, width, false).map(|(f, _)| f)
    }

    /// [`Self::features_of`], also timing every kind of layer.
    pub fn profile(
        &self,
        images: &[&[f32]],
        height: usize,
        width: usize,
    ) -> Result<(Vec<f32>, LayerTimes)> {
        check_images(images, height, width)?;
        self.run(images, height, width, true)
    }

    /// Number of inverted-residual blocks (16).
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The activations after the stem and the first `blocks` blocks of separate images (each
    /// `3 x height x width`), one NHWC row of [`Self::activation_shape`] per image: the input
    /// of the network's remaining blocks, for training those
    /// ([`crate::train::TrainMode::PartialFineTune`]); shape from
    /// [`crate::model::activation_shape`].
    pub fn activations_of(
        &self,
        images: &[&[f32]],
        height: usize,
        width: usize,
        blocks: usize,
    ) -> Result<Vec<f32>> {
        check_images(images, height, width)?;
        if blocks > self.blocks.len() {
            return Err(Error::invalid(
                "blocks",
                format!("the network has {} blocks, not {blocks}", self.blocks.len()),
            ));
        }
        let [h, w, c] = activation_shape(height, width, blocks);
        let len = h * w * c;
        let mut out = vec![0.0; images.len() * len];
        out.par_chunks_mut(len.max(1))
            .zip(images)
            .try_for_each(|(out, image)| {
                let mut ws = self.take_workspace();
                let shape = self.trunk(image, (height, width), blocks, &mut ws, 1, None);
                let done = if shape == (h, w, c) {
                    out.copy_from_slice(&ws.x[..len]);
                    Ok(())
                } else {
                    Err(Error::internal(
                        "activations",
                        format!("trunk gave {shape:?}, expected {:?}", (h, w, c)),
                    ))
                };
                self.return_workspace(ws);
                done
            })?;
        Ok(out)
    }

    fn run(
        &self,
        images: &[&[f32]],
        height: usize,
        width: usize,
        profile: bool,
    ) -> Result<(Vec<f32>, LayerTimes)> {
        let threads = rayon::current_num_threads().max(1);
        let mut out = vec![0.0; images.len() * FEATURES];
        let one_per_thread = if threads > 1 {
            images.len() / threads * threads
        } else {
            0
        };
        let times = Mutex::new(LayerTimes::default());
        let (whole, rest) = out.split_at_mut(one_per_thread * FEATURES);
        whole
            .par_chunks_mut(FEATURES)
            .zip(&images[..one_per_thread])
            .for_each(|(out, image)| {
                let mut ws = self.take_workspace();
                let mut t = profile.then(LayerTimes::default);
                self.image(image, height, width, &mut ws, 1, t.as_mut(), out);
                self.return_workspace(ws);
                if let (Some(t), Ok(mut all)) = (t, times.lock()) {
                    all.add(&t);
                }
            });
        let mut ws = self.take_workspace();
        let mut t = profile.then(LayerTimes::default);
        let rest_images = &images[one_per_thread..];
        if !rest_images.is_empty() {
            with_hot_workers(threads, || {
                for (out, image) in rest.chunks_exact_mut(FEATURES).zip(rest_images) {
                    self.image(image, height, width, &mut ws, threads, t.as_mut(), out);
                }
            });
        }
        self.return_workspace(ws);
        let mut all = times.into_inner().unwrap_or_default();
        if let Some(t) = t {
            all.add(&t);
        }
        Ok((out, all))
    }

    fn take_workspace(&self) -> Workspace {
        self.workspaces
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_default()
    }

    fn return_workspace(&self, ws: Workspace) {
        if let Ok(mut pool) = self.workspaces.lock() {
            pool.push(ws);
        }
    }

    /// The stem and the first `blocks` blocks of one image, each layer split over `threads`;
    /// leaves the NHWC activation in `ws.x` and returns its (height, width, channels).
    fn trunk(
        &self,
        image: &[f32],
        (height, width): (usize, usize),
        blocks: usize,
        ws: &mut Workspace,
        threads: usize,
        mut times: Option<&mut LayerTimes>,
    ) -> (usize, usize, usize) {
        let (mut h, mut w) = self.stem.output_size(height, width);
        let mut c = self.stem.outputs();
        let col_len = self.stem.scratch_len(height, width);
        grow(&mut ws.col, col_len);
        grow(&mut ws.x, h * w * c);
        timed(times.as_deref_mut().map(|t| &mut t.stem), || {
            self.stem.forward(
                image,
                height,
                width,
                &mut ws.col[..col_len],
                &mut ws.x[..h * w * c],
                threads,
            )
        });
        for block in self.blocks.iter().take(blocks) {
            let hidden = block.depthwise.channels();
            let input_len = h * w * c;
            if let Some(expand) = &block.expand {
                grow(&mut ws.hidden, h * w * hidden);
                timed(times.as_deref_mut().map(|t| &mut t.expand), || {
                    pointwise(
                        &ws.x[..input_len],
                        expand,
                        None,
                        &mut ws.hidden[..h * w * hidden],
                        Activation::Relu6,
                        threads,
                    )
                });
            }
            let (oh, ow) = block.depthwise.output_size(h, w);
            grow(&mut ws.dw, oh * ow * hidden);
            let dw_input = match block.expand {
                Some(_) => &ws.hidden[..h * w * hidden],
                None => &ws.x[..input_len],
            };
            timed(times.as_deref_mut().map(|t| &mut t.depthwise), || {
                depthwise(
                    dw_input,
                    h,
                    w,
                    &block.depthwise,
                    &mut ws.dw[..oh * ow * hidden],
                    threads,
                )
            });
            let co = block.project.outputs();
            grow(&mut ws.y, oh * ow * co);
            let residual = block.skip.then(|| &ws.x[..input_len]);
            timed(times.as_deref_mut().map(|t| &mut t.project), || {
                pointwise(
                    &ws.dw[..oh * ow * hidden],
                    &block.project,
                    residual,
                    &mut ws.y[..oh * ow * co],
                    Activation::Linear,
                    threads,
                )
            });
            std::mem::swap(&mut ws.x, &mut ws.y);
            (h, w, c) = (oh, ow, co);
        }
        (h, w, c)
    }

    /// The forward pass of one image into `out[1280]`, each layer split over `threads`.
    #[allow(clippy::too_many_arguments)]
    fn image(
        &self,
        image: &[f32],
        height: usize,
        width: usize,
        ws: &mut Workspace,
        threads: usize,
        mut times: Option<&mut LayerTimes>,
        out: &mut [f32],
    ) {
        let (h, w, c) = self.trunk(
            image,
            (height, width),
            self.blocks.len(),
            ws,
            threads,
            times.as_deref_mut(),
        );
        let pixels = h * w;
        grow(&mut ws.hidden, pixels * FEATURES);
        timed(times.as_deref_mut().map(|t| &mut t.head), || {
            pointwise(
                &ws.x[..pixels * c],
                &self.head,
                None,
                &mut ws.hidden[..pixels * FEATURES],
                Activation::Relu6,
                threads,
            )
        });
        timed(times.map(|t| &mut t.pool), || {
            out.fill(0.0);
            for row in ws.hidden[..pixels * FEATURES].chunks_exact(FEATURES) {
                for (o, v) in out.iter_mut().zip(row) {
                    *o += v;
                }
            }
            let scale = 1.0 / pixels as f32;
            for o in out.iter_mut() {
                *o *= scale;
            }
        });
    }
}

/// Runs `work` (which splits every layer over the pool's threads) with the other workers kept
/// spinning for it: each runs a job that keeps taking pending pool work until `work` is done.
/// Without them a worker that went to sleep between two layers takes tens of microseconds to
/// wake, which at batch 1 (about 60 parallel layers of 50-200 us) cost a third of the time.
/// The spinners stop however `work` ends: a panic in it unwinds through a guard that releases
/// them (the scope waits for its jobs before passing the panic on).
fn with_hot_workers(threads: usize, work: impl FnOnce() + Send) {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Sets the flag when dropped: at the end of `work` or while a panic unwinds it.
    struct Release<'a>(&'a AtomicBool);
    impl Drop for Release<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }

    if threads <= 1 {
        work();
        return;
    }
    let done = AtomicBool::new(false);
    rayon::scope(|scope| {
        for _ in 1..threads {
            scope.spawn(|_| {
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        let _release = Release(&done);
        work();
    });
}

/// Packs a folded 1x1 convolution.
fn pointwise_weights(conv: FoldedConv) -> Result<PackedWeights> {
    let [out, inputs, kh, kw] = conv.shape;
    if kh != 1 || kw != 1 || conv.stride != 1 {
        return Err(Error::invalid(
            "backbone",
            "expected a 1x1 convolution with stride 1",
        ));
    }
    Ok(PackedWeights::new(&conv.weights, &conv.bias, out, inputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forward that panics releases the spinning workers: the panic reaches the caller (it
    /// used to leave every worker spinning at full CPU, and the caller waiting for ever).
    #[test]
    fn a_panicking_forward_releases_the_workers() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("a pool");
        let (sent, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let caught = pool.install(|| {
                std::panic::catch_unwind(|| with_hot_workers(3, || panic!("forward failed")))
            });
            let _ = sent.send(caught.is_err());
            // The pool still works afterwards.
            let _ = sent.send(pool.install(|| {
                let mut hit = false;
                with_hot_workers(3, || hit = true);
                hit
            }));
        });
        let timeout = std::time::Duration::from_secs(20);
        assert_eq!(
            finished.recv_timeout(timeout),
            Ok(true),
            "the panic did not come back"
        );
        assert_eq!(
            finished.recv_timeout(timeout),
            Ok(true),
            "the pool is stuck"
        );
    }
}
