//! A local file's device-family identity (API.md §1, "File hashing"), computed in one read:
//! the plain SHA-256 up to 16 MiB; above, the chunk digests (which are the multipart part
//! hashes) and the top-hash over them. The rule itself lives in [`crate::domain`].

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::{ChunkHasher, Sha256Hex, chunk_size_for};

const BUFFER: u64 = 1 << 20;

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
/// A file whose length differs from `size` changed meanwhile, which is an error. A file in
/// chunks is hashed on every core at once (its chunks are independent; each byte is still
/// read once): hashing a large file is what a push of it waits for first.
pub fn hash_file(path: &Path, size: u64, progress: &(dyn Fn(u64) + Sync)) -> std::io::Result<FileHash> {
    let chunk = chunk_size_for(size);
    let chunks = size.div_ceil(chunk.max(1));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(chunks as usize);
    if chunk == 0 || threads < 2 {
        let mut hasher = DeviceHasher::new(size);
        read_range(&mut std::fs::File::open(path)?, 0, u64::MAX, &mut |bytes| {
            hasher.update(bytes);
            progress(bytes.len() as u64);
        })?;
        return hasher.finish();
    }
    // thread t hashes chunks t, t + threads, …
    let digests: Vec<std::io::Result<Vec<(u64, Sha256Hex)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|first| {
                scope.spawn(move || {
                    let mut file = std::fs::File::open(path)?;
                    let mut done = Vec::new();
                    for index in (first..chunks).step_by(threads) {
                        let (offset, len) = (index * chunk, chunk.min(size - index * chunk));
                        let mut digest = Sha256::new();
                        let read = read_range(&mut file, offset, len, &mut |bytes| {
                            digest.update(bytes);
                            progress(bytes.len() as u64);
                        })?;
                        if read != len {
                            return Err(changed(size, offset + read));
                        }
                        done.push((index, Sha256Hex::from_digest(&digest.finalize())));
                    }
                    Ok(done)
                })
            })
            .collect();
        workers.into_iter().map(|worker| worker.join().expect("hashing does not panic")).collect()
    });
    let mut parts: Vec<(u64, Sha256Hex)> = Vec::with_capacity(chunks as usize);
    for done in digests {
        parts.extend(done?);
    }
    // one byte past the end means the file grew since it was listed
    if read_range(&mut std::fs::File::open(path)?, size, 1, &mut |_| {})? > 0 {
        return Err(changed(size, size + 1));
    }
    parts.sort_by_key(|(index, _)| *index);
    let mut top = Sha256::new();
    for (_, part) in &parts {
        top.update(hex::decode(part.as_str()).expect("digests are hex"));
    }
    let parts = parts.into_iter().map(|(_, part)| part).collect();
    Ok(FileHash { file_hash: Sha256Hex::from_digest(&top.finalize()), size, parts })
}

fn changed(size: u64, now: u64) -> std::io::Error {
    std::io::Error::other(format!("changed while being read ({size} bytes before, at least {now} now)"))
}

/// Reads up to `len` bytes of `file` from `offset`, handing each buffer to `each`; returns
/// how many there were (fewer at the end of the file).
fn read_range(file: &mut std::fs::File, offset: u64, len: u64, each: &mut dyn FnMut(&[u8])) -> std::io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    let mut buffer = vec![0u8; BUFFER.min(len.max(1)) as usize];
    let mut read_so_far = 0;
    while read_so_far < len {
        let want = (len - read_so_far).min(buffer.len() as u64) as usize;
        let read = file.read(&mut buffer[..want])?;
        if read == 0 {
            break;
        }
        each(&buffer[..read]);
        read_so_far += read as u64;
    }
    Ok(read_so_far)
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
        // a file in chunks whose size changed, either way
        let big = dir.path().join("f16777217");
        assert!(hash_file(&big, 16_777_218, &|_| {}).is_err(), "shorter than listed");
        let grown = dir.path().join("grown");
        std::fs::write(&grown, vec![1u8; 16_777_316]).unwrap();
        assert!(hash_file(&grown, 16_777_266, &|_| {}).is_err(), "longer than listed");
        assert!(hash_file(&grown, 16_777_316, &|_| {}).is_ok());
        let seen = std::sync::atomic::AtomicU64::new(0);
        let counted = |n| {
            seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        hash_file(&big, 16_777_217, &counted).unwrap();
        assert_eq!(seen.into_inner(), 16_777_217, "progress hears every byte once");
    }
}
