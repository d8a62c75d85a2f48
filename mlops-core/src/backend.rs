//! The CPU backend Burn computes on (training, and backbone features where the engine is
//! Burn).

use burn::prelude::*;

/// The CPU backend to compute on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeBackend {
    /// Burn's `flex` backend (the default: measured faster here for both forward and backward).
    #[default]
    Flex,
    /// burn-ndarray (deprecated upstream; its convolution backward pass is very slow).
    NdArray,
}

impl ComputeBackend {
    /// The inference device.
    pub fn device(self) -> Device {
        match self {
            ComputeBackend::Flex => Device::flex(),
            #[allow(deprecated)]
            ComputeBackend::NdArray => Device::ndarray(),
        }
    }
}

crate::names::named_enum!(ComputeBackend, "backend", { Flex => "flex", NdArray => "ndarray" });
