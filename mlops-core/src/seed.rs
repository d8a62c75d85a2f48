//! Seeds derived from content, so results never depend on thread count or file order.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// A generator for one item of a batch, seeded by the batch `seed`, the item's `key` (for a
/// file: its path relative to the input root, with `/` separators) and its bytes.
pub fn item_rng(seed: u64, key: &str, bytes: &[u8]) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(b"mlops/item-rng/v1\0");
    hasher.update(seed.to_le_bytes());
    hasher.update((key.len() as u64).to_le_bytes());
    hasher.update(key.as_bytes());
    hasher.update(bytes);
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
