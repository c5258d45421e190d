//! A local file's device-family identity (API.md §1, "File hashing"), computed in one read:
//! the plain SHA-256 up to 16 MiB; above, the chunk digests (which are the multipart part
//! hashes) and the top-hash over them. The rule itself lives in [`crate::domain`].

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{ChunkHasher, Sha256Hex, chunk_size_for};

const BUFFER: usize = 1 << 20;

/// What the server knows a file by, plus its part plan when it goes in parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHash {
    pub file_hash: Sha256Hex,
    pub size: u64,
    /// Part digests (files over 16 MiB), in order; empty for a single PUT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Sha256Hex>,
}

impl FileHash {
    /// What the server knows the content by: file hash and size.
    pub fn key(&self) -> (Sha256Hex, u64) {
        (self.file_hash.clone(), self.size)
    }

    /// The chunk (= part) size of this file; 0 for a single PUT.
    pub fn chunk_size(&self) -> u64 {
        chunk_size_for(self.size)
    }

    /// `(offset, length)` of part `num` (from 1).
    pub fn part_range(&self, num: u32) -> (u64, u64) {
        let chunk = self.chunk_size();
        let offset = chunk * u64::from(num - 1);
        (offset, chunk.min(self.size - offset))
    }
}

/// The device-family hash of bytes fed in order (a file being read or downloaded), for a
/// file of a size known up front.
pub struct DeviceHasher {
    size: u64,
    total: u64,
    plain: Option<Sha256>,
    chunks: Option<ChunkHasher>,
}

impl DeviceHasher {
    pub fn new(size: u64) -> Self {
        let plain = (chunk_size_for(size) == 0).then(Sha256::new);
        let chunks = plain.is_none().then(|| ChunkHasher::new(Some(size)));
        Self { size, total: 0, plain, chunks }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        if let Some(plain) = self.plain.as_mut() {
            plain.update(bytes);
        }
        if let Some(chunks) = self.chunks.as_mut() {
            chunks.update(bytes);
        }
        self.total += bytes.len() as u64;
    }

    /// The hash, or an error when the bytes fed were not `size` long.
    pub fn finish(self) -> std::io::Result<FileHash> {
        let (size, total) = (self.size, self.total);
        let changed = || std::io::Error::other(format!("changed while being read ({size} bytes before, {total} now)"));
        if total != size {
            return Err(changed());
        }
        match (self.plain, self.chunks) {
            (Some(plain), _) => {
                Ok(FileHash { file_hash: Sha256Hex::from_digest(&plain.finalize()), size, parts: Vec::new() })
            }
            (None, Some(chunks)) => {
                let (file_hash, parts) = chunks.finish_with_chunks(size).ok_or_else(changed)?;
                Ok(FileHash { file_hash, size, parts })
            }
            (None, None) => unreachable!("one of the two hashers is always set"),
        }
    }
}

/// Hashes the file at `path`, expected to hold `size` bytes; `progress` hears every buffer.
/// A file whose length differs from `size` changed meanwhile, which is an error.
pub fn hash_file(path: &Path, size: u64, progress: &dyn Fn(u64)) -> std::io::Result<FileHash> {
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; BUFFER.min(size.max(1) as usize)];
    let mut hasher = DeviceHasher::new(size);
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        progress(read as u64);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_api_test_vectors() {
        let dir = tempfile::tempdir().unwrap();
        for (len, expected, parts) in [
            (5u64, "08bb5e5d6eaac1049ede0893d30ed022b1a4d9b5b48db414871f51c9cb35283d", 0),
            (16_777_217, "c67fb45700283719a5e83286b12584152f70b3dc9fbc429ce236601daf9aaa2f", 3),
        ] {
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, (0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>()).unwrap();
            let hashed = hash_file(&path, len, &|_| {}).unwrap();
            assert_eq!(hashed.file_hash.as_str(), expected);
            assert_eq!(hashed.parts.len(), parts);
        }
        assert!(hash_file(&dir.path().join("f5"), 6, &|_| {}).is_err(), "a size that changed is an error");
    }
}
