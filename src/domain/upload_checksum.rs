//! tus `Upload-Checksum` (checksum extension): `<algorithm> <Base64 digest>` of one PATCH's
//! body. Ferry takes the algorithms it can compute in the same pass as everything else
//! (`Tus-Checksum-Algorithm`); never MD5 over upload bytes (DESIGN.md).

use base64::Engine;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every supported algorithm, as `Tus-Checksum-Algorithm` lists them.
    pub const ALL: [ChecksumAlgorithm; 2] = [ChecksumAlgorithm::Sha1, ChecksumAlgorithm::Sha256];

    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Sha1 => "sha1",
            ChecksumAlgorithm::Sha256 => "sha256",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

/// Why an `Upload-Checksum` header was refused (both are 400 in tus).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    #[error("checksum algorithm '{0}' is not supported (Tus-Checksum-Algorithm lists sha1, sha256)")]
    Unsupported(String),
    #[error("Upload-Checksum must be '<algorithm> <Base64 digest>': {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

impl UploadChecksum {
    pub fn parse(raw: &str) -> Result<Self, ChecksumError> {
        let (name, encoded) = raw.trim().split_once(' ').ok_or_else(|| ChecksumError::Malformed("no digest".into()))?;
        let algorithm = ChecksumAlgorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| ChecksumError::Unsupported(name.chars().take(40).collect()))?;
        let digest = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| ChecksumError::Malformed("the digest is not Base64".into()))?;
        if digest.len() != algorithm.digest_len() {
            return Err(ChecksumError::Malformed(format!(
                "a {} digest has {} bytes, not {}",
                algorithm.name(),
                algorithm.digest_len(),
                digest.len()
            )));
        }
        Ok(Self { algorithm, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_parse_with_their_algorithm() {
        // SHA-1 and SHA-256 of "hello"
        let sha1 = UploadChecksum::parse("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=").unwrap();
        assert_eq!((sha1.algorithm, sha1.digest.len()), (ChecksumAlgorithm::Sha1, 20));
        let sha256 = UploadChecksum::parse("SHA256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=").unwrap();
        assert_eq!(sha256.algorithm, ChecksumAlgorithm::Sha256);
    }

    #[test]
    fn bad_checksums_are_refused() {
        assert!(matches!(UploadChecksum::parse("md5 XUFAKrxLKna5cZ2REBfFkg=="), Err(ChecksumError::Unsupported(_))));
        for bad in ["sha1", "sha1 ***", "sha1 YQ==", ""] {
            assert!(matches!(UploadChecksum::parse(bad), Err(ChecksumError::Malformed(_))), "{bad}");
        }
    }
}
