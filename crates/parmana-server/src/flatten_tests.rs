//! AuthZEN flattening is bounded as it builds: a long key over many leaves (each signal name
//! repeats its whole path) is refused before the names it would make pass the signals limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Map, Value, json};

use crate::authzen::{Flat, FlatError};

#[test]
fn a_long_key_over_many_leaves_is_refused_before_its_names_are_made() {
    // A 100 KB key over 1,000 leaves: about 100 KB of request, 100 MB of signal names.
    let leaves: Map<String, Value> = (0..1_000).map(|n| (format!("a{n}"), json!(0))).collect();
    let mut context = Map::new();
    context.insert("k".repeat(100 * 1024), Value::Object(leaves));
    let mut flat = Flat::new();
    let refused = flat.add_members("context", &context);
    assert!(matches!(refused, Err(FlatError::TooLarge)));
    // Stopped at the limit: about ten names were made, not a thousand.
    assert!(flat.len() < 12, "{}", flat.len());
}

#[test]
fn signals_within_the_limit_flatten_whole() {
    let context = json!({"a": {"b": 1, "c": [1, 2]}, "d": "e"});
    let mut flat = Flat::new();
    assert!(
        flat.add_members("context", context.as_object().unwrap())
            .is_ok()
    );
    assert_eq!(flat.len(), 3);
    // A name reached twice is refused (as invalid, not too large).
    let twice = json!({"a.b": 2});
    assert!(matches!(
        flat.add_members("context", twice.as_object().unwrap()),
        Err(FlatError::Invalid(_))
    ));
}

/// A name reached twice is quoted by its first characters, however long it is (escaped
/// character by character, a long name of control characters would make a message several
/// times the request).
#[test]
fn a_name_reached_twice_is_quoted_bounded() {
    let long = "\u{7f}".repeat(100_000);
    let mut flat = Flat::new();
    let first = json!({ format!("{long}.x"): 1 });
    assert!(
        flat.add_members("context", first.as_object().unwrap())
            .is_ok()
    );
    let again = json!({ long: {"x": 2} });
    let Err(FlatError::Invalid(message)) = flat.add_members("context", again.as_object().unwrap())
    else {
        panic!("a name reached twice is not refused as invalid");
    };
    assert!(message.len() < 2_000, "{} bytes", message.len());
}
