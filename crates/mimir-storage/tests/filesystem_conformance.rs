//! The conformance suite against the `filesystem` backend in a temp dir.

use mimir_core::ConnectionSettings;
use mimir_storage::backends::filesystem::Filesystem;
use mimir_storage::conformance::Fixture;
use mimir_storage::testing::Outage;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// Takes the folder away (a file where it was, as a lost mount looks) and
/// puts it back.
struct FolderOutage {
    base: PathBuf,
    aside: PathBuf,
}

impl Outage for FolderOutage {
    fn cut(&self) {
        std::fs::rename(&self.base, &self.aside).unwrap_or_else(|e| panic!("cut: {e}"));
        std::fs::write(&self.base, b"gone").unwrap_or_else(|e| panic!("cut: {e}"));
    }

    fn restore(&self) {
        if self.aside.exists() {
            let _ = std::fs::remove_file(&self.base);
            std::fs::rename(&self.aside, &self.base).unwrap_or_else(|e| panic!("restore: {e}"));
        }
    }
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let settings = ConnectionSettings {
        options: json!({"base_path": "records"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..ConnectionSettings::default()
    };
    let connector = Filesystem::open(&settings, root.path()).unwrap_or_else(|e| panic!("{e}"));
    let outage = FolderOutage {
        base: root.path().join("records"),
        aside: root.path().join("records.aside"),
    };
    Fixture {
        connector: Arc::new(connector),
        outage: Arc::new(outage),
        cleanup: parking_lot::Mutex::new(Some(Box::pin(async move { drop(root) }))),
    }
}

mimir_storage::conformance_tests!(
    fixture();
    round_trips_every_kind,
    operators_match_the_definition,
    orders_and_pages,
    updates_chosen_records,
    deletes_chosen_records,
    empty_results_and_separate_entities,
    schemas_type_and_index,
    hostile_values_are_data,
    large_batches,
    concurrent_stores_all_land,
    outage_fails_fast_then_recovers,
    metadata_and_health,
);

#[test]
fn base_paths_stay_under_the_root() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for bad in ["../escape", "a/../../b", ""] {
        let settings = ConnectionSettings {
            options: json!({"base_path": bad})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..ConnectionSettings::default()
        };
        assert!(
            Filesystem::open(&settings, root.path()).is_err(),
            "{bad:?} was accepted"
        );
    }
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink(outside.path(), root.path().join("link"))
        .unwrap_or_else(|e| panic!("{e}"));
    let settings = ConnectionSettings {
        options: json!({"base_path": "link/x"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..ConnectionSettings::default()
    };
    assert!(
        Filesystem::open(&settings, root.path()).is_err(),
        "a link out of the root was followed"
    );
    let absolute = ConnectionSettings {
        options: json!({"base_path": "/data/x"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..ConnectionSettings::default()
    };
    let opened = Filesystem::open(&absolute, root.path());
    assert!(
        opened.is_ok() && root.path().join("data/x").is_dir(),
        "/data/x lives under the root"
    );
}
