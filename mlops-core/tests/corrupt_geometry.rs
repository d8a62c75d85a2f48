//! Geometry of the corruptions: counts, sizes, placement, the line's width and centre, mosaic
//! cells, and the mix, as property tests over random image sizes (including extreme shapes).

#![allow(clippy::unwrap_used)]

mod common;

use common::{pattern_gray16, pattern_rgb, pattern_rgba};
use image::{DynamicImage, GenericImageView};
use mlops_core::corrupt::{
    BoxParams, Corruption, CorruptionKind, Fill, LineParams, MosaicParams, Occlusion, SizeRange,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const EXTREME_SIZES: &[(u32, u32)] = &[(1, 1), (7, 300), (4000, 10), (2, 3), (199, 201)];

fn image_size() -> impl Strategy<Value = (u32, u32)> {
    prop_oneof![
        (1u32..=400, 1u32..=400),
        proptest::sample::select(EXTREME_SIZES.to_vec()),
    ]
}

/// Pixels of `after` that differ from `before`.
fn changed(before: &DynamicImage, after: &DynamicImage) -> Vec<(u32, u32)> {
    before
        .pixels()
        .zip(after.pixels())
        .filter(|(a, b)| a.2 != b.2)
        .map(|(a, _)| (a.0, a.1))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn boxes_are_in_range_inside_and_painted((w, h) in image_size(), seed in any::<u64>()) {
        let params = BoxParams::default();
        let image = pattern_rgb(w, h);
        let (out, drawn) = Corruption::RandomBoxes(params).apply_seeded(&image, seed).unwrap();
        let rects = drawn.rects();
        prop_assert!((5..=10).contains(&rects.len()), "{} boxes", rects.len());
        let w_law = params.width.fit_within(w);
        let h_law = params.height.fit_within(h);
        for r in rects {
            prop_assert!(r.x + r.width <= w && r.y + r.height <= h, "{r:?} outside {w}x{h}");
            prop_assert!((w_law.min..=w_law.max).contains(&r.width), "{r:?} width law {w_law:?}");
            prop_assert!((h_law.min..=h_law.max).contains(&r.height), "{r:?} height law {h_law:?}");
        }
        // Inside every box: white; outside all boxes: untouched.
        let rgb = out.to_rgb8();
        let orig = image.to_rgb8();
        for (x, y, p) in rgb.enumerate_pixels() {
            if rects.iter().any(|r| r.contains(x, y)) {
                prop_assert_eq!(p.0, [255, 255, 255]);
            } else {
                prop_assert_eq!(p, orig.get_pixel(x, y));
            }
        }
    }

    #[test]
    fn line_passes_through_centre_with_its_width((w, h) in image_size(), seed in any::<u64>()) {
        let params = LineParams::default();
        let image = pattern_rgb(w, h);
        let (out, drawn) = Corruption::RandomLine(params).apply_seeded(&image, seed).unwrap();
        let Occlusion::RandomLine { line, .. } = drawn else { panic!("not a line: {drawn:?}") };
        let law = params.width.fit_within(w.min(h));
        prop_assert!((f64::from(law.min)..=f64::from(law.max)).contains(&line.width));
        let centre = [f64::from(w) / 2.0, f64::from(h) / 2.0];
        prop_assert!(line.distance(centre) < 1e-9, "centre is {} from the line", line.distance(centre));

        // Independently of the painter: a pixel is painted exactly when its centre lies within
        // width/2 of the centre line and between the ends (ties at the border may go either way).
        let (sx, sy) = (line.start[0], line.start[1]);
        let (dx, dy) = (line.end[0] - sx, line.end[1] - sy);
        let len = (dx * dx + dy * dy).sqrt();
        let painted = out.to_rgb8();
        let orig = image.to_rgb8();
        let mut inside = 0usize;
        for (x, y, p) in painted.enumerate_pixels() {
            let (px, py) = (f64::from(x) + 0.5 - sx, f64::from(y) + 0.5 - sy);
            let along = (px * dx + py * dy) / len;
            let across = (px * dy - py * dx).abs() / len;
            let margin_across = across - line.width / 2.0;
            let margin_along = along.min(len - along);
            let border = margin_across.abs() < 1e-6 || margin_along.abs() < 1e-6;
            let expected = margin_across <= 0.0 && margin_along >= 0.0;
            if border { continue; }
            if expected {
                inside += 1;
                prop_assert_eq!(p.0, [0, 0, 0], "({}, {}) should be black", x, y);
            } else {
                prop_assert_eq!(p, orig.get_pixel(x, y), "({}, {}) should be untouched", x, y);
            }
        }
        // The band is as wide as drawn: its area is about width x length inside the image.
        if line.width >= 2.0 && w >= 8 && h >= 8 {
            prop_assert!(inside > 0);
        }
    }

    #[test]
    fn mosaic_cells_are_uniform_and_sampled((w, h) in image_size(), seed in any::<u64>(), cells in 1u32..=20) {
        let params = MosaicParams { count: SizeRange::exactly(1), cells: SizeRange::exactly(cells), ..MosaicParams::default() };
        let image = pattern_rgb(w, h);
        let (out, drawn) = Corruption::Mosaic(params).apply_seeded(&image, seed).unwrap();
        let r = drawn.rects()[0];
        let (cw, ch) = (cells.min(r.width), cells.min(r.height));
        let nearest = |i: u32, from: u32, to: u32| (2 * i + 1) * from / (2 * to);
        let out = out.to_rgb8();
        let orig = image.to_rgb8();
        for (x, y, p) in out.enumerate_pixels() {
            if !r.contains(x, y) {
                prop_assert_eq!(p, orig.get_pixel(x, y));
                continue;
            }
            let (i, j) = (nearest(x - r.x, cw, r.width), nearest(y - r.y, ch, r.height));
            prop_assert!(i < cw && j < ch);
            let (sx, sy) = (r.x + nearest(i, r.width, cw), r.y + nearest(j, r.height, ch));
            prop_assert_eq!(p, orig.get_pixel(sx, sy), "pixel ({}, {}) of cell ({}, {})", x, y, i, j);
        }
        // Each cell is one colour: count distinct (cell, colour) pairs.
        let mut colours = std::collections::HashMap::new();
        for y in r.y..r.y + r.height {
            for x in r.x..r.x + r.width {
                let cell = (nearest(x - r.x, cw, r.width), nearest(y - r.y, ch, r.height));
                let c = *out.get_pixel(x, y);
                prop_assert_eq!(*colours.entry(cell).or_insert(c), c);
            }
        }
        prop_assert_eq!(colours.len() as u32, cw * ch);
    }
}

#[test]
fn mixed_draws_each_kind_about_equally() {
    let image = pattern_rgb(64, 48);
    let mut counts = std::collections::HashMap::new();
    let n = 600;
    for seed in 0..n {
        let (_, drawn) = Corruption::mixed().apply_seeded(&image, seed).unwrap();
        *counts.entry(drawn.kind()).or_insert(0u32) += 1;
    }
    for kind in [
        CorruptionKind::RandomBoxes,
        CorruptionKind::Mosaic,
        CorruptionKind::RandomLine,
    ] {
        let c = counts.get(&kind).copied().unwrap_or(0);
        assert!((150..=250).contains(&c), "{kind:?} drawn {c} times of {n}");
    }
}

#[test]
fn colour_types_are_kept_and_filled_at_full_scale() {
    let boxes = Corruption::RandomBoxes(BoxParams {
        count: SizeRange::exactly(1),
        ..BoxParams::default()
    });
    for image in [
        pattern_rgb(50, 40),
        pattern_rgba(50, 40),
        pattern_gray16(50, 40),
        DynamicImage::ImageLumaA8(pattern_rgba(50, 40).to_luma_alpha8()),
    ] {
        let (out, drawn) = boxes.apply_seeded(&image, 5).unwrap();
        assert_eq!(out.color(), image.color());
        let r = drawn.rects()[0];
        let p = out.get_pixel(r.x, r.y);
        assert_eq!(p.0, [255, 255, 255, 255], "{:?}", image.color());
        if let DynamicImage::ImageLuma16(buf) = &out {
            assert_eq!(buf.get_pixel(r.x, r.y).0, [u16::MAX]);
        }
    }
    // A custom fill colour becomes its luma on grey images.
    let red = Corruption::RandomLine(LineParams {
        fill: Fill([255, 0, 0, 255]),
        ..LineParams::default()
    });
    let (out, _) = red
        .apply_seeded(&DynamicImage::new_luma8(80, 80), 1)
        .unwrap();
    assert_eq!(out.as_luma8().unwrap().get_pixel(40, 40).0, [54]);
}

#[test]
fn pure_and_in_place_forms_agree_and_mask_matches() {
    let image = pattern_rgb(120, 90);
    for kind in ["random_boxes", "random_line", "mosaic"] {
        let c: Corruption = kind.parse().unwrap();
        let (pure, drawn) = c.apply(&image, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        let mut in_place = image.clone();
        let drawn2 = c
            .apply_in_place(&mut in_place, &mut ChaCha8Rng::seed_from_u64(9))
            .unwrap();
        assert_eq!(drawn, drawn2);
        assert_eq!(pure.as_bytes(), in_place.as_bytes());
        // Every changed pixel is inside the mask (mosaic may leave some pixels unchanged).
        let mask = drawn.mask(120, 90);
        for (x, y) in changed(&image, &pure) {
            assert_eq!(
                mask.get_pixel(x, y).0,
                [255],
                "{kind}: ({x}, {y}) changed outside the mask"
            );
        }
        if kind != "mosaic" {
            let covered = mask.pixels().filter(|p| p.0[0] == 255).count();
            assert_eq!(
                covered,
                changed(&image, &pure).len(),
                "{kind}: mask is not what was painted"
            );
        }
    }
}

#[test]
fn bad_parameters_are_refused_by_name() {
    let cases = [
        (
            Corruption::RandomBoxes(BoxParams {
                count: SizeRange::new(3, 2),
                ..BoxParams::default()
            }),
            "count",
        ),
        (
            Corruption::RandomBoxes(BoxParams {
                width: SizeRange::new(0, 2),
                ..BoxParams::default()
            }),
            "box_width",
        ),
        (
            Corruption::Mosaic(MosaicParams {
                cells: SizeRange::new(0, 0),
                ..MosaicParams::default()
            }),
            "cells",
        ),
        (
            Corruption::RandomLine(LineParams {
                width: SizeRange::new(9, 1),
                ..LineParams::default()
            }),
            "line_width",
        ),
    ];
    for (c, name) in cases {
        let err = c
            .apply_seeded(&pattern_rgb(10, 10), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("`{name}`")), "{err}");
    }
    let err = "blur".parse::<Corruption>().unwrap_err().to_string();
    assert!(
        err.contains("blur") && err.contains("random_boxes"),
        "{err}"
    );
}

#[test]
fn size_ranges_scale_down_to_small_images() {
    let law = SizeRange::new(100, 200);
    assert_eq!(law.fit_within(500), law);
    assert_eq!(law.fit_within(50), SizeRange::new(25, 50));
    assert_eq!(law.fit_within(1), SizeRange::new(1, 1));
    assert_eq!(law.fit_within(0), SizeRange::new(1, 1));
}
