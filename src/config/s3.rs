//! The `s3_*` settings: where and how to reach the S3-compatible blob store.

use super::{ConfigError, Secret};

/// Where and how to reach the S3-compatible store (`s3_*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub path_style: bool,
    /// Empty, or ends with `/`.
    pub prefix: String,
    pub direct: bool,
}

/// The S3 store's settings; only read when a bucket is configured.
pub(super) fn s3_config<'a>(
    get: &impl Fn(&'static str) -> Option<&'a str>,
    endpoint: Option<String>,
) -> Result<Option<S3Config>, ConfigError> {
    let Some(bucket) = get("s3_bucket") else { return Ok(None) };
    let flag = |key: &'static str, default: bool| match get(key).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes") => Ok(true),
        Some("0" | "false" | "no") => Ok(false),
        Some(other) => Err(ConfigError::Value { key, message: format!("'{other}' (expected true or false)") }),
    };
    let prefix = get("s3_prefix").unwrap_or("").trim_matches('/');
    Ok(Some(S3Config {
        endpoint,
        region: get("s3_region").unwrap_or("us-east-1").to_owned(),
        bucket: bucket.to_owned(),
        access_key_id: get("s3_access_key_id").map(str::to_owned),
        secret_access_key: get("s3_secret_access_key").map(|s| Secret(s.to_owned())),
        path_style: flag("s3_path_style", true)?,
        prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
        direct: flag("s3_direct", false)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Layer};

    #[test]
    fn s3_is_chosen_by_its_bucket() {
        assert!(Config::from_layer(&Layer::new()).unwrap().s3.is_none());
        let mut layer = Layer::new();
        layer.insert("s3_bucket", "media".into());
        layer.insert("s3_prefix", "/ferry".into());
        layer.insert("s3_direct", "1".into());
        let s3 = Config::from_layer(&layer).unwrap().s3.unwrap();
        assert_eq!((s3.region.as_str(), s3.prefix.as_str()), ("us-east-1", "ferry/"));
        assert!(s3.path_style && s3.direct);
        layer.insert("s3_path_style", "maybe".into());
        assert!(Config::from_layer(&layer).unwrap_err().to_string().contains("s3_path_style"));
    }
}
