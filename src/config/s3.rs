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
    let prefix = get("s3_prefix").unwrap_or("").trim_matches('/');
    Ok(Some(S3Config {
        prefix: if prefix.is_empty() { String::new() } else { format!("{prefix}/") },
        direct: flag(get, "s3_direct", false)?,
        ..connection(get, endpoint, bucket)?
    }))
}

/// The buckets blob import reads (`import_buckets`), reached with the same endpoint and
/// credentials as the blob store: read-only sources, so no prefix and no direct mode.
pub(super) fn import_buckets<'a>(
    get: &impl Fn(&'static str) -> Option<&'a str>,
    endpoint: Option<String>,
) -> Result<Vec<S3Config>, ConfigError> {
    let names = get("import_buckets").unwrap_or("").split(',').map(str::trim).filter(|n| !n.is_empty());
    let mut buckets: Vec<S3Config> = Vec::new();
    for name in names {
        if !is_bucket_name(name) || name == "local" {
            let message = format!("'{name}' is not an S3 bucket name (3-63 of a-z 0-9 . -; 'local' is the import dir)");
            return Err(ConfigError::Value { key: "import_buckets", message });
        }
        if !buckets.iter().any(|b| b.bucket == name) {
            buckets.push(connection(get, endpoint.clone(), name)?);
        }
    }
    Ok(buckets)
}

/// How to reach `bucket` with the `s3_*` connection settings.
fn connection<'a>(
    get: &impl Fn(&'static str) -> Option<&'a str>,
    endpoint: Option<String>,
    bucket: &str,
) -> Result<S3Config, ConfigError> {
    Ok(S3Config {
        endpoint,
        region: get("s3_region").unwrap_or("us-east-1").to_owned(),
        bucket: bucket.to_owned(),
        access_key_id: get("s3_access_key_id").map(str::to_owned),
        secret_access_key: get("s3_secret_access_key").map(|s| Secret(s.to_owned())),
        path_style: flag(get, "s3_path_style", true)?,
        prefix: String::new(),
        direct: false,
    })
}

fn flag<'a>(
    get: &impl Fn(&'static str) -> Option<&'a str>,
    key: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(key).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes") => Ok(true),
        Some("0" | "false" | "no") => Ok(false),
        Some(other) => Err(ConfigError::Value { key, message: format!("'{other}' (expected true or false)") }),
    }
}

/// S3's bucket naming rules, as far as they keep a name usable in a URL path and host.
fn is_bucket_name(name: &str) -> bool {
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(name.bytes().next())
        && edge_ok(name.bytes().last())
        && !name.contains("..")
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

    #[test]
    fn import_buckets_share_the_s3_connection_and_must_be_bucket_names() {
        let mut layer = Layer::new();
        layer.insert("s3_region", "eu-west-1".into());
        layer.insert("import_buckets", "cam-dumps, nas.export,cam-dumps".into());
        let config = Config::from_layer(&layer).unwrap();
        assert!(config.s3.is_none(), "import buckets alone keep blobs on local disk");
        let names: Vec<_> = config.import_buckets.iter().map(|b| (b.bucket.as_str(), b.region.as_str())).collect();
        assert_eq!(names, [("cam-dumps", "eu-west-1"), ("nas.export", "eu-west-1")]);
        for bad in ["local", "Upper", "a", "-edge", "a..b", "with/slash"] {
            layer.insert("import_buckets", bad.into());
            let err = Config::from_layer(&layer).unwrap_err().to_string();
            assert!(err.contains("import_buckets"), "{bad}: {err}");
        }
    }
}
