//! Adam over flat parameters, computed as Burn's `Adam` computes it (so that a run on the
//! fast path follows the one Burn's optimizer would take): `m = b1 m + (1 - b1) g`,
//! `v = b2 v + (1 - b2) g^2`, and `p -= lr * m * c / (sqrt(v) + eps * sqrt(1 - b2^t))` with
//! `c = sqrt(1 - b2^t) / (1 - b1^t)`.

use rayon::prelude::*;

/// Values per parallel chunk of the update.
const CHUNK: usize = 16 * 1024;

/// Adam's state for one flat parameter vector.
#[derive(Debug, Clone)]
pub(crate) struct Adam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    moment_1: Vec<f32>,
    moment_2: Vec<f32>,
    time: i32,
}

impl Adam {
    /// Adam for `len` parameters with Burn's default betas (0.9, 0.999) and `epsilon`.
    pub(crate) fn new(len: usize, epsilon: f32) -> Self {
        Adam {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon,
            moment_1: vec![0.0; len],
            moment_2: vec![0.0; len],
            time: 0,
        }
    }

    /// One step with learning rate `lr`.
    pub(crate) fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f64) {
        self.time += 1;
        let (b1, b2) = (self.beta_1, self.beta_2);
        let correction_2 = (1.0 - b2.powi(self.time)).sqrt();
        let factor = correction_2 / (1.0 - b1.powi(self.time));
        let epsilon = self.epsilon * correction_2;
        let lr = lr as f32;
        params
            .par_chunks_mut(CHUNK)
            .zip(grads.par_chunks(CHUNK))
            .zip(self.moment_1.par_chunks_mut(CHUNK))
            .zip(self.moment_2.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m).zip(v) {
                    *m = *m * b1 + g * (1.0 - b1);
                    *v = *v * b2 + g * g * (1.0 - b2);
                    *p -= lr * (*m * factor / (v.sqrt() + epsilon));
                }
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::nn::LinearConfig;
    use burn::optim::{AdamConfig, GradientsParams};
    use burn::prelude::*;

    /// Every float parameter's values, in visiting order.
    fn flat<M: Module>(m: &M) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                self.0.extend(
                    p.val()
                        .into_data()
                        .try_to_vec_as::<f32>()
                        .unwrap_or_default(),
                );
            }
        }
        let mut c = Collect(Vec::new());
        m.visit(&mut c);
        c.0
    }

    #[test]
    fn steps_follow_burns_adam() {
        let device = Device::flex().autodiff();
        let mut model = LinearConfig::new(6, 3).init(&device);
        let mut burn = AdamConfig::new().with_epsilon(1e-8).init();
        let mut ours = Adam::new(flat(&model).len(), 1e-8);
        let mut params = flat(&model);
        let x = Tensor::<2>::from_data(
            TensorData::new((0..24).map(|i| (i as f32 * 0.3).sin()).collect(), [4, 6]),
            &device,
        );
        for step in 0..5 {
            let loss = model.forward(x.clone()).powf_scalar(2.0).mean();
            let mut grads = loss.backward();
            let grads = GradientsParams::from_module(&mut grads, &model);
            // The same gradients in the same order, from Burn's own container.
            struct Grads<'a>(&'a GradientsParams, Vec<f32>);
            impl ModuleVisitor for Grads<'_> {
                fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                    let g = self.0.get::<D>(p.id).map(|t| t.into_data());
                    self.1.extend(
                        g.and_then(|d| d.try_to_vec_as::<f32>().ok())
                            .unwrap_or_default(),
                    );
                }
            }
            let mut g = Grads(&grads, Vec::new());
            model.visit(&mut g);
            let lr = 0.01 * 0.95f64.powi(step);
            ours.step(&mut params, &g.1, lr);
            model = burn.step(lr, model, grads);
            let want = flat(&model);
            let worst = want
                .iter()
                .zip(&params)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-6, "step {step}: {worst}");
        }
    }

    #[test]
    fn first_step_moves_each_parameter_by_about_the_learning_rate_against_its_gradient() {
        // With bias correction the first update is lr * g / (|g| + eps): the sign of g.
        let mut adam = Adam::new(3, 1e-8);
        let mut p = vec![1.0, 1.0, 1.0];
        adam.step(&mut p, &[0.5, -2.0, 0.0], 0.01);
        assert!((p[0] - 0.99).abs() < 1e-6);
        assert!((p[1] - 1.01).abs() < 1e-6);
        assert_eq!(p[2], 1.0);
    }
}
