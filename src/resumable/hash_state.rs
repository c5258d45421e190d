//! The hashes of a resumable upload, carried from one PATCH to the next (and from one
//! replica to another) in the catalog, so that the completing PATCH knows the file's SHA-256
//! without reading a byte again. tus is not the device family, so a new upload hashes only
//! the SHA-256 (the `device_hash` job computes a large file's top-hash later); a state
//! written before that, with a top-hash under way, is still read and finished.
//!
//! `sha2` 0.11 exposes a hasher's internal state (`SerializableState`: the eight words, the
//! block count and the buffered partial block, 105 bytes); the top-hash adds its plan, its
//! open chunk's hasher and the digests of the closed chunks (32 bytes per chunk: 4 KiB for a
//! 1 GiB file).

use sha2::Sha256;

use crate::domain::{ChunkHasher, ParseError, SHA256_STATE_LEN, sha256_from_state, sha256_state};

/// The format's version, first byte of every state.
const VERSION: u8 = 1;

/// The hashers of a file being received over several requests (a new upload's: the SHA-256
/// alone).
#[derive(Default)]
pub(crate) struct HashState {
    pub whole: Sha256,
    pub chunks: Option<ChunkHasher>,
}

impl HashState {
    /// The state of hashers as they stand, as bytes.
    pub fn encode(whole: &Sha256, chunks: Option<&ChunkHasher>) -> Vec<u8> {
        let mut bytes = vec![VERSION];
        bytes.extend_from_slice(&sha256_state(whole));
        if let Some(chunks) = chunks {
            bytes.extend_from_slice(&chunks.to_state());
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ParseError> {
        match bytes.split_first() {
            Some((&VERSION, rest)) if rest.len() >= SHA256_STATE_LEN => {
                let (whole, chunks) = rest.split_at(SHA256_STATE_LEN);
                let chunks = (!chunks.is_empty()).then(|| ChunkHasher::from_state(chunks)).transpose()?;
                Ok(Self { whole: sha256_from_state(whole)?, chunks })
            }
            _ => Err(ParseError::new("not a hash state of this Ferry")),
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::Digest;

    use super::*;
    use crate::domain::Sha256Hex;

    #[test]
    fn a_file_hashed_in_three_requests_gets_the_hashes_of_one_read() {
        let data: Vec<u8> = (0..41_955_385u64).map(|i| (i % 251) as u8).collect();
        // a state with a top-hash under way, as written by uploads begun on an earlier Ferry
        let mut state = HashState::encode(&Sha256::default(), Some(&ChunkHasher::new(None)));
        for piece in [&data[..5], &data[5..20_000_000], &data[20_000_000..]] {
            let HashState { mut whole, mut chunks } = HashState::decode(&state).unwrap();
            whole.update(piece);
            chunks.as_mut().unwrap().update(piece);
            state = HashState::encode(&whole, chunks.as_ref());
        }
        let HashState { whole, chunks } = HashState::decode(&state).unwrap();
        assert_eq!(Sha256Hex::from_digest(&whole.finalize()), Sha256Hex::of(&data));
        // API.md's test vector for this size
        let top = chunks.unwrap().finish(data.len() as u64).unwrap();
        assert_eq!(top.as_str(), "94f45e905207b15b1667a6b64fc06d6b076e88435791e24aff1726c844048862");
    }

    #[test]
    fn new_uploads_carry_no_top_hash_and_bad_states_are_refused() {
        assert!(HashState::default().chunks.is_none());
        let small = HashState::encode(&Sha256::default(), None);
        assert!(HashState::decode(&small).unwrap().chunks.is_none());
        assert!(HashState::decode(&[2, 0, 0]).is_err());
        assert!(HashState::decode(&[]).is_err());
    }
}
