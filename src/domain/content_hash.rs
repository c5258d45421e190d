//! Content hashes: the SHA-256 content key and the chunked top-hash device clients send
//! for files over 16 MiB (API.md §1, "File hashing").

use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::SerializableState;
use sha2::digest::typenum::Unsigned;
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256, exactly 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn parse(raw: &str) -> Result<Self, super::ParseError> {
        Self::check(raw).map(|()| Self(raw.to_owned()))
    }

    /// As [`Sha256Hex::parse`], keeping the string it was given.
    pub fn parse_owned(raw: String) -> Result<Self, super::ParseError> {
        Self::check(&raw).map(|()| Self(raw))
    }

    fn check(raw: &str) -> Result<(), super::ParseError> {
        if raw.len() == 64 && raw.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(())
        } else {
            Err(super::ParseError::new(format!(
                "'{}' is not a lowercase hex SHA-256 (64 characters)",
                raw.chars().take(80).collect::<String>()
            )))
        }
    }

    pub fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }

    pub fn of(bytes: &[u8]) -> Self {
        Self::from_digest(&Sha256::digest(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Sha256Hex {
    type Error = super::ParseError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_owned(value)
    }
}

impl From<Sha256Hex> for String {
    fn from(value: Sha256Hex) -> Self {
        value.0
    }
}

/// Files up to this size are hashed whole (chunk size 0).
pub const WHOLE_FILE_LIMIT: u64 = 16 * 1024 * 1024;
const FIRST_CHUNK: u64 = 8 * 1024 * 1024;
const MAX_CHUNKS: u64 = 900;

/// The chunk size API.md §1 prescribes for a file of `file_size` bytes (0 = hashed whole).
pub fn chunk_size_for(file_size: u64) -> u64 {
    if file_size <= WHOLE_FILE_LIMIT {
        return 0;
    }
    let mut chunk = FIRST_CHUNK;
    while file_size.div_ceil(chunk) > MAX_CHUNKS {
        chunk *= 2;
    }
    chunk
}

/// Computes the chunked top-hash incrementally: SHA-256 per chunk, then SHA-256 of the
/// concatenated 32-byte chunk digests. The chunk size is chosen up front from the expected
/// size; [`ChunkHasher::finish`] says when the real size needs another plan.
pub struct ChunkHasher {
    chunk_size: u64,
    in_chunk: u64,
    current: Sha256,
    digests: Vec<u8>,
}

impl ChunkHasher {
    /// `expected_size` picks the chunk size; without it the 8 MiB plan is assumed, which is
    /// right for every file up to 7,549,747,200 bytes.
    pub fn new(expected_size: Option<u64>) -> Self {
        let chunk_size = expected_size.map(chunk_size_for).filter(|c| *c > 0).unwrap_or(FIRST_CHUNK);
        Self { chunk_size, in_chunk: 0, current: Sha256::new(), digests: Vec::new() }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = (self.chunk_size - self.in_chunk) as usize;
            let take = room.min(bytes.len());
            self.current.update(&bytes[..take]);
            self.in_chunk += take as u64;
            bytes = &bytes[take..];
            if self.in_chunk == self.chunk_size {
                self.close_chunk();
            }
        }
    }

    fn close_chunk(&mut self) {
        let digest = std::mem::take(&mut self.current).finalize();
        self.digests.extend_from_slice(&digest);
        self.in_chunk = 0;
    }

    /// The top-hash for a file of `total` bytes, or `None` when `total` calls for another
    /// chunk size than the one hashed (the caller then hashes the stored bytes again).
    /// Files up to 16 MiB have no top-hash: their device hash is the plain SHA-256.
    pub fn finish(mut self, total: u64) -> Option<Sha256Hex> {
        if total <= WHOLE_FILE_LIMIT || chunk_size_for(total) != self.chunk_size {
            return None;
        }
        if self.in_chunk > 0 {
            self.close_chunk();
        }
        Some(Sha256Hex::of(&self.digests))
    }

    /// [`ChunkHasher::finish`] with the digest of every chunk: the part hashes of the device
    /// family's multipart plan (a sync client computes both in its one read of the file).
    pub fn finish_with_chunks(mut self, total: u64) -> Option<(Sha256Hex, Vec<Sha256Hex>)> {
        if total <= WHOLE_FILE_LIMIT || chunk_size_for(total) != self.chunk_size {
            return None;
        }
        if self.in_chunk > 0 {
            self.close_chunk();
        }
        let chunks = self.digests.chunks_exact(32).map(Sha256Hex::from_digest).collect();
        Some((Sha256Hex::of(&self.digests), chunks))
    }

    /// The digests of the chunks closed so far (32 bytes each).
    pub fn chunk_digests(&self) -> impl Iterator<Item = &[u8]> {
        self.digests.chunks_exact(32)
    }

    /// The hasher's whole state as bytes (see [`sha256_state`]), to continue it in another
    /// request or process: the plan, the open chunk and the digests of the closed ones.
    pub fn to_state(&self) -> Vec<u8> {
        let mut state = Vec::with_capacity(16 + SHA256_STATE_LEN + self.digests.len());
        state.extend_from_slice(&self.chunk_size.to_le_bytes());
        state.extend_from_slice(&self.in_chunk.to_le_bytes());
        state.extend_from_slice(&sha256_state(&self.current));
        state.extend_from_slice(&self.digests);
        state
    }

    /// A hasher continued from [`ChunkHasher::to_state`].
    pub fn from_state(state: &[u8]) -> Result<Self, super::ParseError> {
        let bad = || super::ParseError::new("not a chunked-hash state");
        if state.len() < 16 + SHA256_STATE_LEN || !(state.len() - 16 - SHA256_STATE_LEN).is_multiple_of(32) {
            return Err(bad());
        }
        let word = |at: usize| u64::from_le_bytes(state[at..at + 8].try_into().expect("8 bytes"));
        let (chunk_size, in_chunk) = (word(0), word(8));
        if chunk_size < FIRST_CHUNK || !chunk_size.is_power_of_two() || in_chunk >= chunk_size {
            return Err(bad());
        }
        let current = sha256_from_state(&state[16..16 + SHA256_STATE_LEN])?;
        Ok(Self { chunk_size, in_chunk, current, digests: state[16 + SHA256_STATE_LEN..].to_vec() })
    }
}

/// Length of a serialised SHA-256 state (the compression state, the block count and the
/// buffered partial block).
pub const SHA256_STATE_LEN: usize = <<Sha256 as SerializableState>::SerializedStateSize as Unsigned>::USIZE;

/// A SHA-256 hasher's state as bytes, so hashing can stop after any byte and continue later
/// (another request, another replica) without reading the earlier bytes again. `sha2`
/// promises the format within a `0.x` series; `a_serialised_state_keeps_its_format` pins it.
pub fn sha256_state(hasher: &Sha256) -> Vec<u8> {
    hasher.serialize().to_vec()
}

/// A hasher continued from [`sha256_state`].
pub fn sha256_from_state(state: &[u8]) -> Result<Sha256, super::ParseError> {
    let bad = || super::ParseError::new("not a SHA-256 state");
    let array = state.try_into().map_err(|_| bad())?;
    Sha256::deserialize(array).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// API.md's test content: byte i = i mod 251.
    fn pattern(len: u64) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn device_hash(len: u64) -> String {
        let data = pattern(len);
        let mut chunks = ChunkHasher::new(Some(len));
        for piece in data.chunks(1_000_003) {
            chunks.update(piece);
        }
        chunks.finish(len).unwrap_or_else(|| Sha256Hex::of(&data)).to_string()
    }

    #[test]
    fn chunk_sizes_follow_the_documented_rule() {
        assert_eq!(chunk_size_for(16_777_216), 0);
        assert_eq!(chunk_size_for(16_777_217), 8 << 20);
        assert_eq!(chunk_size_for(7_549_747_200), 8 << 20);
        assert_eq!(chunk_size_for(7_549_747_201), 16 << 20);
    }

    #[test]
    fn api_test_vectors() {
        let cases = [
            (5, "08bb5e5d6eaac1049ede0893d30ed022b1a4d9b5b48db414871f51c9cb35283d"),
            (16_777_216, "287507f403176f1f5b22b9a4d9cb49f7d7f88ac19e406b5ae87ce109564846bd"),
            (16_777_217, "c67fb45700283719a5e83286b12584152f70b3dc9fbc429ce236601daf9aaa2f"),
            (41_955_385, "94f45e905207b15b1667a6b64fc06d6b076e88435791e24aff1726c844048862"),
        ];
        for (len, expected) in cases {
            assert_eq!(device_hash(len), expected, "size {len}");
        }
    }

    #[test]
    fn unknown_size_uses_the_eight_mib_plan() {
        let data = pattern(41_955_385);
        let mut chunks = ChunkHasher::new(None);
        chunks.update(&data);
        assert_eq!(chunks.chunk_digests().count(), 5);
        assert_eq!(
            chunks.finish(41_955_385).unwrap().as_str(),
            "94f45e905207b15b1667a6b64fc06d6b076e88435791e24aff1726c844048862"
        );
    }

    #[test]
    fn chunk_digests_come_with_the_top_hash() {
        let data = pattern(41_955_385);
        let mut chunks = ChunkHasher::new(Some(41_955_385));
        chunks.update(&data);
        let (top, parts) = chunks.finish_with_chunks(41_955_385).unwrap();
        assert_eq!(top.as_str(), "94f45e905207b15b1667a6b64fc06d6b076e88435791e24aff1726c844048862");
        let expected: Vec<Sha256Hex> = data.chunks(8 << 20).map(Sha256Hex::of).collect();
        assert_eq!(parts, expected);
    }

    #[test]
    fn a_plan_for_the_wrong_size_is_reported() {
        let mut chunks = ChunkHasher::new(Some(7_549_747_201));
        chunks.update(&[1, 2, 3]);
        assert!(chunks.finish(20_000_000).is_none());
    }

    #[test]
    fn hashing_continues_from_a_saved_state() {
        let data = pattern(20 * 1024 * 1024 + 77);
        let (first, rest) = data.split_at(9 * 1024 * 1024 + 5);
        let mut whole = Sha256::new();
        whole.update(first);
        let mut chunks = ChunkHasher::new(Some(data.len() as u64));
        chunks.update(first);
        let mut whole = sha256_from_state(&sha256_state(&whole)).unwrap();
        let mut chunks = ChunkHasher::from_state(&chunks.to_state()).unwrap();
        whole.update(rest);
        chunks.update(rest);
        assert_eq!(Sha256Hex::from_digest(&whole.finalize()), Sha256Hex::of(&data));
        assert_eq!(chunks.finish(data.len() as u64).unwrap().as_str(), device_hash(data.len() as u64));
        assert!(sha256_from_state(&[0; 3]).is_err());
        assert!(ChunkHasher::from_state(&[0; 200]).is_err());
    }

    #[test]
    fn a_serialised_state_keeps_its_format() {
        // states stored by one Ferry are continued by the next: a sha2 upgrade that changes
        // the format fails here instead of corrupting unfinished uploads
        let mut hasher = Sha256::new();
        hasher.update(b"abc");
        let state = sha256_state(&hasher);
        assert_eq!(state.len(), SHA256_STATE_LEN);
        assert_eq!(Sha256Hex::of(&state).as_str(), FROZEN_ABC_STATE);
        let mut continued = sha256_from_state(&state).unwrap();
        continued.update(b"def");
        assert_eq!(Sha256Hex::from_digest(&continued.finalize()), Sha256Hex::of(b"abcdef"));
    }

    const FROZEN_ABC_STATE: &str = "8d13fc166bb1ce1170e9b655a8b9f37c69df2541374b077212cb7a29942d806e";

    #[test]
    fn sha256_hex_is_strict() {
        assert!(Sha256Hex::parse(&"a".repeat(64)).is_ok());
        for bad in ["A".repeat(64), "a".repeat(63), "g".repeat(64), String::new()] {
            assert!(Sha256Hex::parse(&bad).is_err());
        }
    }
}
