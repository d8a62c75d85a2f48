//! Replay selection: which old (monday) samples to keep training on when shifted (tuesday)
//! data arrives. Every strategy works on an embedding matrix and labels, takes a seed, and
//! returns ranked indices, so the selection for a smaller budget is a prefix of a larger one.
//!
//! - `random`: a uniform sample; labels stay with their images (the original drew them apart).
//! - `core_pair` (`l1`, `l2`, `cosine`): the original's rounds, fixed and generalised: each
//!   round draws one unused sample per class, picks an anchor class at random and keeps the
//!   anchor and its closest sample of another class. `l2` is the true Euclidean distance (the
//!   original's "L2" was L1).
//! - `k_center_greedy` (Sener and Savarese, 2018): repeatedly the sample farthest from all
//!   chosen so far, so the selection covers the embedding space, outliers included.
//! - `herding` (Rebuffi et al., iCaRL, 2017): per class, samples whose running mean best
//!   matches the class mean.
//! - `random_balanced`: random within each class, classes taking turns (equal shares).
//! - `reservoir`: reservoir sampling over the rows in arrival order (Vitter's algorithm R, the
//!   default replay buffer of Avalanche); a uniform sample that a stream can keep up to date.
//!   Unlike the others it is not ranked: a smaller budget is not a prefix of a larger one.
//! - `closest_to_center` (Avalanche's `ClosestToCenterSelectionStrategy`): per class, the
//!   samples nearest (Euclidean) to the class mean, classes taking turns.
//! - `uncertainty` (after Rainbow Memory, Bang et al., 2021): per class, the samples the current
//!   model is least sure of (smallest margin between its two most probable classes), classes
//!   taking turns; needs the model's class probabilities ([`select_with_probabilities`]).
//! - `none` and `all`: the bounds (forgetting, and joint training).

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A row-major matrix of `n` embeddings of width `dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    data: Vec<f32>,
    dim: usize,
}

impl Embeddings {
    /// Embeddings from row-major values; `data.len()` must be a multiple of `dim`.
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Self> {
        Self::named("embeddings", data, dim)
    }

    /// Like [`Embeddings::new`], with errors that name the parameter `name` (for example
    /// `window` or `reference`).
    pub fn named(name: &'static str, data: Vec<f32>, dim: usize) -> Result<Self> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(Error::invalid(
                name,
                format!("{} values do not make rows of width {dim}", data.len()),
            ));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(
                name,
                format!(
                    "row {} column {} holds a non-finite value ({})",
                    i / dim,
                    i % dim,
                    data[i]
                ),
            ));
        }
        Ok(Embeddings { data, dim })
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Width of a row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The rows scaled to unit L2 norm (zero rows stay zero).
    pub fn l2_normalised(mut self) -> Self {
        for row in self.data.chunks_mut(self.dim) {
            let norm = dot(row, row).sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        self
    }
}

/// Sum over `i` of `term(a[i], b[i])`, accumulated in 8 lanes so the loop vectorises.
#[inline(always)]
fn lane_sum(a: &[f32], b: &[f32], term: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| term(x, y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            lanes[k] += term(x[k], y[k]);
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Dot product, vectorised.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| x * y)
}

fn l1(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| (x - y).abs())
}

fn squared_l2(a: &[f32], b: &[f32]) -> f32 {
    lane_sum(a, b, |x, y| (x - y) * (x - y))
}

/// How far apart two embeddings are (smaller is closer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distance {
    /// Sum of absolute differences.
    L1,
    /// Euclidean distance.
    L2,
    /// One minus the cosine similarity.
    Cosine,
}

impl Distance {
    /// The distance between `a` and `b`.
    pub fn between(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Distance::L1 => l1(a, b),
            Distance::L2 => squared_l2(a, b).sqrt(),
            Distance::Cosine => {
                let norms = (dot(a, a) * dot(b, b)).sqrt();
                if norms == 0.0 {
                    1.0
                } else {
                    1.0 - dot(a, b) / norms
                }
            }
        }
    }
}

crate::names::named_enum!(Distance, "distance", { L1 => "l1", L2 => "l2", Cosine => "cosine" });

/// How many samples to select.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// This many (capped at the number of samples).
    Count(usize),
    /// This fraction of the samples, rounded to the nearest count.
    Fraction(f64),
}

impl Budget {
    /// The count for `n` samples.
    pub fn resolve(self, n: usize) -> Result<usize> {
        match self {
            Budget::Count(k) => Ok(k.min(n)),
            Budget::Fraction(f) if (0.0..=1.0).contains(&f) => {
                Ok(((n as f64 * f).round() as usize).min(n))
            }
            Budget::Fraction(f) => Err(Error::invalid(
                "budget",
                format!("a fraction must be in [0, 1], got {f}"),
            )),
        }
    }
}

/// A replay selection strategy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Nothing (forgetting baseline).
    None,
    /// Everything (joint-training bound), in order.
    All,
    /// A uniform random sample; with `class_balanced`, the same number per class (round robin).
    Random {
        /// Sample each class equally.
        class_balanced: bool,
    },
    /// The original's core pairs under `distance`.
    CorePair {
        /// The distance used to find the closest other-class sample.
        distance: Distance,
    },
    /// k-center greedy under Euclidean distance.
    KCenterGreedy,
    /// iCaRL herding per class, the budget shared equally between classes.
    Herding,
    /// Reservoir sampling in arrival (row) order.
    Reservoir,
    /// Per class the samples closest to the class mean, classes taking turns.
    ClosestToCenter,
    /// Per class the samples with the smallest top-2 probability margin, classes taking turns.
    Uncertainty,
}

impl Strategy {
    /// Every strategy name [`Strategy`]'s `FromStr` accepts.
    pub const NAMES: &'static [&'static str] = &[
        "none",
        "all",
        "random",
        "random_balanced",
        "cp_l1",
        "cp_l2",
        "cp_cosine",
        "k_center",
        "herding",
        "reservoir",
        "closest_to_center",
        "uncertainty",
    ];

    /// The name for tables, file names, serde, command lines and Python (`random`, `cp_l1`,
    /// `k_center`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::None => "none",
            Strategy::All => "all",
            Strategy::Random {
                class_balanced: false,
            } => "random",
            Strategy::Random {
                class_balanced: true,
            } => "random_balanced",
            Strategy::CorePair {
                distance: Distance::L1,
            } => "cp_l1",
            Strategy::CorePair {
                distance: Distance::L2,
            } => "cp_l2",
            Strategy::CorePair {
                distance: Distance::Cosine,
            } => "cp_cosine",
            Strategy::KCenterGreedy => "k_center",
            Strategy::Herding => "herding",
            Strategy::Reservoir => "reservoir",
            Strategy::ClosestToCenter => "closest_to_center",
            Strategy::Uncertainty => "uncertainty",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Strategy {
    type Err = Error;

    /// Parses a [`Strategy::name`].
    fn from_str(name: &str) -> Result<Self> {
        Ok(match name {
            "none" => Strategy::None,
            "all" => Strategy::All,
            "random" => Strategy::Random {
                class_balanced: false,
            },
            "random_balanced" => Strategy::Random {
                class_balanced: true,
            },
            "k_center" => Strategy::KCenterGreedy,
            "herding" => Strategy::Herding,
            "reservoir" => Strategy::Reservoir,
            "closest_to_center" => Strategy::ClosestToCenter,
            "uncertainty" => Strategy::Uncertainty,
            other => match other.strip_prefix("cp_").map(str::parse::<Distance>) {
                Some(Ok(distance)) => Strategy::CorePair { distance },
                _ => {
                    return Err(Error::invalid(
                        "strategy",
                        format!(
                            "unknown strategy `{other}`; expected one of {}",
                            Strategy::NAMES.join(", ")
                        ),
                    ));
                }
            },
        })
    }
}

crate::names::serde_as_name!(Strategy);

/// Selected samples in rank order, each with a strategy-specific score (core pair: the pair's
/// distance; k-center: the distance to the chosen set when picked; herding: the mean-matching
/// error after the pick; random: its draw position).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Row indices, unique, best first.
    pub indices: Vec<usize>,
    /// One score per index.
    pub scores: Vec<f64>,
}

/// Selects up to `budget` rows of `embeddings` (labels `labels`) with `strategy`, seeded.
/// `uncertainty` needs the model's probabilities: use [`select_with_probabilities`].
pub fn select(
    strategy: &Strategy,
    embeddings: &Embeddings,
    labels: &[u32],
    budget: Budget,
    seed: u64,
) -> Result<Selection> {
    select_inner(strategy, embeddings, labels, None, budget, seed)
}

/// [`select`] with the current model's class probabilities of every row (`probabilities`: one
/// row per embedding, one column per class), which `uncertainty` ranks by; other strategies
/// ignore them.
pub fn select_with_probabilities(
    strategy: &Strategy,
    embeddings: &Embeddings,
    labels: &[u32],
    probabilities: &Embeddings,
    budget: Budget,
    seed: u64,
) -> Result<Selection> {
    if probabilities.len() != embeddings.len() {
        return Err(Error::invalid(
            "probabilities",
            format!(
                "{} probability rows for {} embeddings",
                probabilities.len(),
                embeddings.len()
            ),
        ));
    }
    select_inner(
        strategy,
        embeddings,
        labels,
        Some(probabilities),
        budget,
        seed,
    )
}

fn select_inner(
    strategy: &Strategy,
    embeddings: &Embeddings,
    labels: &[u32],
    probabilities: Option<&Embeddings>,
    budget: Budget,
    seed: u64,
) -> Result<Selection> {
    let n = embeddings.len();
    if labels.len() != n {
        return Err(Error::invalid(
            "labels",
            format!("{} labels for {n} embeddings", labels.len()),
        ));
    }
    let k = budget.resolve(n)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (indices, scores) = match strategy {
        Strategy::None => (Vec::new(), Vec::new()),
        Strategy::All => ((0..n).collect(), vec![0.0; n]),
        Strategy::Random {
            class_balanced: false,
        } => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut rng);
            order.truncate(k);
            let scores = (0..order.len()).map(|i| i as f64).collect();
            (order, scores)
        }
        Strategy::Random {
            class_balanced: true,
        } => {
            let mut classes = by_class(labels);
            for members in classes.values_mut() {
                members.shuffle(&mut rng);
            }
            let order = round_robin(classes.into_values().collect(), k);
            let scores = (0..order.len()).map(|i| i as f64).collect();
            (order, scores)
        }
        Strategy::CorePair { distance } => core_pairs(embeddings, labels, k, *distance, &mut rng),
        Strategy::KCenterGreedy => k_center_greedy(embeddings, k, &mut rng),
        Strategy::Herding => herding(embeddings, labels, k),
        Strategy::Reservoir => reservoir(n, k, &mut rng),
        Strategy::ClosestToCenter => {
            let distance = class_centre_distances(embeddings, labels);
            balanced_by_score(labels, &distance, k)
        }
        Strategy::Uncertainty => {
            let probabilities = probabilities.ok_or_else(|| {
                Error::invalid(
                    "probabilities",
                    "the uncertainty strategy needs the current model's class probabilities",
                )
            })?;
            let margins: Vec<f64> = (0..n).map(|i| top2_margin(probabilities.row(i))).collect();
            balanced_by_score(labels, &margins, k)
        }
    };
    Ok(Selection { indices, scores })
}

fn by_class(labels: &[u32]) -> BTreeMap<u32, Vec<usize>> {
    let mut classes: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        classes.entry(l).or_default().push(i);
    }
    classes
}

/// Interleaves ranked lists (one per class) until `k` items are taken or all run out.
fn round_robin(lists: Vec<Vec<usize>>, k: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(k);
    let mut depth = 0;
    while out.len() < k && lists.iter().any(|l| l.len() > depth) {
        for list in &lists {
            if out.len() < k && depth < list.len() {
                out.push(list[depth]);
            }
        }
        depth += 1;
    }
    out
}

/// Algorithm R: the first `k` rows fill the reservoir, row `i` then replaces a uniformly drawn
/// slot with probability `k / (i + 1)`. Scores: the row's arrival position.
fn reservoir(n: usize, k: usize, rng: &mut ChaCha8Rng) -> (Vec<usize>, Vec<f64>) {
    let mut slots: Vec<usize> = (0..k.min(n)).collect();
    for i in k..n {
        let j = rng.random_range(0..=i);
        if j < k {
            slots[j] = i;
        }
    }
    let scores = slots.iter().map(|&i| i as f64).collect();
    (slots, scores)
}

/// Euclidean distance of every row to the mean of its class.
fn class_centre_distances(e: &Embeddings, labels: &[u32]) -> Vec<f64> {
    let mut distance = vec![0f64; e.len()];
    for members in by_class(labels).values() {
        let mut mean = vec![0f32; e.dim()];
        for &i in members {
            for (m, v) in mean.iter_mut().zip(e.row(i)) {
                *m += v;
            }
        }
        let inv = 1.0 / members.len() as f32;
        mean.iter_mut().for_each(|m| *m *= inv);
        for &i in members {
            distance[i] = f64::from(squared_l2(e.row(i), &mean).sqrt());
        }
    }
    distance
}

/// Probability of the most probable class minus that of the second (1 with one class).
fn top2_margin(p: &[f32]) -> f64 {
    let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in p {
        if v > first {
            (first, second) = (v, first);
        } else if v > second {
            second = v;
        }
    }
    if second.is_finite() {
        f64::from(first - second)
    } else {
        1.0
    }
}

/// Per class the rows with the smallest `score` (ties by row), classes taking turns.
fn balanced_by_score(labels: &[u32], score: &[f64], k: usize) -> (Vec<usize>, Vec<f64>) {
    let lists = by_class(labels)
        .into_values()
        .map(|mut members| {
            members.sort_by(|&a, &b| score[a].total_cmp(&score[b]).then(a.cmp(&b)));
            members
        })
        .collect();
    let order = round_robin(lists, k);
    let scores = order.iter().map(|&i| score[i]).collect();
    (order, scores)
}

/// The original's core-pair rounds. Each round: one unused sample drawn per class that still
/// has any; an anchor class drawn among them; the anchor kept with the closest drawn sample
/// of another class. Stops at the budget or when fewer than two classes have unused samples.
fn core_pairs(
    e: &Embeddings,
    labels: &[u32],
    k: usize,
    distance: Distance,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<f64>) {
    let mut pools: Vec<Vec<usize>> = by_class(labels).into_values().collect();
    for pool in &mut pools {
        pool.shuffle(rng);
    }
    let (mut indices, mut scores) = (Vec::with_capacity(k), Vec::with_capacity(k));
    while indices.len() < k {
        let live: Vec<usize> = (0..pools.len()).filter(|&c| !pools[c].is_empty()).collect();
        if live.len() < 2 {
            break;
        }
        // One candidate per live class (the next of its shuffled pool).
        let candidates: Vec<(usize, usize)> = live
            .iter()
            .map(|&c| (c, *pools[c].last().unwrap_or(&0)))
            .collect();
        let anchor_pos = rng.random_range(0..candidates.len());
        let (anchor_class, anchor) = candidates[anchor_pos];
        let (partner_class, partner, d) = candidates
            .iter()
            .filter(|(c, _)| *c != anchor_class)
            .map(|&(c, i)| (c, i, distance.between(e.row(anchor), e.row(i))))
            .min_by(|a, b| a.2.total_cmp(&b.2).then(a.1.cmp(&b.1)))
            .unwrap_or((anchor_class, anchor, f32::NAN));
        pools[anchor_class].pop();
        pools[partner_class].pop();
        for i in [anchor, partner] {
            if indices.len() < k {
                indices.push(i);
                scores.push(f64::from(d));
            }
        }
    }
    (indices, scores)
}

/// k-center greedy: a random first center, then always the row farthest (Euclidean) from all
/// chosen centers.
fn k_center_greedy(e: &Embeddings, k: usize, rng: &mut ChaCha8Rng) -> (Vec<usize>, Vec<f64>) {
    let n = e.len();
    if k == 0 || n == 0 {
        return (Vec::new(), Vec::new());
    }
    let first = rng.random_range(0..n);
    let mut nearest: Vec<f32> = (0..n).map(|i| squared_l2(e.row(i), e.row(first))).collect();
    let (mut indices, mut scores) = (vec![first], vec![f64::INFINITY]);
    while indices.len() < k {
        let (next, far) = nearest
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)))
            .map(|(i, d)| (i, *d))
            .unwrap_or((0, 0.0));
        if far <= 0.0 {
            break; // every row coincides with a center
        }
        indices.push(next);
        scores.push(f64::from(far.sqrt()));
        let center = e.row(next);
        for (i, d) in nearest.iter_mut().enumerate() {
            let to_new = squared_l2(e.row(i), center);
            if to_new < *d {
                *d = to_new;
            }
        }
    }
    (indices, scores)
}

/// How many items [`round_robin`] takes from each list of these lengths for `k` items.
fn round_robin_counts(lengths: &[usize], k: usize) -> Vec<usize> {
    let mut counts = vec![0; lengths.len()];
    let mut taken = 0;
    let mut depth = 0;
    while taken < k && lengths.iter().any(|&l| l > depth) {
        for (c, &l) in lengths.iter().enumerate() {
            if taken < k && depth < l {
                counts[c] += 1;
                taken += 1;
            }
        }
        depth += 1;
    }
    counts
}

/// iCaRL herding per class, the per-class rankings interleaved class by class (so each class
/// gets an equal share, and a class that runs out leaves its share to the others).
fn herding(e: &Embeddings, labels: &[u32], k: usize) -> (Vec<usize>, Vec<f64>) {
    let classes = by_class(labels);
    let lengths: Vec<usize> = classes.values().map(Vec::len).collect();
    let quotas = round_robin_counts(&lengths, k);
    let mut lists = Vec::new();
    let mut score_of = vec![0f64; e.len()];
    for (members, quota) in classes.values().zip(quotas) {
        let (chosen, errors) = herd_class(e, members, quota);
        for (&i, err) in chosen.iter().zip(errors) {
            score_of[i] = err;
        }
        lists.push(chosen);
    }
    let order = round_robin(lists, k);
    let scores = order.iter().map(|&i| score_of[i]).collect();
    (order, scores)
}

/// Picks `quota` members one by one, each minimising `|mu - (sum + x) / t|` where `mu` is the
/// class mean and `sum` the sum of the picks so far.
fn herd_class(e: &Embeddings, members: &[usize], quota: usize) -> (Vec<usize>, Vec<f64>) {
    let d = e.dim();
    let mut mu = vec![0f32; d];
    for &i in members {
        for (m, v) in mu.iter_mut().zip(e.row(i)) {
            *m += v;
        }
    }
    let inv = 1.0 / members.len().max(1) as f32;
    mu.iter_mut().for_each(|m| *m *= inv);
    // |mu - (s + x)/t|^2 = |mu|^2 - 2/t (mu.s + mu.x) + 1/t^2 (|s|^2 + 2 s.x + |x|^2);
    // keep mu.x, |x|^2 and s.x per member, updating s.x with each pick.
    let mu_x: Vec<f32> = members.iter().map(|&i| dot(&mu, e.row(i))).collect();
    let xx: Vec<f32> = members.iter().map(|&i| dot(e.row(i), e.row(i))).collect();
    let mut s_x = vec![0f32; members.len()];
    let (mut mu_s, mut ss) = (0f32, 0f32);
    let mu_mu = dot(&mu, &mu);
    let mut used = vec![false; members.len()];
    let (mut chosen, mut errors) = (Vec::with_capacity(quota), Vec::with_capacity(quota));
    for t in 1..=quota {
        let t = t as f32;
        let best = (0..members.len())
            .filter(|&m| !used[m])
            .map(|m| {
                let err =
                    mu_mu - 2.0 / t * (mu_s + mu_x[m]) + (ss + 2.0 * s_x[m] + xx[m]) / (t * t);
                (m, err)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let Some((m, err)) = best else { break };
        used[m] = true;
        chosen.push(members[m]);
        errors.push(f64::from(err.max(0.0)).sqrt());
        mu_s += mu_x[m];
        ss += 2.0 * s_x[m] + xx[m];
        let picked = e.row(members[m]);
        for (k, &i) in members.iter().enumerate() {
            if !used[k] {
                s_x[k] += dot(picked, e.row(i));
            }
        }
    }
    (chosen, errors)
}
