//! The parameters of each corruption at severities 1-5, as published: the ImageNet-C tables of
//! `imagecorruptions` 1.1.2 and the CIFAR-10-C tables of Hendrycks' `make_cifar_c.py`.

use super::Preset;
use super::digital::ElasticParams;
use super::spatter::SpatterParams;
use super::weather::SnowParams;

/// One preset's tables, indexed by severity - 1.
pub(super) struct Tables {
    pub gaussian_noise: [f64; 5],
    pub shot_noise: [f64; 5],
    pub impulse_noise: [f64; 5],
    pub speckle_noise: [f64; 5],
    pub gaussian_blur: [f64; 5],
    /// (sigma, max move, iterations).
    pub glass_blur: [(f64, usize, usize); 5],
    /// (disk radius, anti-alias sigma).
    pub defocus_blur: [(f64, f64); 5],
    /// (radius, sigma).
    pub motion_blur: [(usize, f64); 5],
    /// `arange(1, stop, step)` of zoom factors.
    pub zoom_blur: [(f64, f64); 5],
    /// (strength, wibble decay).
    pub fog: [(f64, f64); 5],
    /// (image weight, frost weight).
    pub frost: [(f64, f64); 5],
    /// Scale of the frost photographs before cropping, when the image fits (1 = as the
    /// ImageNet preset: scaled only to fit, times 1.1).
    pub frost_scale: f64,
    pub snow: [SnowParams; 5],
    pub spatter: [SpatterParams; 5],
    pub contrast: [f64; 5],
    pub brightness: [f64; 5],
    /// (saturation scale, shift).
    pub saturate: [(f64, f64); 5],
    pub jpeg_compression: [u8; 5],
    pub pixelate: [f64; 5],
    pub elastic_transform: [ElasticParams; 5],
}

const fn snow(
    mean: f64,
    std: f64,
    zoom: f64,
    threshold: f64,
    radius: usize,
    sigma: f64,
    keep: f64,
) -> SnowParams {
    SnowParams {
        mean,
        std,
        zoom,
        threshold,
        radius,
        sigma,
        keep,
    }
}

const fn spatter(
    mean: f64,
    std: f64,
    sigma: f64,
    threshold: f64,
    intensity: f64,
    mud: bool,
) -> SpatterParams {
    SpatterParams {
        mean,
        std,
        sigma,
        threshold,
        intensity,
        mud,
    }
}

const fn cifar_elastic(alpha: f64, sigma: f64, affine: f64) -> ElasticParams {
    ElasticParams::Cifar {
        alpha: 32.0 * alpha,
        sigma: 32.0 * sigma,
        affine: 32.0 * affine,
    }
}

const IMAGENET: Tables = Tables {
    gaussian_noise: [0.08, 0.12, 0.18, 0.26, 0.38],
    shot_noise: [60.0, 25.0, 12.0, 5.0, 3.0],
    impulse_noise: [0.03, 0.06, 0.09, 0.17, 0.27],
    speckle_noise: [0.15, 0.2, 0.35, 0.45, 0.6],
    gaussian_blur: [1.0, 2.0, 3.0, 4.0, 6.0],
    glass_blur: [
        (0.7, 1, 2),
        (0.9, 2, 1),
        (1.0, 2, 3),
        (1.1, 3, 2),
        (1.5, 4, 2),
    ],
    defocus_blur: [(3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5)],
    motion_blur: [(10, 3.0), (15, 5.0), (15, 8.0), (15, 12.0), (20, 15.0)],
    zoom_blur: [
        (1.11, 0.01),
        (1.16, 0.01),
        (1.21, 0.02),
        (1.26, 0.02),
        (1.31, 0.03),
    ],
    fog: [(1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
    frost: [(1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
    frost_scale: 1.0,
    snow: [
        snow(0.1, 0.3, 3.0, 0.5, 10, 4.0, 0.8),
        snow(0.2, 0.3, 2.0, 0.5, 12, 4.0, 0.7),
        snow(0.55, 0.3, 4.0, 0.9, 12, 8.0, 0.7),
        snow(0.55, 0.3, 4.5, 0.85, 12, 8.0, 0.65),
        snow(0.55, 0.3, 2.5, 0.85, 12, 12.0, 0.55),
    ],
    spatter: [
        spatter(0.65, 0.3, 4.0, 0.69, 0.6, false),
        spatter(0.65, 0.3, 3.0, 0.68, 0.6, false),
        spatter(0.65, 0.3, 2.0, 0.68, 0.5, false),
        spatter(0.65, 0.3, 1.0, 0.65, 1.5, true),
        spatter(0.67, 0.4, 1.0, 0.65, 1.5, true),
    ],
    contrast: [0.4, 0.3, 0.2, 0.1, 0.05],
    brightness: [0.1, 0.2, 0.3, 0.4, 0.5],
    saturate: [(0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)],
    jpeg_compression: [25, 18, 15, 10, 7],
    pixelate: [0.6, 0.5, 0.4, 0.3, 0.25],
    elastic_transform: [
        ElasticParams::Imagenet {
            alpha: 250.0 * 0.05,
        },
        ElasticParams::Imagenet {
            alpha: 250.0 * 0.065,
        },
        ElasticParams::Imagenet {
            alpha: 250.0 * 0.085,
        },
        ElasticParams::Imagenet { alpha: 250.0 * 0.1 },
        ElasticParams::Imagenet {
            alpha: 250.0 * 0.12,
        },
    ],
};

const CIFAR10: Tables = Tables {
    gaussian_noise: [0.04, 0.06, 0.08, 0.09, 0.10],
    shot_noise: [500.0, 250.0, 100.0, 75.0, 50.0],
    impulse_noise: [0.01, 0.02, 0.03, 0.05, 0.07],
    speckle_noise: [0.06, 0.1, 0.12, 0.16, 0.2],
    gaussian_blur: [0.4, 0.6, 0.7, 0.8, 1.0],
    glass_blur: [
        (0.05, 1, 1),
        (0.25, 1, 1),
        (0.4, 1, 1),
        (0.25, 1, 2),
        (0.4, 1, 2),
    ],
    defocus_blur: [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)],
    motion_blur: [(6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5)],
    zoom_blur: [
        (1.06, 0.01),
        (1.11, 0.01),
        (1.16, 0.01),
        (1.21, 0.01),
        (1.26, 0.01),
    ],
    fog: [(0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75)],
    frost: [
        (1.0, 0.2),
        (1.0, 0.3),
        (0.9, 0.4),
        (0.85, 0.4),
        (0.75, 0.45),
    ],
    frost_scale: 0.2,
    snow: [
        snow(0.1, 0.2, 1.0, 0.6, 8, 3.0, 0.95),
        snow(0.1, 0.2, 1.0, 0.5, 10, 4.0, 0.9),
        snow(0.15, 0.3, 1.75, 0.55, 10, 4.0, 0.9),
        snow(0.25, 0.3, 2.25, 0.6, 12, 6.0, 0.85),
        snow(0.3, 0.3, 1.25, 0.65, 14, 12.0, 0.8),
    ],
    spatter: [
        spatter(0.62, 0.1, 0.7, 0.7, 0.5, false),
        spatter(0.65, 0.1, 0.8, 0.7, 0.5, false),
        spatter(0.65, 0.3, 1.0, 0.69, 0.5, false),
        spatter(0.65, 0.1, 0.7, 0.69, 0.6, true),
        spatter(0.65, 0.1, 0.5, 0.68, 0.6, true),
    ],
    contrast: [0.75, 0.5, 0.4, 0.3, 0.15],
    brightness: [0.05, 0.1, 0.15, 0.2, 0.3],
    saturate: [(0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2)],
    jpeg_compression: [80, 65, 58, 50, 40],
    pixelate: [0.95, 0.9, 0.85, 0.75, 0.65],
    elastic_transform: [
        cifar_elastic(0.0, 0.0, 0.08),
        cifar_elastic(0.05, 0.2, 0.07),
        cifar_elastic(0.08, 0.06, 0.06),
        cifar_elastic(0.1, 0.04, 0.05),
        cifar_elastic(0.1, 0.03, 0.03),
    ],
};

/// The tables of `preset`.
pub(super) fn tables(preset: Preset) -> &'static Tables {
    match preset {
        Preset::Imagenet => &IMAGENET,
        Preset::Cifar10 => &CIFAR10,
    }
}
