//! Walks the crash states of a recorded workload, every one or a sample drawn from a
//! seed, and gathers what the checks found in a [`Report`].

use super::checks::check;
use super::model::{prefix, Prefix, Shape};
use super::workloads::Recorded;

/// What one exploration found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Crash points (trace prefixes).
    pub(crate) prefixes: usize,
    /// States checked.
    pub(crate) states: u64,
    /// States the model allows in all (may exceed `states` when sampled).
    pub(crate) possible: u128,
    /// States where SPOOL-META's complete_until pointed past lost records (counted, for
    /// `--durability kernel`, where it is not promised).
    pub(crate) past_durable: u64,
    /// Invariant violations, each saying where.
    pub(crate) violations: Vec<String>,
}

/// A tiny deterministic generator (xorshift), so a sampled run replays from its seed.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator for `seed`; distinct seeds give distinct sequences.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Explores the crash states of `r`: all of them when there are at most `budget`,
/// else `budget` drawn with `seed`, every state as likely as any other.
pub(crate) fn explore(r: &Recorded, budget: u64, seed: u64) -> Report {
    let mut report = Report::default();
    // The replay of the whole trace must give back what the writer left.
    let replayed = prefix(r, &r.ops).everything();
    if replayed != r.after {
        report.violations.push(format!(
            "{}: replaying the whole trace does not give the directory the writer left \
             (an operation not logged?): {:?} vs {:?}",
            r.name,
            replayed.keys().collect::<Vec<_>>(),
            r.after.keys().collect::<Vec<_>>()
        ));
        return report;
    }
    // Every (crash point, shape) with its number of states. A prefix is rebuilt when its
    // states are checked rather than kept, so long traces fit in memory.
    let mut flat: Vec<(usize, Shape, u128)> = Vec::new();
    for k in 0..=r.ops.len() {
        for (shape, n) in prefix(r, &r.ops[..k]).shapes() {
            flat.push((k, shape, n));
        }
    }
    let total: u128 = flat.iter().fold(0u128, |a, (_, _, n)| a.saturating_add(*n));
    report.prefixes = r.ops.len() + 1;
    report.possible = total;
    // (index into flat, state number), in crash-point order.
    let mut picks: Vec<(usize, u128)> = Vec::new();
    if total <= u128::from(budget) {
        for (at, (_, _, n)) in flat.iter().enumerate() {
            picks.extend((0..*n).map(|i| (at, i)));
        }
    } else {
        // `budget` states, every state as likely as any other.
        let mut rng = Rng::new(seed);
        let mut cumulative = Vec::with_capacity(flat.len());
        let mut sum: u128 = 0;
        for (_, _, n) in &flat {
            sum = sum.saturating_add(*n);
            cumulative.push(sum);
        }
        let mut wide = || u128::from(rng.next()) << 64 | u128::from(rng.next());
        for _ in 0..budget {
            let draw = wide() % sum;
            let at = cumulative.partition_point(|&c| c <= draw);
            picks.push((at, wide() % flat[at].2));
        }
        picks.sort_unstable();
    }
    let mut built: Option<(usize, Prefix<'_>)> = None;
    for (at, i) in picks {
        let (k, shape, _) = &flat[at];
        if built.as_ref().is_none_or(|(b, _)| b != k) {
            built = Some((*k, prefix(r, &r.ops[..*k])));
        }
        if let Some((_, p)) = &built {
            check(r, *k, p, shape, i, &mut report);
        }
    }
    report
}
