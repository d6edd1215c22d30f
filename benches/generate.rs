//! A seeded, dependency-free generator of signal sets that reaches every rule of a policy.
//!
//! Values are drawn from each signal's declared domain. Half of the draws for an integer are the
//! boundaries the rules care about (every literal compared with, and one either side, plus the
//! declared minimum and maximum); the other half are uniform in the declared range. Strings come
//! from the `enum` when there is one, else from the literals the rules mention plus one value no
//! rule mentions. The same seed always gives the same sets.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::{Literal, PolicySpec, SignalKind, SignalSet, SignalValue};

/// SplitMix64: a tiny, well-distributed 64-bit generator (Steele, Lea and Flood, 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound > 0`; the tiny modulo bias does not matter here).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// A whole number in `low..=high`.
    pub fn in_range(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = high.abs_diff(low).saturating_add(1);
        low.saturating_add_unsigned(self.below(span))
    }
}

/// The values one signal is drawn from.
#[derive(Debug, Clone)]
enum Domain {
    Integer {
        minimum: i64,
        maximum: i64,
        boundaries: Vec<i64>,
    },
    Boolean,
    String(Vec<String>),
}

/// Produces signal sets for one policy, deterministically from a seed.
#[derive(Debug, Clone)]
pub struct SignalGenerator {
    domains: BTreeMap<String, Domain>,
    random: SplitMix64,
}

/// A string no rule of any benchmark policy mentions.
pub const UNMATCHED_STRING: &str = "zz-unmatched";

impl SignalGenerator {
    /// A generator for `spec`'s signals, starting from `seed`.
    pub fn new(spec: &PolicySpec, seed: u64) -> Self {
        let mut literals: BTreeMap<&str, Vec<&Literal>> = BTreeMap::new();
        for rule in spec.rules() {
            for leaf in &rule.when {
                literals.entry(&leaf.signal).or_default().push(&leaf.value);
            }
        }
        let domains = spec
            .signals()
            .iter()
            .map(|(name, kind)| {
                let mentioned = literals
                    .get(name.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let domain = match kind {
                    SignalKind::Integer { minimum, maximum } => {
                        let mut boundaries = BTreeSet::from([*minimum, *maximum]);
                        for literal in mentioned {
                            if let Literal::Integer(n) = literal {
                                for candidate in [n.saturating_sub(1), *n, n.saturating_add(1)] {
                                    if (*minimum..=*maximum).contains(&candidate) {
                                        boundaries.insert(candidate);
                                    }
                                }
                            }
                        }
                        Domain::Integer {
                            minimum: *minimum,
                            maximum: *maximum,
                            boundaries: boundaries.into_iter().collect(),
                        }
                    }
                    SignalKind::Boolean => Domain::Boolean,
                    SignalKind::String { one_of: Some(list) } => Domain::String(list.clone()),
                    SignalKind::String { one_of: None } => {
                        let mut values = BTreeSet::from([UNMATCHED_STRING.to_owned()]);
                        for literal in mentioned {
                            match literal {
                                Literal::String(s) => {
                                    values.insert(s.clone());
                                }
                                Literal::StringList(list) => values.extend(list.iter().cloned()),
                                Literal::Integer(_) | Literal::Boolean(_) => {}
                            }
                        }
                        Domain::String(values.into_iter().collect())
                    }
                };
                (name.clone(), domain)
            })
            .collect();
        Self {
            domains,
            random: SplitMix64::new(seed),
        }
    }

    /// The next signal set: every declared signal, each with a value of its declared type.
    pub fn next_set(&mut self) -> SignalSet {
        let mut set = SignalSet::new();
        for (name, domain) in &self.domains {
            let value = match domain {
                Domain::Integer {
                    minimum,
                    maximum,
                    boundaries,
                } => {
                    if self.random.below(2) == 0 && !boundaries.is_empty() {
                        let pick = self.random.below(boundaries.len() as u64) as usize;
                        SignalValue::Integer(boundaries.get(pick).copied().unwrap_or(*minimum))
                    } else {
                        SignalValue::Integer(self.random.in_range(*minimum, *maximum))
                    }
                }
                Domain::Boolean => SignalValue::Boolean(self.random.below(2) == 1),
                Domain::String(values) => {
                    let pick = self.random.below(values.len() as u64) as usize;
                    SignalValue::String(values.get(pick).cloned().unwrap_or_default())
                }
            };
            set.insert(name.clone(), value);
        }
        set
    }

    /// The next `count` signal sets.
    pub fn take_sets(&mut self, count: usize) -> Vec<SignalSet> {
        (0..count).map(|_| self.next_set()).collect()
    }
}
