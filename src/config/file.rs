//! `ferry.toml`: one layer of settings, read as text like every other layer.

use std::path::Path;

use super::{ConfigError, Layer, SETTINGS};

pub(super) fn file_layer(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    layer_from_toml(&text).map_err(|refused| ConfigError::File { path: path.into(), message: refused.0 })
}

/// Why a `ferry.toml` text was refused (the caller names the file).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TomlRefused(pub String);

/// The settings a `ferry.toml` text gives; an unknown key, a value of a kind no setting
/// takes or bad TOML is an error naming it (values are checked by [`super::Config::from_layer`]).
pub fn layer_from_toml(text: &str) -> Result<Layer, TomlRefused> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| TomlRefused(e.to_string()))?;
    let mut layer = Layer::new();
    for (key, value) in table {
        let setting =
            SETTINGS.iter().find(|s| s.key == key).ok_or_else(|| TomlRefused(format!("unknown setting '{key}'")))?;
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).unwrap_or_else(|| i.to_string()))
                .collect::<Vec<_>>()
                .join(","),
            other => return Err(TomlRefused(format!("'{key}' cannot be {}", other.type_str()))),
        };
        layer.insert(setting.key, text);
    }
    Ok(layer)
}
