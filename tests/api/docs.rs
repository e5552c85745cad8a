//! The documentation stays in step with the code: `docs/configuration.md` documents every
//! setting of `config/default.toml` and every secret setting, and nothing that is not a
//! setting. The rule is written down in `docs/configuration.md`, section "Settings".

use faceauth_gateway::config::{Settings, SECRET_SETTINGS};
use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The dotted keys of a TOML table down to its values (`limits.mint_per_user.limit`); an empty
/// table (a map setting such as `[auth.cf_claims]`) is one key.
fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) if !inner.is_empty() => flatten(&key, inner, out),
            _ => {
                out.insert(key);
            }
        }
    }
}

/// The keys documented in configuration.md: every `` `name` `` in the first cell of the rows of
/// each table whose header is `| key | type | default | meaning |`.
fn documented(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_table = false;
    let mut fenced = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('|') {
            in_table = false;
            continue;
        }
        if line.starts_with("| key | type | default | meaning |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let first = line[1..].split(" | ").next().unwrap_or_default();
        for (i, part) in first.split('`').enumerate() {
            if i % 2 == 1 {
                out.insert(part.trim().to_string());
            }
        }
    }
    out
}

/// Whether the configuration loader knows `key` (it refuses unknown ones as "unknown setting").
/// The value may well be invalid for the key: only the refusal as unknown counts.
fn known_to_the_loader(key: &str) -> bool {
    let name = format!("FACEAUTH__{}", key.to_ascii_uppercase().replace('.', "__"));
    match Settings::load_from(None, [(name, "x".to_string())]) {
        Ok(_) => true,
        Err(e) => !e.message.contains("unknown setting"),
    }
}

#[test]
fn configuration_guide_documents_every_setting_and_only_settings() {
    let defaults: toml::Table = toml::from_str(&read("config/default.toml")).unwrap();
    let mut in_defaults = BTreeSet::new();
    flatten("", &defaults, &mut in_defaults);
    let secrets: BTreeSet<String> = SECRET_SETTINGS.iter().map(|(k, _)| k.to_string()).collect();
    let docs = documented(&read("docs/configuration.md"));
    assert!(
        docs.len() >= 100,
        "found only {} documented keys",
        docs.len()
    );

    // The check below must be able to fail.
    assert!(!known_to_the_loader("store.key_prefx"));
    assert!(known_to_the_loader("store.key_prefix"));

    let undocumented: Vec<_> = in_defaults
        .iter()
        .chain(&secrets)
        .filter(|k| !docs.contains(*k))
        .collect();
    let unknown: Vec<_> = docs
        .iter()
        .filter(|k| !in_defaults.contains(*k) && !secrets.contains(*k))
        .filter(|k| !known_to_the_loader(k))
        .collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "docs/configuration.md and config/default.toml differ:\n\
         settings without a row in docs/configuration.md: {undocumented:?}\n\
         rows in docs/configuration.md that are no setting: {unknown:?}"
    );
}
