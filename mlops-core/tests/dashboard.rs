//! The Grafana provisioning files (deploy/grafana): the dashboard's structure, and every
//! panel's SQL run against a real PostgreSQL holding a streamed `cargo_prediction` (Grafana
//! itself cannot run here). Grafana's macros are expanded as Grafana expands them.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{demo_data, fresh_db};
use mlops_core::dataset::{Manifest, Sample};
use mlops_core::db::{StreamConfig, bulk_load, connect, create_table, stream_predictions};
use serde_json::Value;

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana")
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(grafana_dir().join("dashboards/mlops-stream.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn panels(d: &Value) -> &Vec<Value> {
    d["panels"].as_array().unwrap()
}

/// `$__name(args)` replaced by `expand(args)` everywhere in `sql`.
fn expand_macro(sql: &str, name: &str, expand: impl Fn(&[&str]) -> String) -> String {
    let open = format!("$__{name}(");
    let mut out = String::new();
    let mut rest = sql;
    while let Some(start) = rest.find(&open) {
        out.push_str(&rest[..start]);
        let after = &rest[start + open.len()..];
        let end = after.find(')').unwrap();
        let args: Vec<&str> = after[..end].split(',').map(str::trim).collect();
        out.push_str(&expand(&args));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The SQL Grafana's PostgreSQL datasource would send for a time range `from..to`.
fn grafana_sql(sql: &str, from: &str, to: &str) -> String {
    let sql = expand_macro(sql, "timeFilter", |a| {
        format!("{} BETWEEN '{from}' AND '{to}'", a[0])
    });
    let sql = expand_macro(&sql, "timeGroupAlias", |a| {
        let interval = a[1].trim_matches('\'');
        let seconds: u64 = interval.strip_suffix('s').unwrap().parse().unwrap();
        format!(
            "floor(extract(epoch from {})/{seconds})*{seconds} AS \"time\"",
            a[0]
        )
    });
    assert!(
        !sql.contains("$__"),
        "a macro the test does not know: {sql}"
    );
    sql
}

#[test]
fn the_dashboard_is_well_formed_and_uses_the_provisioned_datasource() {
    let d = dashboard();
    assert_eq!(d["uid"], "mlops-stream");
    assert_eq!(d["refresh"], "1s");
    let datasources =
        std::fs::read_to_string(grafana_dir().join("provisioning/datasources/mlops.yaml")).unwrap();
    assert!(datasources.contains("uid: mlops-postgres"));
    assert!(datasources.contains("password: ${MLOPS_PG_PASSWORD}"));
    assert!(datasources.contains("type: grafana-postgresql-datasource"));
    let providers =
        std::fs::read_to_string(grafana_dir().join("provisioning/dashboards/mlops.yaml")).unwrap();
    assert!(providers.contains("path: ${MLOPS_GRAFANA_DASHBOARDS}"));

    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let titles: Vec<&str> = panels(&d)
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "Predictions over time by class",
        "Class distribution",
        "Rows/s",
        "Live accuracy",
        "Errors",
        "Drift alarms",
        "Drift CUSUM and its threshold",
        "Estimated and true accuracy",
        "Latest drift checks",
        "Predictions by model version",
        "Job health",
    ] {
        assert!(titles.contains(&wanted), "no panel {wanted:?}");
    }
    for p in panels(&d) {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        let kind = p["type"].as_str().unwrap();
        assert!(
            ["stat", "timeseries", "piechart", "table"].contains(&kind),
            "{kind}"
        );
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_u64().unwrap(),
            g["y"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(
            w > 0 && h > 0 && x + w <= 24,
            "{} does not fit the grid",
            p["title"]
        );
        for cx in x..x + w {
            for cy in y..y + h {
                assert!(
                    cells.insert((cx, cy)),
                    "{} overlaps another panel",
                    p["title"]
                );
            }
        }
        assert_eq!(p["datasource"]["uid"], "mlops-postgres");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty());
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "mlops-postgres");
            assert_eq!(t["rawQuery"], true);
            let format = t["format"].as_str().unwrap();
            assert!(format == "table" || format == "time_series");
            assert!(!t["rawSql"].as_str().unwrap().is_empty());
        }
    }
}

#[test]
fn every_panel_query_runs_on_a_streamed_database() {
    let url = fresh_db("dashboard");
    let data = demo_data();
    let m = Manifest::read(&data.join("monday.jsonl")).unwrap();
    let mut rows: Vec<Sample> = m.samples.iter().step_by(5).cloned().collect();
    rows.push(Sample::new("brick/no-such-image.png", 1));
    let mut client = connect(Some(&url)).unwrap();
    create_table(&mut client, false).unwrap();
    bulk_load(&mut client, &Manifest::new(rows.clone())).unwrap();

    // A reference sample of the model's own outputs on the rows, so drift checks run.
    let paths: Vec<_> = rows
        .iter()
        .map(|s| data.join("monday").join(&s.image_path))
        .collect();
    let predictor = common::small_cnn_predictor(11);
    let targets: Vec<u32> = rows[..rows.len() - 1].iter().map(|s| s.target).collect();
    let reference = common::reference_of(&predictor, &paths[..paths.len() - 1], Some(&targets));
    let predictor = predictor.with_reference(Some(reference));
    let config = StreamConfig {
        source_url: Some(url.clone()),
        data_root: data.join("monday"),
        poll_interval: Duration::from_millis(50),
        exit_when_idle: true,
        drift: Some(mlops_core::drift::MonitorConfig {
            every: 10,
            ..Default::default()
        }),
        ..StreamConfig::default()
    };
    let stats = stream_predictions(&config, &predictor, "v", &mlops_core::Control::new()).unwrap();
    assert_eq!((stats.predicted, stats.errors), (rows.len() as u64 - 1, 1));
    assert!(stats.drift_checks > 5, "{stats:?}");

    let range = client
        .query_one(
            "SELECT (now() - interval '1 hour')::text, (now() + interval '1 hour')::text",
            &[],
        )
        .unwrap();
    let (from, to): (String, String) = (range.get(0), range.get(1));
    let expected_accuracy: f64 = client
        .query_one(
            "SELECT avg((p.target = c.target)::int)::float8 FROM cargo_prediction p JOIN cargo c USING (id)",
            &[],
        )
        .unwrap()
        .get(0);
    let d = dashboard();
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap();
        let target = &p["targets"][0];
        let sql = grafana_sql(target["rawSql"].as_str().unwrap(), &from, &to);
        let result = client
            .query(&sql, &[])
            .unwrap_or_else(|e| panic!("panel {title:?}: {e:?}\n{sql}"));
        assert!(!result.is_empty(), "panel {title:?} returned no rows");
        let columns: Vec<&str> = result[0].columns().iter().map(|c| c.name()).collect();
        if target["format"] == "time_series" {
            assert_eq!(columns[0], "time", "panel {title:?}");
        }
        match title {
            "Predictions" => assert_eq!(result[0].get::<_, i64>(0), stats.predicted as i64),
            "Errors" => assert_eq!(result[0].get::<_, i64>(0), 1),
            "Drift alarms" => {
                assert_eq!(result[0].get::<_, i64>(0), stats.drift_alarms as i64)
            }
            "Latest drift checks" => {
                assert_eq!(result.len() as u64, stats.drift_checks.min(50));
                let last: i64 = result[0].get("last_id");
                let first: i64 = result[0].get("first_id");
                let rows: i32 = result[0].get("window_rows");
                assert_eq!(last - first + 1, i64::from(rows));
                let estimate: Option<f64> = result[0].get("estimated_accuracy");
                assert!(estimate.is_some_and(|e| (0.0..=1.0).contains(&e)));
            }
            "Backlog" => assert_eq!(result[0].get::<_, i64>(0), 0),
            "Predictions by model version" => {
                let total: i64 = result.iter().map(|r| r.get::<_, i64>("value")).sum();
                assert_eq!(total, stats.predicted as i64);
                let versions: BTreeSet<String> = result.iter().map(|r| r.get("metric")).collect();
                assert_eq!(versions.len(), 1, "one model streamed: {versions:?}");
            }
            "Estimated and true accuracy" => {
                let metrics: BTreeSet<String> = result.iter().map(|r| r.get("metric")).collect();
                assert!(
                    metrics.contains("estimated") && metrics.contains("true (labelled rows)"),
                    "{metrics:?}"
                );
                let estimates: Vec<f64> = result
                    .iter()
                    .filter(|r| r.get::<_, String>("metric") == "estimated")
                    .map(|r| r.get::<_, f64>("value"))
                    .collect();
                let latest = stats.drift_estimated_accuracy.unwrap();
                assert!(estimates.contains(&latest), "{estimates:?} {latest}");
            }
            "Live accuracy" => {
                assert!((result[0].get::<_, f64>(0) - expected_accuracy).abs() < 1e-9)
            }
            "Class distribution" => {
                let total: i64 = result.iter().map(|r| r.get::<_, i64>(1)).sum();
                assert_eq!(total, stats.predicted as i64);
                let names: Vec<String> = result.iter().map(|r| r.get(0)).collect();
                assert!(
                    names.iter().all(|n| predictor.classes().id(n).is_some()),
                    "{names:?}"
                );
            }
            "Job health" => {
                let (job, state): (String, String) = (result[0].get("job"), result[0].get("state"));
                assert_eq!((job.as_str(), state.as_str()), ("stream", "not_watched"));
            }
            "Latest errors" => {
                let reason: String = result[0].get("reason");
                assert!(reason.contains("no-such-image.png"), "{reason}");
            }
            _ => {}
        }
    }
}
