//! The shift experiment on (a quarter of) the real-photo demo data: the shift is real, every
//! strategy runs at every budget and seed, cells hold the runs' means with intervals and paired
//! tests against random, results are reproducible, charts are written, partial fine-tuning is
//! honoured.

#![allow(clippy::unwrap_used)]

mod common;

use burn::prelude::*;
use common::{demo_data, test_cache, wheel};
use mlops_core::dataset::{ClassMap, Manifest};
use mlops_core::experiment::{ExperimentConfig, Shift, ShiftData, run_shift_experiment};
use mlops_core::model::Backbone;
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::select::Strategy;
use mlops_core::train::{TrainConfig, TrainMode};

fn quarter(name: &str) -> Manifest {
    let m = Manifest::read(&demo_data().join(name)).unwrap();
    Manifest::new(m.samples.into_iter().step_by(4).collect())
}

fn lite0() -> Backbone {
    Backbone::EfficientNetLite0(
        load_lite0(&wheel(LITE0_WHEEL_PREFIX), false, &Device::flex()).unwrap(),
    )
}

struct Quarter {
    mtr: Manifest,
    mte: Manifest,
    ttr: Manifest,
    tte: Manifest,
    monday: std::path::PathBuf,
    tuesday: std::path::PathBuf,
}

impl Quarter {
    fn new() -> Self {
        Quarter {
            mtr: quarter("monday_train.jsonl"),
            mte: quarter("monday_test.jsonl"),
            ttr: quarter("tuesday_train.jsonl"),
            tte: quarter("tuesday_test.jsonl"),
            monday: demo_data().join("monday"),
            tuesday: demo_data().join("tuesday"),
        }
    }

    /// Monday and two shifts: the data's tuesday, and monday itself as a shift (no shift).
    fn data(&self) -> ShiftData<'_> {
        ShiftData {
            monday_root: &self.monday,
            monday_train: &self.mtr,
            monday_test: &self.mte,
            shifts: vec![
                Shift {
                    name: "tuesday",
                    root: &self.tuesday,
                    train: &self.ttr,
                    test: &self.tte,
                },
                Shift {
                    name: "same",
                    root: &self.monday,
                    train: &self.mtr,
                    test: &self.mte,
                },
            ],
        }
    }

    fn classes(&self) -> ClassMap {
        ClassMap::from_manifests(&[&self.mtr, &self.mte, &self.ttr, &self.tte]).unwrap()
    }
}

fn strategies(names: &[&str]) -> Vec<Strategy> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

#[test]
fn the_experiment_sweeps_budgets_with_intervals_and_paired_tests_reproducibly() {
    let backbone = lite0();
    let q = Quarter::new();
    let classes = q.classes();
    assert_eq!(
        classes.names(),
        ["background", "brick", "concrete", "ground", "wood"]
    );
    let config = ExperimentConfig {
        strategies: strategies(&[
            "none",
            "random",
            "uncertainty",
            "k_center",
            "reservoir",
            "all",
        ]),
        budgets: vec![0, 10, 40],
        seeds: vec![1, 2, 3],
        train: TrainConfig {
            feature_cache: Some(test_cache("features")),
            ..TrainConfig::default()
        },
    };
    let control = mlops_core::Control::new();
    let results = run_shift_experiment(&backbone, &classes, &q.data(), &config, &control).unwrap();
    assert_eq!(results.tuning, "linear_head");
    assert_eq!(results.monday_sizes, [200, 50]);
    assert!(results.skipped.is_empty());
    // The shift is real: the monday model does much worse on tuesday, not on monday itself.
    let before = &results.shifts[0].before;
    assert!(
        before.monday > 0.8 && before.tuesday < before.monday - 0.2,
        "{before:?}"
    );
    assert_eq!(results.shifts[1].before.tuesday, before.monday);
    // Runs: per shift and seed, none and all once, the others once per non-zero budget.
    assert_eq!(results.runs.len(), 2 * 3 * (2 + 4 * 2));
    for run in &results.runs {
        let expected = match run.strategy.as_str() {
            "none" => 0,
            "all" => 200,
            _ => run.budget,
        };
        assert_eq!(run.replay, expected, "{}", run.strategy);
        assert_eq!(run.history.len(), 15);
        assert_eq!(run.confusion.iter().flatten().sum::<u64>(), 100);
        let shift = results.shifts.iter().find(|s| s.name == run.shift).unwrap();
        assert!((run.forgetting - (shift.before.monday - run.accuracy.monday)).abs() < 1e-12);
        if run.shift == "tuesday" {
            // Training on tuesday helps on tuesday.
            assert!(run.accuracy.tuesday > before.tuesday, "{run:?}");
        }
    }
    // Cells: the mean and interval of the runs; paired tests against random at each budget.
    let cell = results.cell("tuesday", "uncertainty", 40).unwrap();
    let values: Vec<f64> = results
        .runs
        .iter()
        .filter(|r| r.shift == "tuesday" && r.strategy == "uncertainty" && r.budget == 40)
        .map(|r| r.accuracy.both)
        .collect();
    assert_eq!(values.len(), 3);
    assert!((cell.both.mean - values.iter().sum::<f64>() / 3.0).abs() < 1e-12);
    assert_eq!(cell.both.n, 3);
    let versus = cell.versus_random.unwrap();
    assert_eq!(versus.both.wins + versus.both.losses + versus.both.ties, 3);
    assert!(versus.both.p_adjusted >= versus.both.p || versus.both.p.is_nan());
    assert!(
        results
            .cell("tuesday", "random", 40)
            .unwrap()
            .versus_random
            .is_none()
    );
    assert!(
        results
            .cell("tuesday", "none", 0)
            .unwrap()
            .versus_random
            .is_none()
    );
    let table = results.to_markdown();
    for name in [
        "none",
        "random",
        "uncertainty",
        "k_center",
        "reservoir",
        "all",
    ] {
        assert!(table.contains(&format!("| {name} |")), "{table}");
    }
    assert!(
        table.contains("### Shift `same`") && table.contains("| 40 |"),
        "{table}"
    );

    // Same seeds, same numbers.
    let again = run_shift_experiment(&backbone, &classes, &q.data(), &config, &control).unwrap();
    let accs = |r: &mlops_core::experiment::ExperimentResults| {
        r.runs
            .iter()
            .map(|x| {
                (
                    x.shift.clone(),
                    x.strategy.clone(),
                    x.budget,
                    x.seed,
                    x.accuracy,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(accs(&again), accs(&results));

    // Charts: SVG and PNG, non-trivial, PNGs decodable, one panel per shift.
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
    for name in [
        "accuracy_budget",
        "forgetting_budget",
        "plasticity_budget",
        "confusion",
    ] {
        let svg = std::fs::read_to_string(out.path().join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<text"),
            "{name}.svg"
        );
        let png = image::open(out.path().join(format!("{name}.png"))).unwrap();
        assert!(png.width() >= 800);
    }
    let svg = std::fs::read_to_string(out.path().join("accuracy_budget.svg")).unwrap();
    assert!(
        svg.contains("uncertainty") && svg.contains("shift: same") && svg.contains("all (joint)")
    );
}

#[test]
fn partial_fine_tuning_is_honoured_and_bad_settings_are_named() {
    let backbone = lite0();
    let q = Quarter::new();
    let classes = q.classes();
    let mut data = q.data();
    data.shifts.truncate(1);
    let config = ExperimentConfig {
        strategies: strategies(&["none", "random"]),
        budgets: vec![20],
        seeds: vec![5, 6],
        train: TrainConfig {
            mode: TrainMode::PartialFineTune,
            tail_blocks: 1,
            epochs: 3,
            feature_cache: Some(test_cache("features")),
            ..TrainConfig::default()
        },
    };
    let control = mlops_core::Control::new();
    let results = run_shift_experiment(&backbone, &classes, &data, &config, &control).unwrap();
    assert_eq!(results.tuning, "tail1");
    assert_eq!(results.row_len, 8 * 8 * 320);
    assert_eq!(results.runs.len(), 4);
    let before = &results.shifts[0].before;
    assert!(before.monday > 0.8, "{before:?}");
    for run in &results.runs {
        assert_eq!(run.history.len(), 3);
        assert!(run.accuracy.tuesday > before.tuesday + 0.1, "{run:?}");
    }
    // The same settings with the linear head give other numbers: the mode is not ignored.
    let linear = ExperimentConfig {
        train: TrainConfig {
            mode: TrainMode::FrozenBackbone,
            ..config.train.clone()
        },
        ..config.clone()
    };
    let head = run_shift_experiment(&backbone, &classes, &data, &linear, &control).unwrap();
    assert_eq!(head.tuning, "linear_head");
    assert_ne!(
        head.runs.iter().map(|r| r.accuracy).collect::<Vec<_>>(),
        results.runs.iter().map(|r| r.accuracy).collect::<Vec<_>>()
    );
    // Bad settings are named.
    let err = |config: &ExperimentConfig, data: &ShiftData<'_>| {
        run_shift_experiment(&backbone, &classes, data, config, &control)
            .unwrap_err()
            .to_string()
    };
    let no_seeds = ExperimentConfig {
        seeds: vec![],
        ..config.clone()
    };
    assert!(err(&no_seeds, &data).contains("`seeds`"));
    let bad_tail = ExperimentConfig {
        train: TrainConfig {
            tail_blocks: 0,
            ..config.train.clone()
        },
        ..config.clone()
    };
    assert!(err(&bad_tail, &data).contains("`tail_blocks`"));
    let mut twice = q.data();
    twice.shifts[1].name = "tuesday";
    assert!(err(&config, &twice).contains("two shifts are named `tuesday`"));
}
