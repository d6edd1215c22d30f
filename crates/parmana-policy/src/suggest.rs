//! "Did you mean …?": the closest known name to a misspelt one (signals, operators), by edit distance.

/// The candidate closest to `name` by Damerau–Levenshtein distance, when it is close enough to
/// be a likely typo: at most one edit for names up to four characters, at most a third of the
/// length beyond. Ties go to the first candidate in order; an exact match is not a suggestion.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let length = name.chars().count();
    let limit = if length <= 4 { 1 } else { length.div_ceil(3) };
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate == name {
            continue;
        }
        let distance = strsim::damerau_levenshtein(name, candidate);
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// ` (did you mean "x"?)` for the closest candidate, or nothing.
pub(crate) fn hint<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(name, candidates)
        .map(|c| format!(" (did you mean {c:?}?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::closest;

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
            assert_eq!(closest(name, signals), expected, "{name}");
        }
        let operators = ["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in"];
        assert_eq!(closest("gte", operators), Some("gt"));
        assert_eq!(closest("notin", operators), Some("not_in"));
        assert_eq!(closest("between", operators), None);
    }
}
