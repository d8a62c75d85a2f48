//! Eight f32 lanes with run-time CPU dispatch: AVX2 + FMA through `pulp` where the CPU has
//! them, plain arrays (auto-vectorised by the compiler) everywhere else.
//!
//! Kernels are written once, generic over [`Lanes`], and entered through [`dispatch`], which
//! checks the CPU once per call and runs the kernel with the matching instruction set enabled.
//! Everything a kernel calls must be `#[inline(always)]` so that it is compiled with those
//! instructions too.
//!
//! `MLOPS_SIMD=portable` in the environment (read once per process) forces the portable
//! kernels on any CPU: how the tests check that path on machines that would never take it.

/// The vector operations the kernels use, on eight f32 lanes.
pub(crate) trait Lanes: Copy {
    /// Eight lanes.
    type V: Copy;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// Eight values.
    fn load(self, x: &[f32; 8]) -> Self::V;
    /// Writes eight values.
    fn store(self, v: Self::V, out: &mut [f32; 8]);
    /// `a * b + c`, fused where the CPU can.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `min(max(v, lo), hi)`.
    fn clamp(self, v: Self::V, lo: Self::V, hi: Self::V) -> Self::V;

    /// The first eight values of `x`, zeros where `x` is shorter.
    ///
    /// Lane by lane rather than through a copy: a `memcpy` call here would make the compiler
    /// spill every vector register around it in the hot loops that can reach this path.
    #[inline(always)]
    fn load_partial(self, x: &[f32]) -> Self::V {
        match x.first_chunk::<8>() {
            Some(eight) => self.load(eight),
            None => self.load(&std::array::from_fn(|i| x.get(i).copied().unwrap_or(0.0))),
        }
    }

    /// Writes the first `min(8, out.len())` lanes of `v` to `out` (lane by lane, see
    /// [`Lanes::load_partial`]).
    #[inline(always)]
    fn store_partial(self, v: Self::V, out: &mut [f32]) {
        match out.first_chunk_mut::<8>() {
            Some(eight) => self.store(v, eight),
            None => {
                let mut all = [0.0; 8];
                self.store(v, &mut all);
                for (i, value) in all.into_iter().enumerate() {
                    if let Some(o) = out.get_mut(i) {
                        *o = value;
                    }
                }
            }
        }
    }
}

/// Plain arrays: correct everywhere, vectorised by the compiler for the build's target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Lanes for Portable {
    type V = [f32; 8];

    #[inline(always)]
    fn splat(self, x: f32) -> [f32; 8] {
        [x; 8]
    }

    #[inline(always)]
    fn load(self, x: &[f32; 8]) -> [f32; 8] {
        *x
    }

    #[inline(always)]
    fn store(self, v: [f32; 8], out: &mut [f32; 8]) {
        *out = v;
    }

    #[inline(always)]
    fn mul_add(self, a: [f32; 8], b: [f32; 8], c: [f32; 8]) -> [f32; 8] {
        // A fused multiply-add without hardware support is a slow library call: use it only
        // where the target has the instruction.
        #[cfg(any(target_arch = "aarch64", target_feature = "fma"))]
        return std::array::from_fn(|i| a[i].mul_add(b[i], c[i]));
        #[cfg(not(any(target_arch = "aarch64", target_feature = "fma")))]
        return std::array::from_fn(|i| a[i] * b[i] + c[i]);
    }

    #[inline(always)]
    fn add(self, a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] + b[i])
    }

    #[inline(always)]
    fn clamp(self, v: [f32; 8], lo: [f32; 8], hi: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| v[i].max(lo[i]).min(hi[i]))
    }
}

#[cfg(target_arch = "x86_64")]
impl Lanes for pulp::x86::V3 {
    type V = pulp::f32x8;

    #[inline(always)]
    fn splat(self, x: f32) -> pulp::f32x8 {
        self.splat_f32x8(x)
    }

    #[inline(always)]
    fn load(self, x: &[f32; 8]) -> pulp::f32x8 {
        pulp::cast(*x)
    }

    #[inline(always)]
    fn store(self, v: pulp::f32x8, out: &mut [f32; 8]) {
        *out = pulp::cast(v);
    }

    #[inline(always)]
    fn mul_add(self, a: pulp::f32x8, b: pulp::f32x8, c: pulp::f32x8) -> pulp::f32x8 {
        self.mul_add_f32x8(a, b, c)
    }

    #[inline(always)]
    fn add(self, a: pulp::f32x8, b: pulp::f32x8) -> pulp::f32x8 {
        pulp::Simd::add_f32s(self, a, b)
    }

    #[inline(always)]
    fn clamp(self, v: pulp::f32x8, lo: pulp::f32x8, hi: pulp::f32x8) -> pulp::f32x8 {
        pulp::Simd::min_f32s(self, pulp::Simd::max_f32s(self, v, lo), hi)
    }
}

/// A kernel generic over the lane implementation.
pub(crate) trait Kernel {
    /// What the kernel returns.
    type Output;
    /// Runs the kernel with `lanes`.
    fn run<L: Lanes>(self, lanes: L) -> Self::Output;
}

/// Whether `MLOPS_SIMD=portable` forces the portable kernels (read once).
fn forced_portable() -> bool {
    static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| {
        std::env::var("MLOPS_SIMD").is_ok_and(|v| v.eq_ignore_ascii_case("portable"))
    })
}

/// AVX2 + FMA when the CPU has them and the portable path is not forced.
#[cfg(target_arch = "x86_64")]
fn avx2() -> Option<pulp::x86::V3> {
    if forced_portable() {
        return None;
    }
    pulp::x86::V3::try_new()
}

/// Runs `kernel` with the best lane implementation this CPU supports.
#[inline]
pub(crate) fn dispatch<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = avx2() {
        return v3.vectorize(
            #[inline(always)]
            move || kernel.run(v3),
        );
    }
    kernel.run(Portable)
}

/// Runs `f` with AVX2 + FMA enabled where the CPU has them and the portable path is not
/// forced, so that the compiler vectorises `f`'s loops with them. `f` must be an
/// `#[inline(always)]` closure, and what it calls `#[inline(always)]` too.
#[inline]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if let Some(v3) = avx2() {
        return v3.vectorize(f);
    }
    f()
}

/// The name of the instruction set [`dispatch`] picks on this CPU (part of feature-cache
/// keys).
pub(crate) fn instruction_set() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if avx2().is_some() {
        return "avx2+fma";
    }
    "portable"
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Axpy<'a> {
        a: f32,
        x: &'a [f32],
        y: &'a mut [f32],
    }

    impl Kernel for Axpy<'_> {
        type Output = ();
        fn run<L: Lanes>(self, l: L) {
            let a = l.splat(self.a);
            for (x, y) in self.x.chunks(8).zip(self.y.chunks_mut(8)) {
                let v = l.mul_add(a, l.load_partial(x), l.load_partial(y));
                l.store_partial(v, y);
            }
        }
    }

    #[test]
    fn dispatched_and_portable_lanes_agree_including_partial_tails() {
        let x: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let mut fast: Vec<f32> = (0..21).map(|i| 1.0 - i as f32).collect();
        let mut plain = fast.clone();
        dispatch(Axpy {
            a: 2.0,
            x: &x,
            y: &mut fast,
        });
        Axpy {
            a: 2.0,
            x: &x,
            y: &mut plain,
        }
        .run(Portable);
        let want: Vec<f32> = (0..21)
            .map(|i| 2.0 * (i as f32 * 0.5) + 1.0 - i as f32)
            .collect();
        assert_eq!(fast, want);
        assert_eq!(plain, want);
    }

    #[test]
    fn clamp_bounds_both_sides() {
        let l = Portable;
        let mut out = [0.0; 8];
        let v = l.load(&[-3.0, 0.0, 1.0, 5.9, 6.0, 7.0, 100.0, -0.5]);
        l.store(l.clamp(v, l.splat(0.0), l.splat(6.0)), &mut out);
        assert_eq!(out, [0.0, 0.0, 1.0, 5.9, 6.0, 6.0, 6.0, 0.0]);
    }
}
