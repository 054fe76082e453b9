//! Keys and authenticated encryption.
//!
//! # Why a nonce never repeats under one key
//! No AES-256-GCM key is used for more than one stored object. Each pack and each standalone object
//! (config, index, snapshot, lock) gets a fresh random 256-bit salt, written in clear at its start,
//! and its key is `HKDF-SHA256(master, salt)`. Inside one key the nonce is a counter: blob *i* of a
//! pack is sealed with nonce *i* and the pack's blob directory with a nonce from a separate domain;
//! a standalone object seals exactly one message. Two encryptions can therefore share a (key,
//! nonce) pair only if two salts collide: after 2^48 objects — far beyond billions of chunks in
//! 16 MiB packs — the birthday bound puts that below 2^-160. Key-slot wrapping keys come from
//! Argon2id or HKDF over a fresh 256-bit slot salt and seal one message each.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;

use crate::error::{Error, Result};
use crate::id::Id;

/// What every stored object is sealed with, and how its key is derived: for descriptions.
pub const CIPHER: &str = "AES-256-GCM";
pub const OBJECT_KEY_DERIVATION: &str = "HKDF-SHA256(master key, random 256-bit salt per object)";
pub const BLOB_ID_HASH: &str = "keyed BLAKE3-256";

pub const KEY_LEN: usize = 32;
pub const SALT_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
/// Version byte, salt, tag: what sealing adds to a standalone object.
pub const OBJECT_OVERHEAD: usize = 1 + SALT_LEN + TAG_LEN;
const OBJECT_VERSION: u8 = 1;

/// Nonce domains inside one pack key: blobs count up from zero, the directory sits apart.
const DOMAIN_BLOB: u32 = 0;
const DOMAIN_DIRECTORY: u32 = 1;

pub fn fill_random(buf: &mut [u8]) {
    // The OS generator failing is unrecoverable and must never silently yield weak keys.
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill_random(&mut out);
    out
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

/// HKDF-SHA256 with the given salt and context string.
pub fn derive_key(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; KEY_LEN] {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let mut out = [0u8; KEY_LEN];
    prk.expand(&[info], Len32)
        .and_then(|okm| okm.fill(&mut out))
        .expect("HKDF output length is fixed and valid");
    out
}

/// The repository's master secret. Never stored except wrapped inside key slots.
#[derive(Clone)]
pub struct MasterKey {
    secret: [u8; KEY_LEN],
    chunk_id_key: [u8; KEY_LEN],
}

impl MasterKey {
    pub fn generate() -> Self {
        Self::from_secret(random_array())
    }

    pub fn from_secret(secret: [u8; KEY_LEN]) -> Self {
        let chunk_id_key = derive_key(&secret, b"", b"bulwark v1 blob id");
        MasterKey {
            secret,
            chunk_id_key,
        }
    }

    pub fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }

    /// The id of a blob: keyed BLAKE3, so stored ids reveal nothing about known plaintexts.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.chunk_id_key, plaintext).as_bytes())
    }

    pub fn object_cipher(&self, salt: &[u8; SALT_LEN]) -> Cipher {
        Cipher::new(&derive_key(&self.secret, salt, b"bulwark v1 object key"))
    }

    /// Seal a standalone object: `version || salt || ciphertext || tag`.
    pub fn seal_object(&self, plaintext: &[u8]) -> Vec<u8> {
        let salt: [u8; SALT_LEN] = random_array();
        let mut out = Vec::with_capacity(plaintext.len() + OBJECT_OVERHEAD);
        out.push(OBJECT_VERSION);
        out.extend_from_slice(&salt);
        out.extend_from_slice(plaintext);
        self.object_cipher(&salt)
            .seal_tail(&mut out, 1 + SALT_LEN, 0, b"");
        out
    }

    pub fn open_object(&self, what: &str, stored: &[u8]) -> Result<Vec<u8>> {
        if stored.len() < OBJECT_OVERHEAD {
            return Err(Error::corrupt(what, "shorter than its encryption envelope"));
        }
        if stored[0] != OBJECT_VERSION {
            return Err(Error::corrupt(
                what,
                format!("unknown object version {}", stored[0]),
            ));
        }
        let salt: [u8; SALT_LEN] = stored[1..1 + SALT_LEN].try_into().expect("length checked");
        let mut body = stored[1 + SALT_LEN..].to_vec();
        let len = self
            .object_cipher(&salt)
            .open_in_place(&mut body, 0, b"")
            .map_err(|_| Error::corrupt(what, "authentication failed (modified or truncated)"))?;
        body.truncate(len);
        Ok(body)
    }
}

/// One AES-256-GCM key, used for one object only (see the module note).
pub struct Cipher(LessSafeKey);

pub struct AuthError;

impl Cipher {
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Cipher(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, key).expect("key length is 32"),
        ))
    }

    fn nonce(domain: u32, counter: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&domain.to_be_bytes());
        n[4..].copy_from_slice(&counter.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    /// Encrypt `buf[start..]` in place and append the tag.
    pub fn seal_tail(&self, buf: &mut Vec<u8>, start: usize, counter: u64, aad: &[u8]) {
        self.seal_domain(buf, start, DOMAIN_BLOB, counter, aad)
    }

    pub fn seal_directory(&self, buf: &mut Vec<u8>, start: usize) {
        self.seal_domain(buf, start, DOMAIN_DIRECTORY, 0, b"pack directory")
    }

    fn seal_domain(&self, buf: &mut Vec<u8>, start: usize, domain: u32, counter: u64, aad: &[u8]) {
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Self::nonce(domain, counter),
                Aad::from(aad),
                &mut buf[start..],
            )
            .expect("plaintext within AES-GCM limits");
        buf.extend_from_slice(tag.as_ref());
    }

    /// Decrypt `ciphertext || tag` in place; returns the plaintext length.
    pub fn open_in_place(
        &self,
        buf: &mut [u8],
        counter: u64,
        aad: &[u8],
    ) -> Result<usize, AuthError> {
        self.open_domain(buf, DOMAIN_BLOB, counter, aad)
    }

    pub fn open_directory(&self, buf: &mut [u8]) -> Result<usize, AuthError> {
        self.open_domain(buf, DOMAIN_DIRECTORY, 0, b"pack directory")
    }

    fn open_domain(
        &self,
        buf: &mut [u8],
        domain: u32,
        counter: u64,
        aad: &[u8],
    ) -> Result<usize, AuthError> {
        self.0
            .open_in_place(Self::nonce(domain, counter), Aad::from(aad), buf)
            .map(|plain| plain.len())
            .map_err(|_| AuthError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_reject_tampering() {
        let key = MasterKey::generate();
        let sealed = key.seal_object(b"hello snapshot");
        assert_eq!(key.open_object("x", &sealed).unwrap(), b"hello snapshot");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x40;
            assert!(key.open_object("x", &bad).is_err(), "flip at {i} accepted");
        }
        assert!(key.open_object("x", &sealed[..sealed.len() - 1]).is_err());
        let other = MasterKey::generate();
        assert!(other.open_object("x", &sealed).is_err());
    }

    #[test]
    fn same_plaintext_seals_differently() {
        let key = MasterKey::generate();
        assert_ne!(key.seal_object(b"same"), key.seal_object(b"same"));
    }

    #[test]
    fn blob_ids_depend_on_the_key() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        assert_eq!(a.blob_id(b"data"), a.blob_id(b"data"));
        assert_ne!(a.blob_id(b"data"), b.blob_id(b"data"));
        assert_ne!(a.blob_id(b"data").0, *blake3::hash(b"data").as_bytes());
    }
}
