//! docs/commands.md is generated from the command table; this fails when it
//! is out of date. Regenerate with
//! `UPDATE_DOCS=1 cargo test -p granary-commands --test commands_doc`.

use granary_commands::cmd::introspection::render_commands_doc;
use std::path::PathBuf;

#[test]
fn commands_doc_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/commands.md");
    let want = render_commands_doc();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &want).expect("write docs/commands.md");
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/commands.md is out of date: run `UPDATE_DOCS=1 cargo test -p granary-commands --test commands_doc`"
    );
}
