//! The compiled form (IR) of a policy: typed condition trees, signals addressed by slot, strings interned.
//!
//! Every test is typed by the declaration of the signal it reads, chosen when the policy
//! is compiled: a [`Test::Num`] holds `f64` operands and reads a number slot, a
//! [`Test::Str`] holds interned symbols and reads a string slot, and so on. So no
//! test carries an operand of another type, and no operand needs a fallback. Conditions
//! are trees whose children and operand lists are owned by their node, so evaluation
//! follows references and never looks a node or a constant up by index.

use crate::model::{AdditionalSignals, SchemaVersion, SignalDecl};
use crate::names::NameIndex;

/// Most signals the rule index keys on; rules keyed on other signals are visited in order.
pub(crate) const MAX_INDEXED_SLOTS: usize = 7;

/// The symbol of a string that no policy constant equals.
pub(crate) const NO_SYMBOL: u32 = u32::MAX;

/// An ordered comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    #[inline]
    pub(crate) fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Self::Eq => a == b,
            Self::Ne => a != b,
            Self::Lt => a < b,
            Self::Le => a <= b,
            Self::Gt => a > b,
            Self::Ge => a >= b,
        }
    }
}

/// A test on a boolean signal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BoolTest {
    /// `eq` (and `ne`, compiled to `eq` of the other value).
    Eq(bool),
    /// `in` / `not_in`. Bit 0 of `mask`: `false` is in the list; bit 1: `true` is.
    In { mask: u8, negate: bool },
}

impl BoolTest {
    #[inline]
    pub(crate) fn holds(&self, v: bool) -> bool {
        match self {
            Self::Eq(b) => v == *b,
            Self::In { mask, negate } => {
                let bit = if v { 2 } else { 1 };
                (mask & bit != 0) != *negate
            }
        }
    }
}

/// A test on a number signal (IEEE 754 comparisons).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NumTest {
    Cmp(Cmp, f64),
    In { values: Box<[f64]>, negate: bool },
}

impl NumTest {
    #[inline]
    pub(crate) fn holds(&self, v: f64) -> bool {
        match self {
            Self::Cmp(cmp, c) => cmp.holds(v, *c),
            Self::In { values, negate } => values.contains(&v) != *negate,
        }
    }
}

/// A test on an integer signal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum IntTest {
    Cmp(Cmp, i64),
    /// `values` sorted and without repeats.
    In {
        values: Box<[i64]>,
        negate: bool,
    },
}

impl IntTest {
    #[inline]
    pub(crate) fn holds(&self, v: i64) -> bool {
        match self {
            Self::Cmp(cmp, c) => cmp.holds(v, *c),
            Self::In { values, negate } => values.binary_search(&v).is_ok() != *negate,
        }
    }
}

/// A test on a string signal: equality by interned symbol, affixes by text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StrTest {
    /// `eq` / `ne`; `symbol` is the constant's (constants are all interned, so never [`NO_SYMBOL`]).
    Eq {
        symbol: u32,
        negate: bool,
    },
    /// `in` / `not_in`; `symbols` sorted and without repeats.
    In {
        symbols: Box<[u32]>,
        negate: bool,
    },
    StartsWith(Box<str>),
    EndsWith(Box<str>),
}

impl StrTest {
    /// `symbol` is the value's symbol ([`NO_SYMBOL`] when no constant equals it), `text` the value.
    #[inline]
    pub(crate) fn holds(&self, symbol: u32, text: &str) -> bool {
        match self {
            Self::Eq { symbol: s, negate } => (*s == symbol) != *negate,
            Self::In { symbols, negate } => symbols.binary_search(&symbol).is_ok() != *negate,
            Self::StartsWith(prefix) => text.starts_with(&**prefix),
            Self::EndsWith(suffix) => text.ends_with(&**suffix),
        }
    }
}

/// A leaf test, typed by the declaration of the signal it reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Present,
    Absent,
    Bool(BoolTest),
    Num(NumTest),
    Int(IntTest),
    Str(StrTest),
}

/// What a condition node does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
    Leaf { slot: u32, test: Test },
}

/// One condition node: its position in the policy (pre-order over all rules, as traces
/// print and coverage counts) and what it does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) id: u32,
    pub(crate) cond: Cond,
}

/// What the trace and coverage report say about a node (indexed by [`Node::id`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeInfo {
    pub(crate) path: String,
    pub(crate) label: String,
    pub(crate) depth: u32,
    pub(crate) rule: u32,
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompiledRule {
    pub(crate) id: String,
    pub(crate) path: String,
    pub(crate) root: Node,
    pub(crate) decision: String,
    pub(crate) reason: Option<String>,
}

/// The kind of an indexed signal, which says how its value becomes a bucket key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// `false` is 0, `true` is 1.
    Bool,
    /// The integer itself.
    Int,
    /// The string's symbol.
    Str,
}

/// The buckets of one indexed signal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IndexedSlot {
    pub(crate) slot: u32,
    pub(crate) kind: KeyKind,
    /// (value key, start, len) into `bucket_rules`, sorted by key.
    pub(crate) buckets: Vec<(i64, u32, u32)>,
}

/// The rule index (see [`index`](super::index)).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RuleIndex {
    pub(crate) unindexed: Vec<u32>,
    pub(crate) slots: Vec<IndexedSlot>,
    pub(crate) bucket_rules: Vec<u32>,
}

/// A validated policy, compiled for evaluation.
///
/// Build it with [`compile`](crate::compile) or [`check`](crate::check); validate
/// signals against it with [`validate_signals`](CompiledPolicy::validate_signals) or
/// [`validate_signals_json`](CompiledPolicy::validate_signals_json), then call
/// [`ValidatedSignals::evaluate`](crate::ValidatedSignals::evaluate).
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledPolicy {
    pub(crate) schema: SchemaVersion,
    pub(crate) policy_id: Option<String>,
    pub(crate) policy_version: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) decisions: Vec<String>,
    pub(crate) permit: Option<Vec<String>>,
    pub(crate) signals: Vec<SignalDecl>,
    pub(crate) additional_signals: AdditionalSignals,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) default_decision: String,
    pub(crate) default_reason: Option<String>,
    /// One entry per condition node, by [`Node::id`].
    pub(crate) node_info: Vec<NodeInfo>,
    /// Sorted; a string's symbol is its position.
    pub(crate) symbols: Vec<String>,
    pub(crate) symbol_index: NameIndex,
    pub(crate) signal_index: NameIndex,
    pub(crate) index: RuleIndex,
}

impl CompiledPolicy {
    /// The schema the policy was written in.
    pub fn schema_version(&self) -> SchemaVersion {
        self.schema
    }
    /// `policy_id` (schema 2.0.0; a legacy policy carries none, its bundle names it).
    pub fn policy_id(&self) -> Option<&str> {
        self.policy_id.as_deref()
    }
    /// `policy_version` (schema 2.0.0 only).
    pub fn policy_version(&self) -> Option<&str> {
        self.policy_version.as_deref()
    }
    /// The policy's `description`, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    /// The declared decisions, in declaration order.
    pub fn decisions(&self) -> &[String] {
        &self.decisions
    }
    /// The decisions the policy declares to permit what was asked (`permit`, schema 2.0.0), in
    /// declaration order; `None` when it declares none.
    pub fn permit(&self) -> Option<&[String]> {
        self.permit.as_deref()
    }
    /// The declared signals, sorted by name.
    pub fn signals(&self) -> &[SignalDecl] {
        &self.signals
    }
    /// What happens to undeclared signals.
    pub fn additional_signals(&self) -> AdditionalSignals {
        self.additional_signals
    }
    /// The rule ids, in evaluation order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }
    /// Number of rules.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
    /// Number of condition nodes (each counted by condition coverage).
    pub fn condition_count(&self) -> usize {
        self.node_info.len()
    }

    /// An upper bound, in bytes, on the canonical text of one explanation (`explain`) beside the
    /// signal values its conditions read: every rule's and condition's names, paths, labels and
    /// outcomes, and the decision with its reason, each as JSON writes it (escapes included). An
    /// explanation over signals whose JSON text is `n` bytes is at most this plus
    /// `condition_count() × n`: each condition reads at most one value, and a value's canonical
    /// text is at most its text plus [`TRACE_VALUE_SLACK`] (a number such as `9e20` is written
    /// `900000000000000000000`). Lets a host refuse an explanation before it is made.
    pub fn trace_bytes_bound(&self) -> usize {
        // `{"path":"","depth":4294967295,"condition":"","signal":"","value":,"result":false},`
        // and the slack of the value.
        const PER_CONDITION: usize = 96 + TRACE_VALUE_SLACK;
        // `{"rule_id":"","path":"","matched":false,"conditions":[]},`
        const PER_RULE: usize = 64;
        // `{"decision":{"decision":"","rule_id":"","reason":""},"rules":[]}` and room to spare.
        const WHOLE: usize = 256;
        let conditions: usize = self
            .node_info
            .iter()
            // A leaf's label starts with its signal's name, which the trace names once more.
            .map(|node| json_len(&node.path) + 2 * json_len(&node.label) + PER_CONDITION)
            .fold(0, usize::saturating_add);
        let rules: usize = self
            .rules
            .iter()
            .map(|rule| json_len(&rule.id) + json_len(&rule.path) + PER_RULE)
            .fold(0, usize::saturating_add);
        let default = json_len(&self.default_decision)
            + self.default_reason.as_deref().map_or(0, json_len)
            + json_len("default");
        let decision = self
            .rules
            .iter()
            .map(|rule| {
                json_len(&rule.id)
                    + json_len(&rule.decision)
                    + rule.reason.as_deref().map_or(0, json_len)
            })
            .fold(default, usize::max);
        WHOLE
            .saturating_add(conditions)
            .saturating_add(rules)
            .saturating_add(decision)
    }
    /// The symbol of a string: its position among the policy's string constants, or [`NO_SYMBOL`].
    pub(crate) fn symbol_of(&self, s: &str) -> u32 {
        self.constant_symbol(s).unwrap_or(NO_SYMBOL)
    }

    /// The symbol of a string that is one of the policy's string constants.
    pub(crate) fn constant_symbol(&self, s: &str) -> Option<u32> {
        self.symbol_index
            .find(s, |i| self.symbols.get(i).map(String::as_str))
            .and_then(|i| u32::try_from(i).ok())
    }
}

/// The bytes a signal value's canonical text may take beyond its text in a request (see
/// [`CompiledPolicy::trace_bytes_bound`]): a number written in 4 characters as a power of ten
/// whose canonical text has 21 digits (`9e20` is written `900000000000000000000`; from `1e21`
/// on, canonical text keeps the exponent).
pub(crate) const TRACE_VALUE_SLACK: usize = 17;

/// The length of `text` as a JSON string's contents (RFC 8785 escapes: `\"`, `\\`, the short
/// escapes and `\u00XX` for other control characters).
fn json_len(text: &str) -> usize {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => 2,
            '\u{8}' | '\t' | '\n' | '\u{c}' | '\r' => 2,
            c if u32::from(c) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .fold(0, usize::saturating_add)
}
