//! The closed loop without a stream: the champion pointer on every store (folder, memory, a
//! real S3-API server), promotion races, the promotion policy, and adaptation on the real
//! photos (monday's model learns tuesday without forgetting monday, reproducibly).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Barrier;

use burn::prelude::*;
use common::{demo_data, test_cache, wheel};
use mlops_core::adapt::{
    AdaptConfig, AdaptData, DataHashes, Lineage, LineageRows, PromotionPolicy, Registry, Scores,
    adapt, promote, promote_rescored,
};
use mlops_core::artifact::{ModelPackage, PackageInfo};
use mlops_core::dataset::{ClassMap, Manifest, Sample};
use mlops_core::model::weights::{LITE0_WHEEL_PREFIX, load_lite0};
use mlops_core::model::{Backbone, Classifier};
use mlops_core::select::{Budget, Strategy};
use mlops_core::train::{ImageSet, TrainConfig};
use mlops_core::{Control, Error};

fn s3_base() -> String {
    std::env::var("MLOPS_TEST_S3_URI").unwrap_or_else(|_| {
        panic!("MLOPS_TEST_S3_URI is not set: run the tests through `make test` (scripts/with-services.sh starts the S3 server)")
    })
}

fn scores(old: f64, new: f64) -> Scores {
    Scores {
        old,
        new,
        union: (old + new) / 2.0,
    }
}

/// A small-CNN package (head drawn from `seed`) claiming to be adapted from `parent` with
/// these scores, saved at `uri`; returns its version.
fn challenger(uri: &str, seed: u64, parent: &str, before: Scores, after: Scores) -> String {
    challenger_of(uri, seed, parent, None, before, after)
}

/// [`challenger`] adapted from the champion of `generation`.
fn challenger_of(
    uri: &str,
    seed: u64,
    parent: &str,
    generation: Option<u64>,
    before: Scores,
    after: Scores,
) -> String {
    let plain = common::small_cnn_package(seed);
    let lineage = Lineage {
        parent_version: parent.to_string(),
        parent_generation: generation,
        strategy: Strategy::KCenterGreedy,
        budget: Budget::Count(10),
        seed,
        rows: LineageRows {
            new_train: 8,
            new_holdout: 2,
            old_pool: 8,
            old_holdout: 2,
            replay: 8,
        },
        data_sha256: DataHashes {
            new_train: "n".into(),
            new_holdout: "nh".into(),
            old_pool: "o".into(),
            old_holdout: "oh".into(),
        },
        parent_scores: before,
        scores: after,
        source: None,
    };
    let (package, _) = ModelPackage::new(
        plain.model,
        plain.metadata.classes,
        plain.metadata.preprocess,
        PackageInfo {
            lineage: Some(lineage),
            ..PackageInfo::default()
        },
    )
    .unwrap();
    package.save(uri).unwrap();
    package.metadata.version().to_string()
}

fn plain_package(uri: &str, seed: u64) -> String {
    let package = common::small_cnn_package(seed);
    package.save(uri).unwrap();
    package.metadata.version().to_string()
}

/// Compare-and-set of the pointer: a second writer from the same generation loses and
/// learns the winner; a reader sees the newest generation.
fn pointer_is_compare_and_set(root: &str) {
    let registry = Registry::new(root);
    assert_eq!(registry.champion().unwrap(), None, "{root}: empty registry");
    let a = plain_package(&registry.model_uri("a"), 1);
    let b = plain_package(&registry.model_uri("b"), 2);
    let c = plain_package(&format!("{root}-elsewhere/c"), 3);
    let first = registry.init_champion(&registry.model_uri("a")).unwrap();
    assert_eq!((first.generation, first.version.as_str()), (1, a.as_str()));
    assert!(matches!(
        registry.init_champion(&registry.model_uri("b")),
        Err(Error::InvalidParameter { .. })
    ));
    let won = registry
        .replace_champion(Some(&first), &registry.model_uri("b"), "test")
        .unwrap()
        .unwrap();
    assert_eq!((won.generation, won.version.as_str()), (2, b.as_str()));
    assert_eq!(won.previous.as_deref(), Some(a.as_str()));
    // A promoter that still believes generation 1 is current loses, and nothing changes.
    let lost = registry
        .replace_champion(Some(&first), &format!("{root}-elsewhere/c"), "late")
        .unwrap()
        .unwrap_err();
    assert_eq!(lost, won);
    assert_eq!(registry.champion().unwrap(), Some(won.clone()));
    // A package outside the registry is copied in, content-addressed: retraining the folder
    // it came from later does not change what the pointer names.
    let third = registry
        .replace_champion(Some(&won), &format!("{root}-elsewhere/c"), "outside")
        .unwrap()
        .unwrap();
    assert_eq!(third.version, c);
    assert_eq!(third.package, format!("models/{c}"));
    let retrained = plain_package(&format!("{root}-elsewhere/c"), 4);
    assert_ne!(retrained, c);
    let loaded = ModelPackage::load(&registry.package_uri(&third), &Device::flex()).unwrap();
    assert_eq!(loaded.metadata.version(), c);
    // Packages inside the registry under another name are copied to their version's name.
    assert_eq!(first.package, format!("models/{a}"));
    let history: Vec<u64> = registry
        .history()
        .unwrap()
        .iter()
        .map(|h| h.generation)
        .collect();
    assert_eq!(history, [1, 2, 3]);
}

#[test]
fn the_champion_pointer_is_compare_and_set_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    pointer_is_compare_and_set(&dir.path().join("registry").display().to_string());
    pointer_is_compare_and_set(&format!(
        "file://{}",
        dir.path().join("file-registry").display()
    ));
    pointer_is_compare_and_set("memory://adapt-cas/registry");
    pointer_is_compare_and_set(&format!("{}/adapt-cas-{}", s3_base(), std::process::id()));
}

#[test]
fn only_generation_files_are_champions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("registry");
    let registry = Registry::new(root.display().to_string());
    let a = plain_package(&registry.model_uri("a"), 1);
    registry.init_champion(&registry.model_uri("a")).unwrap();
    // Stray files under champion/: notes, a short name, an editor's backup.
    std::fs::write(
        root.join("champion/zz-notes.json"),
        b"{\"not\": \"a champion\"}",
    )
    .unwrap();
    std::fs::write(root.join("champion/9.json"), b"garbage").unwrap();
    std::fs::write(root.join("champion/00000000000000000001.json~"), b"x").unwrap();
    let champion = registry.champion().unwrap().unwrap();
    assert_eq!(
        (champion.generation, champion.version.as_str()),
        (1, a.as_str())
    );
    assert_eq!(registry.history().unwrap().len(), 1);
    // A generation file whose content names another generation is an error, not a champion.
    let mut forged = champion.clone();
    forged.generation = 7;
    std::fs::write(
        root.join("champion/00000000000000000002.json"),
        serde_json::to_vec(&forged).unwrap(),
    )
    .unwrap();
    let e = registry.champion().unwrap_err();
    assert!(e.to_string().contains("generation 7"), "{e}");
}

/// Staleness is judged by generation: a challenger of generation 1 is stale once the pointer
/// moved on, even when a later generation put the same model back.
#[test]
fn a_challenger_of_an_older_generation_is_stale_even_if_its_model_returns() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path().join("registry").display().to_string());
    let a = plain_package(&registry.model_uri("a"), 1);
    let b_uri = registry.model_uri("b");
    plain_package(&b_uri, 2);
    let g1 = registry.init_champion(&registry.model_uri("a")).unwrap();
    let x_uri = registry.model_uri("x");
    challenger_of(&x_uri, 3, &a, Some(1), scores(0.5, 0.5), scores(0.9, 0.9));
    let g2 = registry
        .replace_champion(Some(&g1), &b_uri, "b")
        .unwrap()
        .unwrap();
    let g3 = registry
        .replace_champion(Some(&g2), &registry.package_uri(&g1), "a again")
        .unwrap()
        .unwrap();
    assert_eq!((g3.generation, g3.version.as_str()), (3, a.as_str()));
    let decision = promote(&registry, &x_uri, &PromotionPolicy::default()).unwrap();
    assert!(!decision.promoted, "{decision:?}");
    assert!(
        decision.reason.contains("generation 1"),
        "{}",
        decision.reason
    );
    assert_eq!(registry.champion().unwrap().unwrap(), g3);
    // Of the current generation: judged and promoted.
    let y_uri = registry.model_uri("y");
    let y = challenger_of(&y_uri, 4, &a, Some(3), scores(0.5, 0.5), scores(0.9, 0.9));
    assert!(
        promote(&registry, &y_uri, &PromotionPolicy::default())
            .unwrap()
            .promoted
    );
    assert_eq!(registry.champion().unwrap().unwrap().version, y);
}

/// A promoter that moved the pointer and died before recording its decision: promoting again
/// records it.
#[test]
fn already_the_champion_is_recorded_like_every_decision() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path().join("registry").display().to_string());
    let a = plain_package(&registry.model_uri("a"), 1);
    let g1 = registry.init_champion(&registry.model_uri("a")).unwrap();
    let x_uri = registry.model_uri("x");
    let x = challenger(&x_uri, 2, &a, scores(0.5, 0.5), scores(0.9, 0.9));
    registry
        .replace_champion(Some(&g1), &x_uri, "moved, then the promoter died")
        .unwrap()
        .unwrap();
    assert_eq!(registry.decision(&x).unwrap(), None);
    let decision = promote(&registry, &x_uri, &PromotionPolicy::default()).unwrap();
    assert!(
        decision.promoted && decision.reason == "already the champion",
        "{decision:?}"
    );
    assert_eq!(registry.decision(&x).unwrap(), Some(decision));
}

#[test]
fn reading_a_missing_registry_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let registry = Registry::new(missing.display().to_string());
    assert_eq!(registry.champion().unwrap(), None);
    assert!(registry.decisions().unwrap().is_empty());
    assert!(!missing.exists(), "a read created {}", missing.display());
}

/// Two adapters of the same champion promote at the same moment: one wins, the other is kept
/// as a rejected challenger saying who won.
fn race(root: &str) {
    let registry = Registry::new(root);
    let parent = plain_package(&registry.model_uri("parent"), 10);
    registry
        .init_champion(&registry.model_uri("parent"))
        .unwrap();
    let before = scores(0.9, 0.5);
    let uris: Vec<String> = (0..2)
        .map(|i| registry.model_uri(&format!("c{i}")))
        .collect();
    let versions: Vec<String> = uris
        .iter()
        .enumerate()
        .map(|(i, uri)| {
            challenger(
                uri,
                20 + i as u64,
                &parent,
                before,
                scores(0.9, 0.8 + 0.05 * i as f64),
            )
        })
        .collect();
    let barrier = Barrier::new(2);
    let decisions: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = uris
            .iter()
            .map(|uri| {
                let (registry, barrier) = (&registry, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    promote(registry, uri, &PromotionPolicy::default()).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<_> = decisions.iter().filter(|d| d.promoted).collect();
    assert_eq!(winners.len(), 1, "{root}: {decisions:#?}");
    let loser = decisions.iter().find(|d| !d.promoted).unwrap();
    let champion = registry.champion().unwrap().unwrap();
    assert_eq!(champion.generation, 2);
    assert_eq!(champion.version, winners[0].challenger);
    assert!(versions.contains(&champion.version));
    assert!(
        loser.reason.contains(&champion.version),
        "the loser names the winner: {}",
        loser.reason
    );
    // Both decisions are on record; asking again gives the recorded one.
    assert_eq!(registry.decisions().unwrap().len(), 2);
    let again = promote(&registry, &loser.package, &PromotionPolicy::default()).unwrap();
    assert_eq!(&again, loser);
}

#[test]
fn a_promotion_race_between_two_adapters_leaves_one_champion() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        race(
            &dir.path()
                .join(format!("race-{round}"))
                .display()
                .to_string(),
        );
        race(&format!("memory://adapt-race-{round}/r"));
    }
    race(&format!("{}/adapt-race-{}", s3_base(), std::process::id()));
}

#[test]
fn a_worse_challenger_is_not_promoted() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(dir.path().display().to_string());
    let parent = plain_package(&registry.model_uri("parent"), 30);
    registry
        .init_champion(&registry.model_uri("parent"))
        .unwrap();
    let policy = PromotionPolicy::default();
    let cases = [
        ("no better", scores(0.9, 0.5), "not better"),
        ("forgets", scores(0.6, 0.95), "forgets the old data"),
    ];
    for (i, (name, after, reason)) in cases.into_iter().enumerate() {
        let uri = registry.model_uri(name);
        challenger(&uri, 40 + i as u64, &parent, scores(0.9, 0.5), after);
        let decision = promote(&registry, &uri, &policy).unwrap();
        assert!(!decision.promoted, "{name}: {decision:?}");
        assert!(
            decision.reason.contains(reason),
            "{name}: {}",
            decision.reason
        );
        assert_eq!(registry.champion().unwrap().unwrap().version, parent);
    }
    // Within the margin on old rows and better overall: promoted.
    let uri = registry.model_uri("good");
    let good = challenger(&uri, 50, &parent, scores(0.9, 0.5), scores(0.89, 0.9));
    assert!(promote(&registry, &uri, &policy).unwrap().promoted);
    assert_eq!(registry.champion().unwrap().unwrap().version, good);
    // A challenger of the old champion is stale now.
    let uri = registry.model_uri("stale");
    challenger(&uri, 60, &parent, scores(0.9, 0.5), scores(0.95, 0.95));
    let stale = promote(&registry, &uri, &policy).unwrap();
    assert!(
        !stale.promoted && stale.reason.contains("champion is now"),
        "{stale:?}"
    );
    assert!(matches!(
        promote(&registry, &registry.model_uri("parent"), &policy),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(matches!(
        promote(
            &registry,
            &uri,
            &PromotionPolicy {
                margin: 2.0,
                ..policy
            }
        ),
        Err(Error::InvalidParameter { .. })
    ));
}

fn quarter(name: &str) -> Manifest {
    let m = Manifest::read(&demo_data().join(name)).unwrap();
    Manifest::new(m.samples.into_iter().step_by(4).collect())
}

/// The monday model: the pretrained backbone with a head trained on monday's quarter.
fn monday_package(config: &TrainConfig) -> ModelPackage {
    let device = Device::flex();
    let backbone = Backbone::EfficientNetLite0(
        load_lite0(&wheel(LITE0_WHEEL_PREFIX), false, &device).unwrap(),
    );
    let classes = ClassMap::new(["background", "brick", "concrete", "ground", "wood"]).unwrap();
    let root = demo_data().join("monday");
    let (train, test) = (quarter("monday_train.jsonl"), quarter("monday_test.jsonl"));
    let outcome = mlops_core::train(
        backbone,
        &classes,
        &ImageSet {
            root: &root,
            manifest: &train,
        },
        &ImageSet {
            root: &root,
            manifest: &test,
        },
        config,
        &Control::new(),
    )
    .unwrap();
    let model: Classifier = outcome.model;
    ModelPackage::new(
        model,
        classes,
        config.preprocess,
        PackageInfo {
            reference: outcome.reference,
            ..PackageInfo::default()
        },
    )
    .unwrap()
    .0
}

#[test]
fn adaptation_learns_tuesday_keeps_monday_and_is_reproducible() {
    let train = TrainConfig {
        feature_cache: Some(test_cache("features")),
        ..TrainConfig::default()
    };
    let parent = monday_package(&train);
    let (monday, tuesday) = (demo_data().join("monday"), demo_data().join("tuesday"));
    let (old, old_test) = (quarter("monday_train.jsonl"), quarter("monday_test.jsonl"));
    // Tuesday's rows as a stream delivers them: some twice.
    let mut new = quarter("tuesday_train.jsonl");
    new.samples.extend(new.samples[..20].to_vec());
    let data = AdaptData {
        new: ImageSet {
            root: &tuesday,
            manifest: &new,
        },
        old: ImageSet {
            root: &monday,
            manifest: &old,
        },
        old_holdout: Some(ImageSet {
            root: &monday,
            manifest: &old_test,
        }),
    };
    let config = AdaptConfig {
        budget: Budget::Count(60),
        train: train.clone(),
        ..AdaptConfig::default()
    };
    let a = adapt(&parent, &data, &config, &Control::new()).unwrap();
    let l = &a.lineage;
    assert_eq!(l.parent_version, parent.metadata.version());
    assert_eq!(l.strategy, Strategy::KCenterGreedy, "the default strategy");
    assert_eq!(
        l.rows.new_train + l.rows.new_holdout,
        200,
        "repeated rows count once"
    );
    assert_eq!(l.rows.new_holdout, 40);
    assert_eq!(
        (l.rows.replay, l.rows.old_pool, l.rows.old_holdout),
        (60, 200, 50)
    );
    assert!(
        l.scores.new > l.parent_scores.new + 0.2,
        "tuesday learnt: {:?} -> {:?}",
        l.parent_scores,
        l.scores
    );
    assert!(
        l.scores.old >= l.parent_scores.old - 0.05,
        "monday kept: {l:?}"
    );
    assert!(l.scores.union > l.parent_scores.union);
    assert_eq!(a.package.metadata.lineage.as_ref(), Some(l));
    assert_eq!(a.package.metadata.classes, parent.metadata.classes);
    let reference = a.package.reference.as_ref().expect("a new drift reference");
    assert_eq!(
        reference.len(),
        l.rows.new_train + l.rows.new_holdout,
        "every new tuesday row"
    );
    // The monitor's calibration is stored with it; its accuracy estimate comes from the
    // held-out rows (old and new).
    let calibration = reference.calibration().expect("a stored calibration");
    let estimator = calibration
        .accuracy
        .as_ref()
        .expect("an accuracy estimator");
    assert_eq!(estimator.rows, l.rows.new_holdout + l.rows.old_holdout);

    // Same inputs, same bytes; another seed, another model.
    let again = adapt(&parent, &data, &config, &Control::new()).unwrap();
    assert_eq!(again.package.metadata.weights, a.package.metadata.weights);
    let other = AdaptConfig {
        train: TrainConfig {
            seed: 7,
            ..train.clone()
        },
        ..config.clone()
    };
    let b = adapt(&parent, &data, &other, &Control::new()).unwrap();
    assert_ne!(b.package.metadata.weights, a.package.metadata.weights);

    // Saved and promoted in a registry; the lineage survives the round trip.
    let registry = Registry::new("memory://adapt-real/registry");
    parent.save(&registry.model_uri("monday")).unwrap();
    registry
        .init_champion(&registry.model_uri("monday"))
        .unwrap();
    let uri = registry.model_uri(a.package.metadata.version());
    a.package.save(&uri).unwrap();
    // Held-out rows other than those the lineage names are refused.
    let mut other_rows = a.held_out.clone();
    other_rows.new.samples.pop();
    let e = promote_rescored(&registry, &uri, &PromotionPolicy::default(), &other_rows);
    assert!(
        matches!(
            e,
            Err(Error::InvalidParameter {
                name: "held_out",
                ..
            })
        ),
        "{e:?}"
    );
    // Scored again on its own held-out rows: the same scores as the lineage's, promoted.
    let decision =
        promote_rescored(&registry, &uri, &PromotionPolicy::default(), &a.held_out).unwrap();
    assert!(decision.promoted && decision.rescored, "{decision:?}");
    assert_eq!(
        (decision.parent_scores, decision.scores),
        (l.parent_scores, l.scores)
    );
    let loaded = ModelPackage::load(&uri, &Device::flex()).unwrap();
    assert_eq!(loaded.metadata.lineage.as_ref(), Some(l));

    // Wrong labels on the new rows make a worse model, which is not promoted.
    let shuffled = Manifest::new(
        new.samples
            .iter()
            .map(|s| Sample::new(s.image_path.clone(), (s.target + 1) % 5))
            .collect(),
    );
    let champion = loaded;
    let bad = adapt(
        &champion,
        &AdaptData {
            new: ImageSet {
                root: &tuesday,
                manifest: &shuffled,
            },
            ..data.clone()
        },
        &config,
        &Control::new(),
    )
    .unwrap();
    // From a shared bucket, claiming perfect scores in its lineage: scored again, it is
    // judged on what it does, and rejected.
    let mut claims = bad.lineage.clone();
    claims.scores = Scores {
        old: 1.0,
        new: 1.0,
        union: 1.0,
    };
    let (forged, _) = ModelPackage::new(
        bad.package.model,
        bad.package.metadata.classes.clone(),
        bad.package.metadata.preprocess,
        PackageInfo {
            lineage: Some(claims),
            ..PackageInfo::default()
        },
    )
    .unwrap();
    let shared = "memory://adapt-real/shared-bucket/bad";
    forged.save(shared).unwrap();
    let rejected = promote_rescored(
        &registry,
        shared,
        &PromotionPolicy::default(),
        &bad.held_out,
    )
    .unwrap();
    assert!(!rejected.promoted && rejected.rescored, "{rejected:?}");
    assert!(rejected.scores.union < 0.9, "{rejected:?}");
    assert_eq!(rejected.scores, bad.lineage.scores, "the real scores");
    assert_eq!(
        registry.champion().unwrap().unwrap().version,
        a.package.metadata.version()
    );
}

#[test]
fn adaptation_rejects_bad_settings_and_data_by_name() {
    let parent = common::small_cnn_package(5);
    let root = demo_data().join("tuesday");
    let m = quarter("tuesday_train.jsonl");
    let one = Manifest::new(m.samples[..1].to_vec());
    let wrong = Manifest::new(vec![Sample::new(m.samples[0].image_path.clone(), 9)]);
    let set = |manifest| ImageSet {
        root: &root,
        manifest,
    };
    let run = |new, config: &AdaptConfig| {
        adapt(
            &parent,
            &AdaptData {
                new: set(new),
                old: set(&m),
                old_holdout: None,
            },
            config,
            &Control::new(),
        )
    };
    let name = |r: Result<_, Error>| match r {
        Err(Error::InvalidParameter { name, .. }) => name,
        other => panic!("expected an invalid parameter, got {other:?}"),
    };
    let config = AdaptConfig::default();
    assert_eq!(name(run(&one, &config)), "new");
    assert_eq!(name(run(&wrong, &config)), "new");
    let bad_holdout = AdaptConfig {
        holdout: 1.0,
        ..AdaptConfig::default()
    };
    assert_eq!(name(run(&m, &bad_holdout)), "holdout");
    // Uncertainty ranks the old rows by the parent's own probabilities.
    let uncertain = AdaptConfig {
        strategy: Strategy::Uncertainty,
        budget: Budget::Count(5),
        train: TrainConfig {
            epochs: 2,
            ..TrainConfig::default()
        },
        ..AdaptConfig::default()
    };
    let adapted = run(&m, &uncertain).unwrap();
    assert_eq!(adapted.lineage.rows.replay, 5);
    assert_eq!(adapted.lineage.strategy, Strategy::Uncertainty);
}
