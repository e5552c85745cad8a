//! Reading the layers: defaults, the `--config` file with its secret files, the environment.

use super::*;

/// Reads the `--config` file, replacing each `<key>_file` secret by the file's content and
/// noting where each secret came from. Errors never quote the file's text.
pub(super) fn read_config_file(
    path: &Path,
    sources: &mut BTreeMap<String, String>,
) -> Result<toml::Table, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::new(
            "--config",
            format!("`{}` is not a readable file", path.display()),
        ));
    }
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(
            "--config",
            format!("`{shown}` is not readable: {}", e.kind()),
        )
    })?;
    // The parser's message quotes the offending line, which may hold a secret: only
    // the line number is shown.
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|r| text[..r.start.min(text.len())].matches('\n').count() + 1)
            .unwrap_or(0);
        ConfigError::new(
            "--config",
            format!("`{shown}` is not valid TOML (line {line})"),
        )
    })?;
    for (key, list) in SECRET_SETTINGS {
        let file_key = format!("{key}_file");
        match table_remove(&mut table, &file_key) {
            Some(toml::Value::String(secret_path)) => {
                if table_get(&table, key).is_some() {
                    return Err(ConfigError::new(
                        file_key,
                        format!("set either {key} or {key}_file, not both"),
                    ));
                }
                let value = read_secret_file(&file_key, &secret_path, *list)?;
                table_set(&mut table, key, value);
                sources.insert(
                    key.to_string(),
                    format!("file {secret_path} (config file key {file_key})"),
                );
            }
            Some(_) => return Err(ConfigError::new(file_key, "must be a file path (a string)")),
            None if table_get(&table, key).is_some() => {
                sources.insert(key.to_string(), format!("config file {shown}"));
            }
            None => {}
        }
    }
    Ok(table)
}

/// Merges the `FACEAUTH__…` environment over `figment`: values, then secret files
/// (`…__FILE`). Returns the values as given, for [`extract`].
pub(super) fn merge_env(
    mut figment: Figment,
    env: impl IntoIterator<Item = (String, String)>,
    sources: &mut BTreeMap<String, String>,
) -> Result<(Figment, Vec<(String, String)>), ConfigError> {
    let mut env_files = Vec::new();
    let mut env_values = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let dotted = rest.to_ascii_lowercase().replace("__", ".");
        if let Some(key) = dotted
            .strip_suffix(".file")
            .or_else(|| dotted.strip_suffix("_file"))
            .and_then(secret_setting)
        {
            env_files.push((key, name, value));
            continue;
        }
        if let Some(key) = secret_setting(&dotted) {
            sources.insert(key.0.to_string(), format!("env {name}"));
        }
        // Numbers, booleans and arrays (`["RS256"]`) as figment's Env provider reads them;
        // a value a string setting wants back verbatim is merged again (see `extract`).
        let parsed: figment::value::Value = value
            .parse()
            .unwrap_or_else(|never: std::convert::Infallible| match never {});
        figment = figment.merge(Serialized::default(&dotted, parsed));
        env_values.push((dotted, value));
    }
    for ((key, list), name, secret_path) in env_files {
        if sources.get(key).is_some_and(|s| s.starts_with("env ")) {
            return Err(ConfigError::new(
                key,
                format!("set either {name} or its value variable, not both"),
            ));
        }
        let value = read_secret_file(&format!("{key}_file"), &secret_path, list)?;
        figment = figment.merge(Serialized::default(key, value));
        sources.insert(key.to_string(), format!("file {secret_path} ({name})"));
    }
    Ok((figment, env_values))
}

/// Extracts the settings. An environment value read as a number or boolean (`00123`, `true`)
/// where the setting is a string is merged again verbatim, as a string, and extraction retried:
/// which settings are strings comes from their types, not from a list.
pub(super) fn extract(
    mut figment: Figment,
    env: &[(String, String)],
) -> Result<Settings, ConfigError> {
    let mut verbatim = std::collections::BTreeSet::new();
    loop {
        let e = match figment.extract::<Settings>() {
            Ok(settings) => return Ok(settings),
            Err(e) => e,
        };
        let key = e.path.join(".");
        let wants_text = matches!(
            &e.kind,
            figment::error::Kind::InvalidType(actual, expected)
                if is_scalar(actual) && expected.contains("string")
        );
        match env.iter().rev().find(|(dotted, _)| *dotted == key) {
            Some((dotted, raw)) if wants_text && verbatim.insert(key.clone()) => {
                figment = figment.merge(Serialized::default(dotted, raw.clone()));
            }
            _ => return Err(figment_error(e)),
        }
    }
}

/// A number or boolean (what figment reads from an environment value that is not a string).
pub(super) fn is_scalar(actual: &figment::error::Actual) -> bool {
    use figment::error::Actual;
    matches!(
        actual,
        Actual::Bool(_) | Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_)
    )
}

/// The entry of [`SECRET_SETTINGS`] for a dotted key.
pub(super) fn secret_setting(dotted: &str) -> Option<(&'static str, bool)> {
    SECRET_SETTINGS.iter().copied().find(|(k, _)| *k == dotted)
}

/// Reads a secret file: the whole text less trailing line breaks, or for a list one entry per
/// non-empty line. Errors name the `…_file` key and the path (never the content).
pub(super) fn read_secret_file(
    file_key: &str,
    path: &str,
    list: bool,
) -> Result<toml::Value, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(file_key, format!("cannot read `{path}`: {}", e.kind())))?;
    Ok(if list {
        toml::Value::Array(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| toml::Value::String(l.to_string()))
                .collect(),
        )
    } else {
        toml::Value::String(text.trim_end_matches(['\r', '\n']).to_string())
    })
}

pub(super) fn table_get<'a>(table: &'a toml::Table, dotted: &str) -> Option<&'a toml::Value> {
    let (parents, last) = match dotted.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, dotted),
    };
    let mut t = table;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        t = t.get(part)?.as_table()?;
    }
    t.get(last)
}

pub(super) fn table_remove(table: &mut toml::Table, dotted: &str) -> Option<toml::Value> {
    let (parents, last) = match dotted.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, dotted),
    };
    let mut t = table;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        t = t.get_mut(part)?.as_table_mut()?;
    }
    t.remove(last)
}

pub(super) fn table_set(table: &mut toml::Table, dotted: &str, value: toml::Value) {
    let (parents, last) = match dotted.rsplit_once('.') {
        Some((p, l)) => (Some(p), l),
        None => (None, dotted),
    };
    let mut t = table;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        let entry = t
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        match entry.as_table_mut() {
            Some(inner) => t = inner,
            None => return,
        }
    }
    t.insert(last.to_string(), value);
}

pub(super) fn figment_error(e: figment::Error) -> ConfigError {
    let key = if e.path.is_empty() {
        "(config)".to_string()
    } else {
        e.path.join(".")
    };
    // The kind says what was expected; it never includes the value for string fields, but to
    // be safe for secrets only the kind is shown, not the offending value.
    let message = match &e.kind {
        figment::error::Kind::MissingField(f) => {
            return ConfigError::new(
                if e.path.is_empty() {
                    f.to_string()
                } else {
                    format!("{key}.{f}")
                },
                "missing",
            )
        }
        figment::error::Kind::UnknownVariant(v, expected) => {
            format!(
                "unknown value `{v}`, expected one of {}",
                expected.join(", ")
            )
        }
        figment::error::Kind::UnknownField(field, _) => {
            // figment's path may already end with the unknown field (values from the
            // environment); do not name it twice (`store.key_prefx.key_prefx`).
            return ConfigError::new(
                if e.path.is_empty() {
                    field.to_string()
                } else if e.path.last().is_some_and(|last| last == field) {
                    key
                } else {
                    format!("{key}.{field}")
                },
                "unknown setting (check the spelling against config/default.toml)",
            );
        }
        figment::error::Kind::InvalidType(actual, expected) => {
            format!(
                "invalid type: found {}, expected {expected}",
                type_of(actual)
            )
        }
        figment::error::Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                type_of(actual)
            )
        }
        figment::error::Kind::Message(m) if !is_secret_key(&key) => m.clone(),
        figment::error::Kind::Message(_) => "invalid value (not shown: a secret)".into(),
        other if !is_secret_key(&key) => other.to_string(),
        _ => "invalid value (not shown: a secret)".into(),
    };
    ConfigError::new(key, message)
}

/// Whether `key` (or an entry of it, `key.N`) is one of [`SECRET_SETTINGS`].
pub(super) fn is_secret_key(key: &str) -> bool {
    SECRET_SETTINGS.iter().any(|(secret, _)| {
        key == *secret
            || key
                .strip_prefix(secret)
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// What kind of value was found, never the value itself: a wrongly typed setting may hold a
/// secret (a single string given where a list of secrets is expected).
pub(super) fn type_of(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option => "nothing",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another type",
    }
}
