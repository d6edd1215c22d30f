//! The one behavioural conformance suite (`common/suite.rs` and `common/boundary.rs`), instantiated for every backend.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed unwrap is a failed test

/// Generates one `#[test]` per suite function for a backend, each carrying the given attributes
/// (for PostgreSQL: ignored when the build script found no server outside CI). `$open` returns
/// `Option<impl Harness>`; `None` means the backend is not available here (PostgreSQL without a
/// server, outside CI, run with `--include-ignored`) and the test has already printed why it skips.
macro_rules! conformance_suite {
    ($backend:ident, $open:expr $(, #[$attr:meta])*) => {
        mod $backend {
            use crate::common::{Harness, boundary, log, one_write, sequencer, suite};

            fn open() -> Option<Box<dyn Harness>> {
                let open = $open;
                open().map(|h| Box::new(h) as Box<dyn Harness>)
            }

            conformance_suite!(@tests [$(#[$attr])*]
                claim_complete_get,
                double_claim_is_a_replay,
                complete_without_claim_is_refused,
                complete_twice_is_refused,
                pending_lists_claimed_but_not_completed,
                pending_pages_continue_after_the_last_id,
                version_high_water_marks_refuse_rollback,
                ledger_appends_and_verifies,
                execution_mismatch_names_the_field,
                survives_reopen,
                unreadable_rows_are_corrupt,
                future_schema_is_refused,
                threads_race_one_winner_per_id,
                threads_race_to_complete
            );
            conformance_suite!(@boundary [$(#[$attr])*]
                raises_are_chained_in_the_ledger,
                claims_are_decided_under_the_marks,
                marks_reset_is_refused_and_reported,
                a_lower_marks_record_appended_is_refused_and_reported,
                a_copy_of_an_older_marks_record_appended_is_refused,
                a_raise_record_moved_below_the_known_one_is_refused,
                oversized_stored_values_are_refused_unread,
                a_long_claim_time_refuses_claims_unread,
                a_long_ledger_kind_is_refused_unread,
                more_marks_records_than_the_bound_are_refused_unread,
                a_long_pending_id_is_refused_unread,
                clock_must_not_run_backwards,
                rollback_check_and_claim_do_not_interleave,
                threads_claim_while_the_marks_rise,
                threads_raise_the_marks_at_once
            );
            conformance_suite!(@one_write [$(#[$attr])*]
                claim_completed_writes_a_completed_execution,
                claim_completed_is_decided_like_a_claim,
                threads_race_claim_completed
            );
            conformance_suite!(@log [$(#[$attr])*]
                ledger_is_a_merkle_log,
                no_log_over_a_broken_ledger,
                log_entries_read_back_are_checked,
                ledger_records_are_the_records_alone,
                ledgers_are_walked_page_by_page,
                checkpoint_pages_must_move_on_by_increasing_size
            );
            conformance_suite!(@sequencer [$(#[$attr])*]
                sequencer_integrates_in_batches,
                logs_catch_up_from_any_size,
                sequencers_race,
                stored_checkpoints_are_checked,
                unsequenced_completions_and_pending_claims,
                sequencer_batches_are_bounded_in_bytes
            );

            #[test]
            $(#[$attr])*
            fn ledger_tampering_is_detected() {
                suite::ledger_tampering_is_detected(&open);
            }

            #[test]
            $(#[$attr])*
            fn marks_record_tampering_is_detected() {
                boundary::marks_record_tampering_is_detected(&open);
            }
        }
    };
    (@tests $attrs:tt $($name:ident),*) => {
        $(
            conformance_suite!(@test $attrs $name);
        )*
    };
    (@test [$(#[$attr:meta])*] $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            if let Some(h) = open() {
                suite::$name(&*h);
            }
        }
    };
    (@boundary $attrs:tt $($name:ident),*) => {
        $(
            conformance_suite!(@boundary_test $attrs $name);
        )*
    };
    (@one_write $attrs:tt $($name:ident),*) => {
        $(
            conformance_suite!(@one_write_test $attrs $name);
        )*
    };
    (@one_write_test [$(#[$attr:meta])*] $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            if let Some(h) = open() {
                one_write::$name(&*h);
            }
        }
    };
    (@log $attrs:tt $($name:ident),*) => {
        $(
            conformance_suite!(@log_test $attrs $name);
        )*
    };
    (@sequencer $attrs:tt $($name:ident),*) => {
        $(
            conformance_suite!(@sequencer_test $attrs $name);
        )*
    };
    (@sequencer_test [$(#[$attr:meta])*] $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            if let Some(h) = open() {
                sequencer::$name(&*h);
            }
        }
    };
    (@log_test [$(#[$attr:meta])*] $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            if let Some(h) = open() {
                log::$name(&*h);
            }
        }
    };
    (@boundary_test [$(#[$attr:meta])*] $name:ident) => {
        #[test]
        $(#[$attr])*
        fn $name() {
            if let Some(h) = open() {
                boundary::$name(&*h);
            }
        }
    };
}

conformance_suite!(memory, crate::common::memory);

#[cfg(feature = "sqlite")]
conformance_suite!(sqlite, crate::common::sqlite);

#[cfg(feature = "postgres")]
conformance_suite!(
    postgres,
    crate::common::postgres,
    #[cfg_attr(
        parmana_no_postgres,
        ignore = "no PostgreSQL server: set PARMANA_TEST_POSTGRES_URL (`source .ci/services`)"
    )]
);

// The same suite with every store connection over TLS (`sslmode=verify-full`).
#[cfg(feature = "postgres")]
conformance_suite!(
    postgres_tls,
    crate::common::postgres_tls,
    #[cfg_attr(
        parmana_no_postgres_tls,
        ignore = "no PostgreSQL server over TLS: set PARMANA_TEST_POSTGRES_TLS_URL and PARMANA_TEST_POSTGRES_TLS_ONLY_URL (`source .ci/services`)"
    )]
);

/// The PostgreSQL suite must run in CI: a CI build without the `postgres` feature fails here.
/// Elsewhere the build script marks it ignored (the suite is not compiled in).
#[cfg(not(feature = "postgres"))]
#[test]
#[cfg_attr(
    parmana_no_postgres,
    ignore = "PostgreSQL suite not compiled in: run with `--features postgres` and PARMANA_TEST_POSTGRES_URL set"
)]
fn postgres_suite_is_compiled_in() {
    use std::io::Write as _;
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "CI=true but parmana-replay was built without the `postgres` feature: the PostgreSQL \
         suite must run in CI (the workspace build enables it through parmana-benches)"
    );
    // Written to stderr directly, past the test harness's capture, so the skip is visible.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: PostgreSQL replay-store suite — not compiled in; run \
         `cargo test -p parmana-replay --features postgres` with PARMANA_TEST_POSTGRES_URL set"
    );
}
