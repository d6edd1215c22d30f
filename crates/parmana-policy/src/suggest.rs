//! "Did you mean …?": the closest known name to a misspelt one (signals, operators), by edit distance.

/// Names longer than this, in characters, get no suggestion: every name a 2.0.0 policy
/// declares, and every operator, is at most [`MAX_NAME_LEN`](crate::limits::MAX_NAME_LEN)
/// bytes, so a longer name is more than a third of its length away from all of them (193 is
/// 65 edits from 128, and 65 is a third of 193, rounded up) — and measuring the distance to a
/// name sent from outside would cost time in proportion to its length. (Legacy 1.0.0 names may
/// be longer; past this, they get no suggestion either.)
const MAX_SUGGESTED_NAME_CHARS: usize = crate::limits::MAX_NAME_LEN * 3 / 2 + 1;

/// The edit-distance table cells one search for suggestions may fill (one `validate_signals`):
/// a name sent from outside costs a bounded time however many declared names it is compared
/// with. Candidates are compared in order until the cells are spent.
pub(crate) const SUGGESTION_CELLS: usize = 1 << 18;

/// The cells all the suggestions for one policy document may fill together: a policy naming an
/// undeclared signal in each of its 100,000 leaves costs a bounded time, not 100,000 searches.
/// Once they are spent, the diagnostics that follow carry no suggestion.
pub(crate) const POLICY_SUGGESTION_CELLS: usize = 1 << 22;

/// The candidate closest to `name` by Damerau–Levenshtein distance, when it is close enough to
/// be a likely typo: at most one edit for names up to four characters, at most a third of the
/// length beyond. Ties go to the first candidate in order; an exact match is not a suggestion.
/// Candidates whose length alone puts them out of reach are skipped, for one cell each; each
/// comparison spends `(name + 1) × (candidate + 1)` of `cells_left`, and none is made (nor
/// candidate looked at) once that would run out.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    cells_left: &mut usize,
) -> Option<&'a str> {
    let length = name.chars().take(MAX_SUGGESTED_NAME_CHARS + 1).count();
    if length > MAX_SUGGESTED_NAME_CHARS {
        return None;
    }
    let limit = if length <= 4 { 1 } else { length.div_ceil(3) };
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        // Looking at a candidate costs a cell, so that a spent budget stops the walk too.
        let Some(left) = cells_left.checked_sub(1) else {
            break;
        };
        *cells_left = left;
        if candidate == name {
            continue;
        }
        // The distance is at least the difference in length.
        // (Counted no further than reach: a long name is not read whole.)
        let candidate_length = candidate.chars().take(length + limit + 1).count();
        if candidate_length.abs_diff(length) > limit {
            continue;
        }
        let cells = (length + 1).saturating_mul(candidate_length + 1);
        let Some(left) = cells_left.checked_sub(cells) else {
            break;
        };
        *cells_left = left;
        let distance = strsim::damerau_levenshtein(name, candidate);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// ` (did you mean "x"?)` for the closest candidate, or nothing; the comparisons spend
/// `cells_left` (see [`closest`]).
pub(crate) fn hint<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    cells_left: &mut usize,
) -> String {
    closest(name, candidates, cells_left)
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

/// The most bytes of declared decision names a refusal lists whole; past it, a refusal names
/// their count and the closest one instead, so that its message stays short however many
/// decisions a policy declares and however many of its rules name an undeclared one.
const LISTED_DECISIONS_BYTES: usize = 256;

/// What a refusal of the undeclared decision `name` says of the declared ones, in parentheses:
/// all of them while they are short (`(approve, deny)`), otherwise how many there are and,
/// where one is close, which (`(256 declared) (did you mean "approve"?)`); the comparisons
/// spend `cells_left` (see [`closest`]).
pub(crate) fn declared_decisions(
    name: &str,
    decisions: &[String],
    cells_left: &mut usize,
) -> String {
    let listed: usize = decisions.iter().map(|d| d.len() + 2).sum();
    if listed <= LISTED_DECISIONS_BYTES + 2 {
        format!("({})", decisions.join(", "))
    } else {
        let hint = hint(name, decisions.iter().map(String::as_str), cells_left);
        format!("({} declared){hint}", decisions.len())
    }
}

#[cfg(test)]
mod tests {
    use super::{SUGGESTION_CELLS, closest};

    fn closest_of<'a>(
        name: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Option<&'a str> {
        closest(name, candidates, &mut SUGGESTION_CELLS.clone())
    }

    #[test]
    fn near_misses_and_far_ones() {
        let signals = ["claim_amount", "country", "vip_customer", "policy_age_days"];
        for (name, expected) in [
            ("claim_amout", Some("claim_amount")),
            ("clam_amount", Some("claim_amount")),
            ("cuontry", Some("country")),
            ("vip", None),
            ("amount", None),
            ("country", None),
            ("policy_age", None),
        ] {
            assert_eq!(closest_of(name, signals), expected, "{name}");
        }
        let operators = ["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"];
        assert_eq!(closest_of("gte", operators), Some("gt"));
        assert_eq!(closest_of("notin", operators), Some("not_in"));
        assert_eq!(closest_of("between", operators), None);
    }

    #[test]
    fn a_name_out_of_reach_of_every_declared_one_is_not_measured() {
        // Longer than any name a policy may declare by more than a third: no candidate is even
        // looked at, so a megabyte of name costs no more than counting 194 characters.
        let long = "a".repeat(1 << 20);
        let mut looked_at = 0;
        let candidates = ["a"; 3].into_iter().inspect(|_| looked_at += 1);
        let mut cells = SUGGESTION_CELLS;
        assert_eq!(closest(&long, candidates, &mut cells), None);
        assert_eq!((looked_at, cells), (0, SUGGESTION_CELLS));
        // 193 characters are still in reach of a 128-character name (65 edits, a third of 193
        // rounded up); 194 are not.
        let declared = "d".repeat(128);
        let near = format!("{declared}{}", "e".repeat(65));
        assert_eq!(
            closest(&near, [declared.as_str()], &mut SUGGESTION_CELLS.clone()),
            Some(declared.as_str())
        );
        let far = format!("{near}e");
        assert_eq!(
            closest(&far, [declared.as_str()], &mut SUGGESTION_CELLS.clone()),
            None
        );
        // Candidates whose length alone puts them out of reach cost one cell, not a comparison.
        let mut cells = SUGGESTION_CELLS;
        assert_eq!(
            closest("claim_amout", ["a", "claim_amount"], &mut cells),
            Some("claim_amount")
        );
        assert_eq!(SUGGESTION_CELLS - cells, 1 + 1 + 12 * 13);
        // With no cell left, not even the lengths are looked at.
        let mut none = 0;
        assert_eq!(
            closest("claim_amout", ["a", "claim_amount"], &mut none),
            None
        );
    }

    #[test]
    fn the_search_stops_when_its_cells_are_spent() {
        // 128-character names: each comparison fills 129 × 129 cells, so the budget covers 15
        // of them and the one near miss, 30th in line, is never reached.
        let name = format!("{}b", "a".repeat(127));
        let far: Vec<String> = (0..29).map(|i| format!("{i:0>128}")).collect();
        let near = "a".repeat(128);
        let candidates = || far.iter().map(String::as_str).chain([near.as_str()]);
        let mut cells = SUGGESTION_CELLS;
        assert_eq!(closest(&name, candidates(), &mut cells), None);
        assert!(cells < 129 * 129, "{cells} cells left");
        // With the cells for all thirty (and the cell each costs to look at), it is found; with
        // none left, nothing is compared.
        let mut plenty = 30 * (129 * 129 + 1);
        assert_eq!(
            closest(&name, candidates(), &mut plenty),
            Some(near.as_str())
        );
        assert_eq!(closest(&name, [near.as_str()], &mut 0), None);
    }
}
