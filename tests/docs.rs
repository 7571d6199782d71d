//! docs/ is generated from the schema descriptions and examples/: this test fails when it is
//! stale, and rewrites it with `UPDATE_DOCS=1` (`make docs`).

use std::path::Path;

#[test]
fn docs_are_generated_from_the_schema() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pages = vsphereipam::provider::docs::render_all(repo).expect("render docs");
    assert!(pages
        .iter()
        .any(|(p, _)| p.ends_with("data-sources/wire.md")));
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (path, content) in &pages {
        let full = repo.join(path);
        if update {
            std::fs::create_dir_all(full.parent().expect("docs dir")).expect("mkdir");
            std::fs::write(&full, content).expect("write doc page");
        } else if std::fs::read_to_string(&full).ok().as_deref() != Some(content.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    // Pages of types that no longer exist are stale too.
    for dir in ["docs/data-sources", "docs/resources", "docs/list-resources"] {
        for entry in std::fs::read_dir(repo.join(dir))
            .into_iter()
            .flatten()
            .flatten()
        {
            let rel = Path::new(dir).join(entry.file_name());
            if !pages.iter().any(|(p, _)| *p == rel) {
                if update {
                    std::fs::remove_file(entry.path()).expect("remove stale page");
                } else {
                    stale.push(rel.display().to_string());
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "docs/ is stale, run `make docs`: {stale:?}"
    );
}
