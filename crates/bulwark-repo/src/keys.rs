//! Key slots: the master key wrapped once per passphrase or key file.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::crypto::{Cipher, KEY_LEN, MasterKey, SALT_LEN, derive_key, random_array};
use crate::error::{Error, Result};
use crate::id::Id;

/// Argon2id cost for new passphrase slots: 64 MiB and two passes (about 0.1-0.2 s here), above
/// OWASP's minimum, so one guess costs an attacker real memory.
pub const ARGON2_M_KIB: u32 = 64 * 1024;
pub const ARGON2_T: u32 = 2;
pub const ARGON2_P: u32 = 1;
/// The most a stored slot may ask for (16 times the memory, 8 times the passes of new slots):
/// anyone who can write the storage can replace a slot, and its parameters are spent before
/// the passphrase is known to be wrong.
const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;
const ARGON2_MAX_T: u32 = 16;
const ARGON2_MAX_P: u32 = 16;

const KEY_FILE_PREFIX: &str = "bulwark-key-v1:";

/// What a user presents to open the repository.
#[derive(Clone)]
pub enum Credential {
    Passphrase(String),
    KeyFile([u8; KEY_LEN]),
}

impl Credential {
    pub fn kind(&self) -> SlotKind {
        match self {
            Credential::Passphrase(_) => SlotKind::Passphrase,
            Credential::KeyFile(_) => SlotKind::KeyFile,
        }
    }

    /// Parse the contents of a key file written by `bulwark key add --new-key-file`.
    pub fn parse_key_file(text: &str) -> Result<Credential> {
        let encoded = text
            .trim()
            .strip_prefix(KEY_FILE_PREFIX)
            .ok_or_else(|| Error::Invalid("not a bulwark key file".into()))?;
        let raw = B64
            .decode(encoded)
            .ok()
            .and_then(|b| <[u8; KEY_LEN]>::try_from(b).ok())
            .ok_or_else(|| Error::Invalid("key file is damaged".into()))?;
        Ok(Credential::KeyFile(raw))
    }

    pub fn new_key_file() -> (Credential, String) {
        let raw: [u8; KEY_LEN] = random_array();
        (Credential::KeyFile(raw), Self::key_file_text(&raw))
    }

    /// The text of the key file holding `raw`.
    pub fn key_file_text(raw: &[u8; KEY_LEN]) -> String {
        format!("{KEY_FILE_PREFIX}{}\n", B64.encode(raw))
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum SlotKind {
    Passphrase,
    KeyFile,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum Kdf {
    Argon2id { m_kib: u32, t: u32, p: u32 },
    HkdfSha256,
}

/// One stored key slot (`keys/<id>`), plaintext by design: it holds only the wrapped key.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct KeySlot {
    pub version: u32,
    pub kind: SlotKind,
    pub created: DateTime<Utc>,
    pub host: String,
    pub user: String,
    pub kdf: Kdf,
    pub salt: String,
    pub wrapped: String,
}

impl KeySlot {
    pub fn wrap(master: &MasterKey, credential: &Credential, repo_id: &Id) -> Result<KeySlot> {
        let salt: [u8; SALT_LEN] = random_array();
        let kdf = match credential {
            Credential::Passphrase(_) => Kdf::Argon2id {
                m_kib: ARGON2_M_KIB,
                t: ARGON2_T,
                p: ARGON2_P,
            },
            Credential::KeyFile(_) => Kdf::HkdfSha256,
        };
        let wrapping = wrapping_key(&kdf, credential, &salt)?;
        let mut buf = master.secret().to_vec();
        Cipher::new(&wrapping).seal_tail(&mut buf, 0, 0, &repo_id.0);
        Ok(KeySlot {
            version: 1,
            kind: credential.kind(),
            created: Utc::now(),
            host: crate::host_name(),
            user: crate::user_name(),
            kdf,
            salt: B64.encode(salt),
            wrapped: B64.encode(buf),
        })
    }

    /// The master key, if `credential` opens this slot; `Ok(None)` when it does not.
    pub fn unwrap(&self, credential: &Credential, repo_id: &Id) -> Result<Option<MasterKey>> {
        if self.kind != credential.kind() {
            return Ok(None);
        }
        let damaged = |d: &str| Error::corrupt("key slot", d);
        let salt = B64.decode(&self.salt).map_err(|_| damaged("bad salt"))?;
        let mut wrapped = B64
            .decode(&self.wrapped)
            .map_err(|_| damaged("bad wrapped key"))?;
        let wrapping = wrapping_key(&self.kdf, credential, &salt)?;
        match Cipher::new(&wrapping).open_in_place(&mut wrapped, 0, &repo_id.0) {
            Ok(KEY_LEN) => Ok(Some(MasterKey::from_secret(
                wrapped[..KEY_LEN].try_into().expect("length checked"),
            ))),
            Ok(_) => Err(damaged("wrapped key has the wrong length")),
            Err(_) => Ok(None),
        }
    }
}

fn wrapping_key(kdf: &Kdf, credential: &Credential, salt: &[u8]) -> Result<[u8; KEY_LEN]> {
    match (kdf, credential) {
        (Kdf::Argon2id { m_kib, t, p }, Credential::Passphrase(pass)) => {
            // Refuse absurd stored parameters instead of letting a damaged slot exhaust memory.
            if *m_kib > ARGON2_MAX_M_KIB || *t > ARGON2_MAX_T || *p > ARGON2_MAX_P {
                return Err(Error::corrupt("key slot", "implausible Argon2 parameters"));
            }
            let params = argon2::Params::new(*m_kib, *t, *p, Some(KEY_LEN))
                .map_err(|e| Error::corrupt("key slot", format!("Argon2 parameters: {e}")))?;
            let argon =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let mut out = [0u8; KEY_LEN];
            argon
                .hash_password_into(pass.as_bytes(), salt, &mut out)
                .map_err(|e| Error::corrupt("key slot", format!("Argon2: {e}")))?;
            Ok(out)
        }
        (Kdf::HkdfSha256, Credential::KeyFile(raw)) => {
            Ok(derive_key(raw, salt, b"bulwark v1 key file slot"))
        }
        _ => Err(Error::corrupt(
            "key slot",
            "KDF does not match the slot kind",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_open_only_with_their_credential_and_repository() {
        let master = MasterKey::generate();
        let repo = Id::random();
        let pass = Credential::Passphrase("correct horse".into());
        let slot = KeySlot::wrap(&master, &pass, &repo).unwrap();
        let opened = slot.unwrap(&pass, &repo).unwrap().expect("opens");
        assert_eq!(opened.secret(), master.secret());
        let wrong = Credential::Passphrase("wrong horse".into());
        assert!(slot.unwrap(&wrong, &repo).unwrap().is_none());
        assert!(slot.unwrap(&pass, &Id::random()).unwrap().is_none());

        let (file_cred, text) = Credential::new_key_file();
        let file_slot = KeySlot::wrap(&master, &file_cred, &repo).unwrap();
        let parsed = Credential::parse_key_file(&text).unwrap();
        let opened = file_slot.unwrap(&parsed, &repo).unwrap().expect("opens");
        assert_eq!(opened.secret(), master.secret());
        assert!(file_slot.unwrap(&pass, &repo).unwrap().is_none());
    }
}
