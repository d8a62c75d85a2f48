//! Connection settings from `PG*` variables and URLs, against the real test server: a password
//! with spaces, quotes, backslashes and `keyword=value` text is only a password.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::process::Command;

use mlops_core::db::{config_from_vars, connect};

/// A password that breaks any `key=value` connection string it is pasted into.
const TRICKY: &str = "pa ss'w\"o\\rd dbname=template1 user=postgres ";

/// Creates (or resets) the role `tricky` with [`TRICKY`] as its password, once per run; returns
/// the server's host and port.
fn tricky_role() -> (String, u16) {
    static ROLE: std::sync::OnceLock<(String, u16)> = std::sync::OnceLock::new();
    ROLE.get_or_init(create_tricky_role).clone()
}

fn create_tricky_role() -> (String, u16) {
    let url = common::pg_server_url();
    let mut admin = connect(Some(&url)).unwrap();
    let literal = TRICKY.replace('\'', "''");
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tricky') THEN
                     CREATE ROLE tricky LOGIN;
                 END IF;
             END $$;
             ALTER ROLE tricky PASSWORD '{literal}'"
        ))
        .unwrap();
    let config: postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        other => panic!("the test server is not on TCP: {other:?}"),
    };
    (host, config.get_ports()[0])
}

fn pg_vars(host: &str, port: u16, password: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("PGHOST", host.to_string()),
        ("PGPORT", port.to_string()),
        ("PGUSER", "tricky".to_string()),
        ("PGPASSWORD", password.to_string()),
        ("PGDATABASE", "postgres".to_string()),
    ])
}

#[test]
fn a_password_with_spaces_and_quotes_from_pg_variables_is_only_a_password() {
    let (host, port) = tricky_role();
    let vars = pg_vars(&host, port, TRICKY);
    let mut client = config_from_vars(|k| vars.get(k).cloned())
        .unwrap()
        .connect(postgres::NoTls)
        .unwrap();
    let row = client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .unwrap();
    // Had the text been pasted, `user=postgres dbname=template1` would have won.
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("tricky".into(), "postgres".into())
    );
    // One character less is refused: the password really was checked.
    let wrong = pg_vars(&host, port, TRICKY.trim_end());
    let Err(err) = config_from_vars(|k| wrong.get(k).cloned())
        .unwrap()
        .connect(postgres::NoTls)
    else {
        panic!("a wrong password connected");
    };
    assert!(err.to_string().contains("db error"), "{err}");
    let bad_port = HashMap::from([("PGPORT", "54x".to_string())]);
    let err = config_from_vars(|k| bad_port.get(k).cloned()).unwrap_err();
    assert!(err.to_string().contains("PGPORT"), "{err}");
}

/// Not a test: connects with `connect(None)` from the variables its parent set.
#[test]
#[ignore = "run by connect_none_reads_the_environment as a child process"]
fn env_child() {
    let mut client = connect(None).unwrap();
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    println!("user={user}");
}

#[test]
fn connect_none_reads_the_pg_environment() {
    let (host, port) = tricky_role();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "env_child", "--nocapture"])
        .envs(pg_vars(&host, port, TRICKY))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("user=tricky"), "{stdout}");
}

#[test]
fn a_percent_encoded_password_in_a_url_is_decoded() {
    let (host, port) = tricky_role();
    let encoded: String = TRICKY
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let url = format!("postgresql://tricky:{encoded}@{host}:{port}/postgres");
    let mut client = connect(Some(&url)).unwrap();
    let user: String = client
        .query_one("SELECT current_user::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(user, "tricky");
}
