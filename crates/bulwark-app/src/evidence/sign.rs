//! The pack's signing key and signature: Ed25519, Bulwark's own key (not a repository's).
//!
//! - The private key is a PKCS#8 PEM file, owner-only (0600), refused when others can read it.
//!   The public key is a SubjectPublicKeyInfo PEM (`FILE.pub`), which `openssl pkey -pubin`
//!   reads.
//! - A key's fingerprint is `SHA256:` and the hex SHA-256 of its public key's DER encoding:
//!   `openssl pkey -pubin -in FILE.pub -outform DER | sha256sum`.
//! - `MANIFEST.sig` is text: a header line, the algorithm, the fingerprint, and the detached
//!   Ed25519 signature over the exact bytes of `MANIFEST`, base64 (standard alphabet, padded):
//!
//! ```text
//! bulwark evidence signature v1
//! algorithm: ed25519
//! key: SHA256:5d41...
//! signature: 3q2+7w...==
//! ```
//!
//! `sed -n 's/^signature: //p' MANIFEST.sig | base64 -d > sig.bin` gives the 64 raw bytes
//! `openssl pkeyutl -verify -rawin` takes.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use super::EvidenceError;

const HEADER: &str = "bulwark evidence signature v1";

/// `SHA256:<hex>` of the public key's DER (SubjectPublicKeyInfo).
pub fn fingerprint(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("an Ed25519 public key always encodes");
    format!("SHA256:{}", hex::encode(Sha256::digest(der.as_bytes())))
}

/// A new key pair: writes `path` (PKCS#8 PEM, created 0600, never over an existing file) and
/// `path.pub` (PEM). Returns the public key's file and fingerprint.
pub fn generate(path: &Path) -> Result<(PathBuf, String), EvidenceError> {
    let public_path = public_path_of(path);
    for p in [path, public_path.as_path()] {
        if p.exists() {
            return Err(EvidenceError::Exists(p.to_path_buf()));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| EvidenceError::Key {
        path: path.to_path_buf(),
        detail: format!("no randomness for a key: {e}"),
    })?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("an Ed25519 key always encodes");
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 public key always encodes");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| EvidenceError::Io { path: p, source }
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    f.write_all(private.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io(path))?;
    std::fs::write(&public_path, public.as_bytes()).map_err(io(&public_path))?;
    Ok((public_path, fingerprint(&key.verifying_key())))
}

/// Where the public half of the key at `path` is written.
pub fn public_path_of(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".pub");
    PathBuf::from(s)
}

/// Reads a private key, refusing one that others than its owner can read.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, EvidenceError> {
    let meta = std::fs::metadata(path).map_err(|source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(EvidenceError::KeyReadableByOthers {
            path: path.to_path_buf(),
            mode,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| EvidenceError::Key {
        path: path.to_path_buf(),
        detail: format!("not an Ed25519 private key in PKCS#8 PEM: {e}"),
    })
}

/// Reads a public key (SubjectPublicKeyInfo PEM).
pub fn load_public_key(path: &Path) -> Result<VerifyingKey, EvidenceError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvidenceError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    public_key_from_pem(&text).map_err(|detail| EvidenceError::Key {
        path: path.to_path_buf(),
        detail,
    })
}

pub fn public_key_from_pem(text: &str) -> Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(text)
        .map_err(|e| format!("not an Ed25519 public key in PEM: {e}"))
}

pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("an Ed25519 public key always encodes")
}

/// The text of `MANIFEST.sig` for `manifest`.
pub fn sign(key: &SigningKey, manifest: &[u8]) -> String {
    let signature = key.sign(manifest);
    format!(
        "{HEADER}\nalgorithm: ed25519\nkey: {}\nsignature: {}\n",
        fingerprint(&key.verifying_key()),
        base64::engine::general_purpose::STANDARD.encode(signature.to_bytes())
    )
}

/// A parsed `MANIFEST.sig`: the signer's fingerprint and the signature.
pub struct Detached {
    pub fingerprint: String,
    pub signature: Signature,
}

pub fn parse(text: &str) -> Result<Detached, String> {
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        return Err(format!("it does not start with '{HEADER}'"));
    }
    let mut field = |name: &str| {
        lines
            .next()
            .and_then(|l| l.strip_prefix(name))
            .map(str::trim)
            .ok_or_else(|| format!("the line '{name} ...' is missing"))
    };
    if field("algorithm:")? != "ed25519" {
        return Err("the algorithm is not ed25519".into());
    }
    let fingerprint = field("key:")?.to_string();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(field("signature:")?)
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    let bytes: [u8; 64] = raw
        .try_into()
        .map_err(|_| "the signature is not 64 bytes".to_string())?;
    if lines.next().is_some() || !text.ends_with('\n') || text.ends_with("\n\n") {
        return Err("it holds more than its four lines".into());
    }
    Ok(Detached {
        fingerprint,
        signature: Signature::from_bytes(&bytes),
    })
}

/// Whether `signature` is `key`'s over `manifest`.
pub fn verifies(key: &VerifyingKey, manifest: &[u8], signature: &Signature) -> bool {
    key.verify(manifest, signature).is_ok()
}
