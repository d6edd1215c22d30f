//! Fuzz target: the strict JSON parser and RFC 8785 canonicalization never panic, and canonical output is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = parmana_canon::parse_strict(data) {
        let canonical = parmana_canon::to_canonical_vec(&value).expect("a parsed value encodes");
        let again = parmana_canon::canonicalize(&canonical).expect("canonical bytes re-parse");
        assert_eq!(canonical, again, "canonicalization is not idempotent");
    } else {
        assert!(parmana_canon::canonicalize(data).is_err());
    }
});
