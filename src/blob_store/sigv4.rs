//! SigV4 query presigning for the direct-mode PUTs (single objects and multipart parts).
//!
//! `object_store` presigns too, but leaves `Content-Length` out of every signature, and a PUT
//! URL that does not bind its length lets a client store any amount under it. Here every
//! header passed in is signed (including `content-length`), so the S3 server refuses a body
//! of another length. The algorithm is AWS's "Authenticating Requests: Using Query
//! Parameters" with an unsigned payload; the unit test is AWS's own example.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// What a presigned URL is made with.
#[derive(Clone)]
pub struct SigV4 {
    /// `scheme://host[:port]` of the S3 endpoint.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub path_style: bool,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl SigV4 {
    /// A presigned URL for `method` on object `key`, valid `expires` from `now`, with the extra
    /// signed `query` parameters and signed `headers` (names in lowercase) the request must carry.
    pub fn presign(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, String)],
        headers: &[(&str, String)],
        expires: Duration,
        now: OffsetDateTime,
    ) -> String {
        let (scheme, authority) = self.endpoint.split_once("://").unwrap_or(("https", &self.endpoint));
        let authority = authority.trim_end_matches('/');
        let (host, path) = if self.path_style {
            (authority.to_owned(), format!("/{}/{}", self.bucket, encode_path(key)))
        } else {
            (format!("{}.{authority}", self.bucket), format!("/{}", encode_path(key)))
        };
        let date = now.format(time::macros::format_description!("[year][month][day]")).expect("formats");
        let stamp = now
            .format(time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"))
            .expect("formats");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let mut signed: Vec<(String, String)> = vec![("host".into(), host.clone())];
        signed.extend(headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned())));
        signed.sort();
        let signed_names = signed.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(";");
        let mut params: Vec<(String, String)> = vec![
            ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
            ("X-Amz-Credential".into(), format!("{}/{scope}", self.access_key_id)),
            ("X-Amz-Date".into(), stamp.clone()),
            ("X-Amz-Expires".into(), expires.as_secs().to_string()),
            ("X-Amz-SignedHeaders".into(), signed_names.clone()),
        ];
        params.extend(query.iter().map(|(name, value)| (name.to_string(), value.clone())));
        let mut encoded: Vec<(String, String)> =
            params.iter().map(|(name, value)| (encode(name, true), encode(value, true))).collect();
        encoded.sort();
        let canonical_query = encoded.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&");
        let canonical_headers: String = signed.iter().map(|(name, value)| format!("{name}:{value}\n")).collect();
        let canonical_request =
            format!("{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed_names}\nUNSIGNED-PAYLOAD");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{}", self.secret_access_key).as_bytes(), date.as_bytes());
        for part in [self.region.as_str(), "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
        format!("{scheme}://{host}{path}?{canonical_query}&X-Amz-Signature={signature}")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters stay, and `/` too when
/// `slash` is false (object keys keep their path separators).
fn encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            b'/' if !slash => out.push('/'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn encode_path(key: &str) -> String {
    encode(key, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_aws_documents() {
        // "Example: A presigned URL", AWS S3 API reference (sigv4-query-string-auth)
        let signer = SigV4 {
            endpoint: "https://s3.amazonaws.com".into(),
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            path_style: false,
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        };
        let now = time::macros::datetime!(2013-05-24 00:00:00 UTC);
        let url = signer.presign("GET", "test.txt", &[], &[], Duration::from_secs(86_400), now);
        assert!(url.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?"), "{url}");
        assert!(
            url.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
            "{url}"
        );
    }

    #[test]
    fn keys_keep_their_slashes_and_query_values_are_encoded() {
        assert_eq!(encode_path("a b/c+d"), "a%20b/c%2Bd");
        assert_eq!(encode("a/b=", true), "a%2Fb%3D");
    }
}
