//! Signed URLs: HMAC-SHA256 over method, path and the whole query before `sig`, so any
//! changed character of the path or query (or another method) invalidates the URL.
//!
//! Format (opaque to clients): `<base><path>?<param>=<value>&…&expires=<unix>&sig=<hex>`.
//! What a URL is bound to — principal, size, hash, target — is in its signed parameters;
//! the handler of `path` reads them back from [`Verified`].
//!
//! Two exceptions: a target may let clients append named parameters after `sig`, outside
//! the signature, as its caller of [`Signer::verify`] declares (a client SDK appends
//! `folder_id` to a session's direct URL per file); and a signed GET also answers HEAD with
//! the same signature (API.md §5).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::clock::now_secs;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signed URL is invalid or was altered")]
    Invalid,
    #[error("the signed URL has expired")]
    Expired,
}

#[derive(Clone)]
pub struct Signer {
    key: Vec<u8>,
}

/// The parameters of a URL whose signature checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    params: Vec<(String, String)>,
    /// Parameters appended after `sig` that the target allows (decoded).
    unsigned: Vec<(String, String)>,
    pub expires: i64,
}

impl Verified {
    /// A signed parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// A parameter the client appended after the signature (one the target allows): the
    /// URL does not vouch for it, so it is input like any other.
    pub fn unsigned(&self, name: &str) -> Option<&str> {
        self.unsigned.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Signer {
    pub fn new(key: Vec<u8>) -> Self {
        Self { key }
    }

    fn mac(&self, method: &str, path: &str, query: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", query.as_bytes()] {
            mac.update(part);
        }
        mac
    }

    /// Signs `method path?params` until `expires` (Unix seconds) and returns the full URL on `base`.
    pub fn sign(&self, base: &str, method: &str, path: &str, params: &[(&str, String)], expires: i64) -> String {
        let mut query = String::new();
        for (name, value) in params {
            // names are the targets' constants, written as they are; values are encoded
            debug_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "parameter name {name:?}");
            query.push_str(name);
            query.push('=');
            query.extend(form_urlencoded::byte_serialize(value.as_bytes()));
            query.push('&');
        }
        query.push_str(&format!("expires={expires}"));
        let sig = hex::encode(self.mac(method, path, &query).finalize().into_bytes());
        format!("{base}{path}?{query}&sig={sig}")
    }

    /// Checks a received request line. `raw_query` is exactly as received (not re-encoded).
    /// `unsigned` names the parameters the target lets a client append after `sig`, each at
    /// most once; anything else after the signature is refused like any other change.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        raw_query: Option<&str>,
        unsigned: &[&str],
    ) -> Result<Verified, SignatureError> {
        // a signed GET also answers HEAD: the same resource, without its body
        let method = if method == "HEAD" { "GET" } else { method };
        let query = raw_query.ok_or(SignatureError::Invalid)?;
        // the first `&sig=` ends the signed part: signed values are form-encoded, so no `&`
        let (signed, rest) = query.split_once("&sig=").ok_or(SignatureError::Invalid)?;
        let (sig_hex, appended) = rest.split_at_checked(64).ok_or(SignatureError::Invalid)?;
        // exactly the form we issue: 64 lowercase hex (hex::decode would also take uppercase)
        if !sig_hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(SignatureError::Invalid);
        }
        let sig = hex::decode(sig_hex).map_err(|_| SignatureError::Invalid)?;
        // constant-time comparison
        self.mac(method, path, signed).verify_slice(&sig).map_err(|_| SignatureError::Invalid)?;
        let unsigned = appended_params(appended, unsigned)?;
        let params: Vec<(String, String)> = form_urlencoded::parse(signed.as_bytes()).into_owned().collect();
        let expires = params
            .iter()
            .find(|(k, _)| k == "expires")
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .ok_or(SignatureError::Invalid)?;
        if expires < now_secs() {
            return Err(SignatureError::Expired);
        }
        Ok(Verified { params, unsigned, expires })
    }
}

/// What follows the signature: nothing, or `&name=value` pairs whose names are all in
/// `allowed`, each once, spelt exactly (no empty pair, no encoded name).
fn appended_params(appended: &str, allowed: &[&str]) -> Result<Vec<(String, String)>, SignatureError> {
    if appended.is_empty() {
        return Ok(Vec::new());
    }
    let pairs = appended.strip_prefix('&').ok_or(SignatureError::Invalid)?;
    let mut found: Vec<(String, String)> = Vec::new();
    for pair in pairs.split('&') {
        let (name, _) = pair.split_once('=').ok_or(SignatureError::Invalid)?;
        if !allowed.contains(&name) || found.iter().any(|(seen, _)| seen == name) {
            return Err(SignatureError::Invalid);
        }
        found.extend(form_urlencoded::parse(pair.as_bytes()).into_owned());
    }
    Ok(found)
}

/// The signed targets of the upload host; API families add their own paths.
pub mod targets {
    use super::Signer;
    use crate::domain::{Sha256Hex, UserId};

    pub const BLOB_PUT: &str = "/signed/blob";
    pub const BLOB_GET_PREFIX: &str = "/signed/blob/";
    pub const PART_PUT: &str = "/signed/part";

    /// A PUT that stores its body as a blob held by `user`, optionally bound to a size and
    /// to its plain SHA-256.
    pub fn blob_put(
        signer: &Signer,
        base: &str,
        user: UserId,
        size: Option<u64>,
        sha256: Option<&Sha256Hex>,
        expires: i64,
    ) -> String {
        let mut params = vec![("user", user.to_string())];
        params.extend(size.map(|s| ("size", s.to_string())));
        params.extend(sha256.map(|h| ("sha256", h.to_string())));
        signer.sign(base, "PUT", BLOB_PUT, &params, expires)
    }

    /// A PUT bound to a size and to the device family's `file_hash` (API.md §1).
    pub fn device_blob_put(
        signer: &Signer,
        base: &str,
        user: UserId,
        size: u64,
        file_hash: &Sha256Hex,
        expires: i64,
    ) -> String {
        let params = [("user", user.to_string()), ("size", size.to_string()), ("file_hash", file_hash.to_string())];
        signer.sign(base, "PUT", BLOB_PUT, &params, expires)
    }

    /// A PUT of part `part` of upload `upload`, optionally bound to the part's size and SHA-256.
    pub fn part_put(
        signer: &Signer,
        base: &str,
        upload: &str,
        part: u32,
        bound: Option<(u64, &Sha256Hex)>,
        expires: i64,
    ) -> String {
        let mut params = vec![("upload", upload.to_owned()), ("part", part.to_string())];
        if let Some((size, sha256)) = bound {
            params.push(("size", size.to_string()));
            params.push(("sha256", sha256.to_string()));
        }
        signer.sign(base, "PUT", PART_PUT, &params, expires)
    }

    /// A GET of one blob (Range supported).
    pub fn blob_get(signer: &Signer, base: &str, sha256: &Sha256Hex, expires: i64) -> String {
        signer.sign(base, "GET", &format!("{BLOB_GET_PREFIX}{sha256}"), &[], expires)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (&str, &str) {
        let rest = url.strip_prefix("http://h").unwrap();
        rest.split_once('?').unwrap()
    }

    #[test]
    fn round_trip_and_tampering() {
        let signer = Signer::new(b"k".to_vec());
        let url = signer.sign(
            "http://h",
            "PUT",
            "/signed/blob",
            &[("user", "7".into()), ("name", "a b&c".into())],
            now_secs() + 60,
        );
        let (path, query) = split(&url);
        let ok = signer.verify("PUT", path, Some(query), &[]).unwrap();
        assert_eq!(ok.get("user"), Some("7"));
        assert_eq!(ok.get("name"), Some("a b&c"));

        assert_eq!(signer.verify("GET", path, Some(query), &[]).unwrap_err(), SignatureError::Invalid);
        assert_eq!(signer.verify("PUT", "/signed/blobs", Some(query), &[]).unwrap_err(), SignatureError::Invalid);
        for i in 0..query.len() {
            let mut bytes = query.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'1' { b'2' } else { b'1' };
            let tampered = String::from_utf8(bytes).unwrap();
            assert!(signer.verify("PUT", path, Some(&tampered), &[]).is_err(), "char {i} of {query}");
        }
        assert!(Signer::new(b"other".to_vec()).verify("PUT", path, Some(query), &[]).is_err());
        let upper =
            query.replace(query.rsplit_once("&sig=").unwrap().1, &query.rsplit_once("&sig=").unwrap().1.to_uppercase());
        assert_eq!(signer.verify("PUT", path, Some(&upper), &[]).unwrap_err(), SignatureError::Invalid);
    }

    #[test]
    fn only_allowed_parameters_may_follow_the_signature() {
        let signer = Signer::new(b"k".to_vec());
        let url = signer.sign("http://h", "POST", "/s", &[("user", "7".into())], now_secs() + 60);
        let (path, query) = split(&url);
        let allowed = &["folder_id"];
        let with = |suffix: &str| signer.verify("POST", path, Some(&format!("{query}{suffix}")), allowed);
        let ok = with("&folder_id=trip%2D1").unwrap();
        assert_eq!((ok.get("user"), ok.unsigned("folder_id"), ok.get("folder_id")), (Some("7"), Some("trip-1"), None));
        assert_eq!(with("").unwrap().unsigned("folder_id"), None);
        for refused in [
            "&title=x",
            "&folder_id=a&folder_id=b",
            "&folder_id=a&",
            "&",
            "folder_id=a",
            "&folder%5Fid=a",
            "&folder_id",
            "&sig=00",
        ] {
            assert_eq!(with(refused).unwrap_err(), SignatureError::Invalid, "{refused}");
        }
        // without the target's allowance nothing may follow
        let bare = format!("{query}&folder_id=a");
        assert_eq!(signer.verify("POST", path, Some(&bare), &[]).unwrap_err(), SignatureError::Invalid);
    }

    #[test]
    fn a_signed_get_also_verifies_as_head_and_nothing_else_does() {
        let signer = Signer::new(b"k".to_vec());
        let get = signer.sign("http://h", "GET", "/x", &[], now_secs() + 60);
        let (path, query) = split(&get);
        assert!(signer.verify("HEAD", path, Some(query), &[]).is_ok());
        let put = signer.sign("http://h", "PUT", "/x", &[], now_secs() + 60);
        let (path, query) = split(&put);
        assert_eq!(signer.verify("HEAD", path, Some(query), &[]).unwrap_err(), SignatureError::Invalid);
    }

    #[test]
    fn expired_urls_are_refused() {
        let signer = Signer::new(b"k".to_vec());
        let url = signer.sign("http://h", "GET", "/x", &[], now_secs() - 1);
        let (path, query) = split(&url);
        assert_eq!(signer.verify("GET", path, Some(query), &[]).unwrap_err(), SignatureError::Expired);
    }
}
