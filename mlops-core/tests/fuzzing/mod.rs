//! A small mutation fuzzer for the harnesses in `tests/fuzz.rs`: seeded, so a `make test` run
//! is reproducible, and long when asked (`MLOPS_FUZZ_SECONDS`).
//!
//! Each target starts from valid seed inputs and the regression corpus
//! (`tests/fuzz-corpus/<target>/`, every crash ever found), then mutates: bit flips, random
//! bytes, inserted or deleted runs, copies within the input, splices of two inputs, interesting
//! integers and the target's dictionary tokens. Inputs the target accepted join the pool, so
//! mutations go deeper than the seeds. A panic is caught, its input saved under
//! `target/fuzz-crashes/<target>/` and the harness fails listing them.
//!
//! Memory: every 256 inputs (and at the end) the peak resident set since the last check is read;
//! above `MLOPS_FUZZ_RSS_MIB` (default 768) the recent inputs are replayed one by one to find the
//! one that needed it, which is saved and fails the run like a panic.
//!
//! Settings: `MLOPS_FUZZ_SECONDS` (per target; default 2), `MLOPS_FUZZ_SEED` (default 2022),
//! `MLOPS_FUZZ_RSS_MIB` (default 768).

#![allow(dead_code)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a target did with one input.
pub enum Verdict {
    /// Parsed and passed its checks: worth mutating further.
    Accepted,
    /// Refused with an error (the expected outcome for most inputs).
    Refused,
}

/// A run's counts, printed and written to `target/fuzz-report/<target>.json`.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The target.
    pub target: String,
    /// Inputs tried.
    pub cases: u64,
    /// Of which accepted.
    pub accepted: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// The largest resident set the process reached while this target ran (VmHWM), MiB.
    pub peak_rss_mib: f64,
    /// The limit on it, MiB.
    pub rss_limit_mib: f64,
    /// Seed of the run.
    pub seed: u64,
    /// Panicking inputs saved.
    pub crashes: Vec<PathBuf>,
    /// Inputs that took the process over the memory limit, saved.
    pub memory_hogs: Vec<PathBuf>,
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The regression inputs of `target`.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

/// A `kB` field of `/proc/self/status` in MiB (0 where unreadable).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The process's peak resident set in MiB (since the last [`reset_peak_rss`]).
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM")
}

/// The process's resident set now, MiB.
fn rss_mib() -> f64 {
    status_mib("VmRSS")
}

/// Starts a new peak-RSS measurement (Linux `clear_refs` 5).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

const INTERESTING: &[&[u8]] = &[
    b"0",
    b"-1",
    b"4294967295",
    b"4294967296",
    b"2147483647",
    b"-2147483648",
    b"9223372036854775807",
    b"18446744073709551616",
    b"1e308",
    b"1e999",
    b"NaN",
    b"-0",
    b"",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\x00\x00\x00\x40",
];

/// One mutation of `input` (others may be spliced in from `pool`).
fn mutate(rng: &mut ChaCha8Rng, input: &[u8], pool: &[Vec<u8>], tokens: &[&[u8]]) -> Vec<u8> {
    let mut out = input.to_vec();
    let rounds = 1 + rng.random_range(0..4);
    for _ in 0..rounds {
        let len = out.len();
        let at = if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        };
        match rng.random_range(0..9) {
            0 if len > 0 => out[at] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => out[at] = rng.random(),
            2 => {
                let n = rng.random_range(1..16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let end = (at + rng.random_range(1..64)).min(len);
                out.drain(at..end);
            }
            4 if len > 0 => {
                let end = (at + rng.random_range(1..64)).min(len);
                let copy = out[at..end].to_vec();
                let to = rng.random_range(0..=len);
                out.splice(to..to, copy);
            }
            5 if !pool.is_empty() => {
                let other = &pool[rng.random_range(0..pool.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let end = (from + rng.random_range(1..256)).min(other.len());
                    out.splice(
                        at..len.min(at + rng.random_range(0..256)),
                        other[from..end].to_vec(),
                    );
                }
            }
            6 => {
                let token = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let end = (at + token.len().max(1)).min(len);
                out.splice(at..end, token.iter().copied());
            }
            7 if !tokens.is_empty() => {
                let token = tokens[rng.random_range(0..tokens.len())];
                out.splice(at..at, token.iter().copied());
            }
            8 if len > 0 => out.truncate(at),
            _ => {}
        }
    }
    out
}

const CHECK_EVERY: usize = 256;

/// Saves `input` under `dir`, named by its hash.
fn save(dir: &Path, input: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let name = mlops_core::seed::sha256_hex(input);
    let path = dir.join(&name[..16]);
    std::fs::write(&path, input).unwrap();
    path
}

/// The peak RSS since the last check; over `limit`, replays `recent` one input at a time to
/// find and save the ones that need that much. Empties `recent` and restarts the measurement.
fn memory_check(
    recent: &mut Vec<Vec<u8>>,
    limit: f64,
    check: &mut impl FnMut(&[u8]) -> Verdict,
    crash_dir: &Path,
    report: &mut Report,
) -> f64 {
    let peak = peak_rss_mib();
    if peak > limit {
        // The culprits: inputs that grow the resident set by a third of the limit or more
        // (freed memory may stay resident, so growth, not the level, is what each is charged).
        for input in recent.iter() {
            let before = rss_mib();
            reset_peak_rss();
            let _ = catch_unwind(AssertUnwindSafe(|| check(input)));
            let used = peak_rss_mib() - before;
            if used > limit / 3.0 {
                eprintln!("fuzz {}: an input took {used:.0} MiB more", report.target);
                report
                    .memory_hogs
                    .push(save(&crash_dir.with_extension("memory"), input));
            }
        }
        if report.memory_hogs.is_empty() {
            // No single input: the resident set grew across inputs, a leak.
            let path = save(&crash_dir.with_extension("leak"), &recent.concat());
            eprintln!(
                "fuzz {}: {peak:.0} MiB resident with no input to blame; the last inputs: {path:?}",
                report.target
            );
            report.memory_hogs.push(path);
        }
    }
    recent.clear();
    reset_peak_rss();
    peak
}

/// Runs `check` on the seeds, the regression corpus and mutations of them for the configured
/// time; fails listing the inputs that panicked.
pub fn fuzz(
    target: &str,
    seeds: Vec<Vec<u8>>,
    tokens: &[&[u8]],
    mut check: impl FnMut(&[u8]) -> Verdict,
) -> Report {
    let seconds: f64 = env_number("MLOPS_FUZZ_SECONDS", 2.0);
    let seed: u64 = env_number("MLOPS_FUZZ_SEED", 2022);
    let limit: f64 = env_number("MLOPS_FUZZ_RSS_MIB", 768.0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let crash_dir = workspace().join("target/fuzz-crashes").join(target);
    let mut pool: Vec<Vec<u8>> = seeds;
    let seeds = pool.len();
    let mut pool_bytes: usize = pool.iter().map(Vec::len).sum();
    let fixed: Vec<Vec<u8>> = pool.iter().cloned().chain(corpus(target)).collect();
    let mut report = Report {
        target: target.to_string(),
        cases: 0,
        accepted: 0,
        seconds: 0.0,
        peak_rss_mib: 0.0,
        rss_limit_mib: limit,
        seed,
        crashes: Vec::new(),
        memory_hogs: Vec::new(),
    };
    let started = Instant::now();
    let budget = Duration::from_secs_f64(seconds);
    let mut queue = fixed.into_iter();
    let mut recent: Vec<Vec<u8>> = Vec::with_capacity(CHECK_EVERY);
    let mut peak = 0.0f64;
    reset_peak_rss();
    loop {
        let input = match queue.next() {
            Some(input) => input,
            None if started.elapsed() >= budget => break,
            None => {
                // A quarter of the time from a seed, so every seed's format stays explored.
                let from = if rng.random_range(0..4) == 0 {
                    seeds
                } else {
                    pool.len()
                };
                let base = &pool[rng.random_range(0..from)];
                mutate(&mut rng, base, &pool, tokens)
            }
        };
        report.cases += 1;
        match catch_unwind(AssertUnwindSafe(|| check(&input))) {
            Ok(Verdict::Accepted) => {
                report.accepted += 1;
                // The pool is kept small (4096 inputs, 32 MiB) so that the fuzzer's own memory
                // does not hide the target's.
                if pool.len() < 4096 && pool_bytes + input.len() <= 32 << 20 {
                    pool_bytes += input.len();
                    pool.push(input.clone());
                }
            }
            Ok(Verdict::Refused) => {}
            Err(_) => {
                report.crashes.push(save(&crash_dir, &input));
                if report.crashes.len() >= 20 {
                    break;
                }
            }
        }
        recent.push(input);
        if recent.len() == CHECK_EVERY {
            peak = peak.max(memory_check(
                &mut recent,
                limit,
                &mut check,
                &crash_dir,
                &mut report,
            ));
        }
    }
    peak = peak.max(memory_check(
        &mut recent,
        limit,
        &mut check,
        &crash_dir,
        &mut report,
    ));
    report.seconds = started.elapsed().as_secs_f64();
    report.peak_rss_mib = peak;
    let dir = workspace().join("target/fuzz-report");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{target}.json")),
        serde_json::to_string_pretty(&report).unwrap(),
    )
    .unwrap();
    eprintln!(
        "fuzz {target}: {} cases ({} accepted) in {:.1} s, {:.0}/s, peak RSS {:.0} MiB, seed {seed}",
        report.cases,
        report.accepted,
        report.seconds,
        report.cases as f64 / report.seconds.max(1e-9),
        report.peak_rss_mib
    );
    assert!(
        report.memory_hogs.is_empty(),
        "fuzz {target}: {} inputs took the process over {limit} MiB (saved): {:?}",
        report.memory_hogs.len(),
        report.memory_hogs
    );
    assert!(
        report.crashes.is_empty(),
        "fuzz {target}: {} inputs panicked (saved; copy them to mlops-core/tests/fuzz-corpus/{target}/ as regressions): {:?}",
        report.crashes.len(),
        report.crashes
    );
    report
}
