//! Connections to PostgreSQL and the retry rules every long-running job (stream, Kafka
//! publisher and consumer) shares: what a lost connection looks like, how to report it, how
//! to wait before the next try.

use std::time::{Duration, Instant};

use postgres::{Client, NoTls};

use crate::control::Control;
use crate::error::{Error, Result};

/// Connects to `url` (`postgresql://user:password@host:port/db`); without one, the usual
/// `PG*` environment variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`).
pub fn connect(url: Option<&str>) -> Result<Client> {
    connect_config(url)?
        .connect(NoTls)
        .map_err(|e| db_error(&format!("connect to {}", shown(url)), e))
}

/// The connection settings [`connect`] uses, with a 10 s connect timeout and TCP keepalives
/// (so a vanished server is noticed). `PG*` values go through the driver's setters, so a
/// password with spaces or quotes is just a password.
pub fn connect_config(url: Option<&str>) -> Result<postgres::Config> {
    let mut config = match url {
        Some(url) => url.parse::<postgres::Config>().map_err(|e| {
            Error::invalid(
                "url",
                format!("{} is not a PostgreSQL URL: {e}", redact(url)),
            )
        })?,
        None => config_from_vars(|k| std::env::var(k).ok())?,
    };
    config.connect_timeout(Duration::from_secs(10));
    config.keepalives(true);
    config.keepalives_idle(Duration::from_secs(30));
    Ok(config)
}

/// The settings of `PGHOST` (default `127.0.0.1`), `PGPORT` (5432), `PGUSER` (`postgres`),
/// `PGPASSWORD` and `PGDATABASE` (`postgres`) as `var` returns them, each through the
/// driver's setter (nothing is pasted into a keyword string, so any byte of a password is
/// just a byte of the password).
pub fn config_from_vars(var: impl Fn(&str) -> Option<String>) -> Result<postgres::Config> {
    let get = |k: &str, default: &str| var(k).unwrap_or_else(|| default.to_string());
    let port = get("PGPORT", "5432");
    let port = port
        .parse::<u16>()
        .map_err(|_| Error::invalid("PGPORT", format!("`{port}` is not a port number")))?;
    let mut config = postgres::Config::new();
    config
        .host(&get("PGHOST", "127.0.0.1"))
        .port(port)
        .user(&get("PGUSER", "postgres"))
        .dbname(&get("PGDATABASE", "postgres"));
    if let Some(password) = var("PGPASSWORD") {
        config.password(password);
    }
    Ok(config)
}

fn shown(url: Option<&str>) -> String {
    url.map_or_else(|| "the PG* environment".into(), redact)
}

/// A database error for `what`; the driver's error (with the server's message) is its source
/// ([`Error::report`] prints both).
pub(crate) fn db_error(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Database {
        what: what.to_string(),
        source: Box::new(e),
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Whether `e` is a lost or refused connection worth retrying (the server restarting, a
/// network error), as opposed to a bad password or a bad statement.
pub fn is_transient(e: &postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        let code = code.code();
        return code.starts_with("08")
            || code.starts_with("57P")
            || code.starts_with("53")
            || code == "40001"
            || code == "40P01";
    }
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Why a step of a long-running job stopped.
pub(crate) enum StepError {
    /// The connection was lost: reconnect and go on.
    Transient(Error),
    /// Stop the job.
    Fatal(Error),
}

impl StepError {
    /// The error, for a step that must not be retried (the first connection).
    pub(crate) fn into_error(self) -> Error {
        match self {
            StepError::Transient(e) | StepError::Fatal(e) => e,
        }
    }
}

/// Sorts a driver error into retry or stop.
pub(crate) fn classify(what: &str, e: postgres::Error) -> StepError {
    if is_transient(&e) {
        StepError::Transient(db_error(what, e))
    } else {
        StepError::Fatal(db_error(what, e))
    }
}

/// Connects for a long-running job: a lost server is [`StepError::Transient`], a bad URL or
/// password [`StepError::Fatal`].
pub(crate) fn open_client(url: Option<&str>) -> std::result::Result<Client, StepError> {
    connect_config(url)
        .map_err(StepError::Fatal)?
        .connect(NoTls)
        .map_err(|e| classify(&format!("connect to {}", shown(url)), e))
}

/// Exponential backoff between reconnection attempts, from 100 ms up to a maximum.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at 100 ms, doubling up to `max`.
    pub(crate) fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(100),
            max,
        }
    }

    /// Back to the first delay after a success.
    pub(crate) fn reset(&mut self) {
        self.next = Duration::from_millis(100).min(self.max);
    }

    /// Logs the lost connection, sleeps (waking early on cancel) and doubles the next delay.
    pub(crate) fn wait(&mut self, job: &str, error: &Error, control: &Control) {
        log::warn!(
            "{job}: connection lost ({error}); retrying in {:.1} s",
            self.next.as_secs_f64()
        );
        sleep_unless_cancelled(self.next, control);
        self.next = (self.next * 2).min(self.max);
    }
}

/// Sleeps up to `total`, waking early when `control` is cancelled.
pub(crate) fn sleep_unless_cancelled(total: Duration, control: &Control) {
    let until = Instant::now() + total;
    while !control.is_cancelled() {
        let now = Instant::now();
        if now >= until {
            break;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}
