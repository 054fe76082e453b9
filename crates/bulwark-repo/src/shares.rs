//! Recovery shares: a key file's secret split k of n (Shamir's scheme over GF(256), by the
//! `vsss-rs` crate), so that no single person can open a repository, and any k of its holders
//! together can (policy §8: no service depends on one person).
//!
//! A split makes a new key-file slot in the repository and never writes its key file: only the
//! shares exist. Each share file says which repository and which split it belongs to, whose it
//! is, and how many are needed, and is signed with an Ed25519 key made for the split alone (its
//! private half is discarded at once, its public half is in every share). So before anything is
//! combined:
//! - a share whose content was changed fails its signature and is named;
//! - a share of another split or repository carries another split id or key and is named;
//! - fewer than k good shares is an error saying how many are missing, never a wrong key.
//!
//! After combining, the secret must also match the split's commitment (a keyed hash of it in
//! every share), which catches anything the signatures could not.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use vsss_rs::Gf256;

use crate::crypto::{KEY_LEN, random_array};
use crate::error::{Error, Result};
use crate::id::Id;

const FORMAT: &str = "bulwark-share-v1";
/// The most a share file may hold (it is a few hundred bytes).
pub const MAX_SHARE_FILE: usize = 16 * 1024;

/// What a share file holds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub format: String,
    pub repository: Id,
    /// The key slot the shares open.
    pub key_slot: String,
    /// Identifies the split: shares of different splits never combine.
    pub split: String,
    pub holder: String,
    pub index: u8,
    pub threshold: u8,
    pub shares: u8,
    pub created: DateTime<Utc>,
    /// BLAKE3 of the secret keyed by the split id: what the combined secret must hash to.
    pub commitment: String,
    /// The share itself (vsss-rs's byte form: the participant number, then the share bytes).
    pub value: String,
    /// The split's public key, and this share's signature over everything above.
    pub public_key: String,
    pub signature: String,
}

impl Share {
    /// The bytes the signature covers: every field but the signature, in a fixed order.
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.format,
            self.repository,
            self.key_slot,
            self.split,
            self.holder,
            self.index,
            self.threshold,
            self.shares,
            self.created.to_rfc3339(),
            self.commitment,
            self.value,
            self.public_key
        )
        .into_bytes()
    }

    /// Parse a share file; the error names what is wrong with it.
    pub fn parse(text: &str) -> Result<Share> {
        if text.len() > MAX_SHARE_FILE {
            return Err(Error::Invalid("too large to be a share file".into()));
        }
        let share: Share = serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("not a share file: {e}")))?;
        if share.format != FORMAT {
            return Err(Error::Invalid(format!(
                "not a share file of this version ({})",
                share.format
            )));
        }
        Ok(share)
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).expect("shares serialise") + "\n"
    }

    /// Whether the signature holds under the share's own public key.
    fn signed(&self) -> bool {
        let key = B64
            .decode(&self.public_key)
            .ok()
            .and_then(|k| <[u8; 32]>::try_from(k).ok())
            .and_then(|k| VerifyingKey::from_bytes(&k).ok());
        let sig = B64
            .decode(&self.signature)
            .ok()
            .and_then(|s| <[u8; 64]>::try_from(s).ok())
            .map(|s| Signature::from_bytes(&s));
        match (key, sig) {
            (Some(k), Some(s)) => k.verify(&self.signed_bytes(), &s).is_ok(),
            _ => false,
        }
    }
}

fn commitment(split: &str, secret: &[u8]) -> String {
    let key = *blake3::hash(format!("bulwark share commitment {split}").as_bytes()).as_bytes();
    blake3::keyed_hash(&key, secret).to_hex().to_string()
}

/// Split `secret` (a key file's) into one share per holder, any `threshold` of which restore it.
pub fn split(
    secret: &[u8; KEY_LEN],
    repository: Id,
    key_slot: &str,
    holders: &[String],
    threshold: u8,
) -> Result<Vec<Share>> {
    let n = holders.len();
    if threshold < 2 || n < threshold as usize || n > 255 {
        return Err(Error::Invalid(format!(
            "a split needs 2 ≤ threshold ≤ shares ≤ 255 (threshold {threshold}, {n} holders)"
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = holders.iter().find(|h| !seen.insert(h.as_str())) {
        return Err(Error::Invalid(format!(
            "holder '{dup}' is named twice: one share per person"
        )));
    }
    let values = Gf256::split_array(threshold as usize, n, secret, rand_core::OsRng)
        .map_err(|e| Error::Invalid(format!("cannot split the key: {e:?}")))?;
    let signing = SigningKey::from_bytes(&random_array::<32>());
    let public_key = B64.encode(signing.verifying_key().to_bytes());
    let split = hex::encode(random_array::<16>());
    let created = Utc::now();
    let commitment = commitment(&split, secret);
    Ok(values
        .into_iter()
        .zip(holders)
        .enumerate()
        .map(|(i, (value, holder))| {
            let mut share = Share {
                format: FORMAT.into(),
                repository,
                key_slot: key_slot.to_string(),
                split: split.clone(),
                holder: holder.clone(),
                index: (i + 1) as u8,
                threshold,
                shares: n as u8,
                created,
                commitment: commitment.clone(),
                value: B64.encode(value),
                public_key: public_key.clone(),
                signature: String::new(),
            };
            share.signature = B64.encode(signing.sign(&share.signed_bytes()).to_bytes());
            share
        })
        .collect())
}

/// A new key file's secret, for a slot that will exist only as shares.
pub fn new_secret() -> [u8; KEY_LEN] {
    random_array()
}

/// Combine shares into the key file's secret. Shares that are damaged or belong to another
/// split are named; fewer than the threshold of good ones is an error.
pub fn combine(shares: &[(String, Share)]) -> Result<[u8; KEY_LEN]> {
    let mut bad = Vec::new();
    let mut good: Vec<&(String, Share)> = Vec::new();
    for s in shares {
        if s.1.signed() {
            good.push(s);
        } else {
            bad.push(format!(
                "{} (holder {}): its signature does not match its content",
                s.0, s.1.holder
            ));
        }
    }
    // The split most of the good shares belong to; the others are foreign.
    let mut splits: BTreeMap<(&str, &str, Id), usize> = BTreeMap::new();
    for (_, s) in &good {
        *splits
            .entry((s.split.as_str(), s.public_key.as_str(), s.repository))
            .or_default() += 1;
    }
    let Some((&(split, key, repository), _)) = splits.iter().max_by_key(|(_, n)| **n) else {
        return Err(Error::Invalid(format!(
            "no usable share: {}",
            bad.join("; ")
        )));
    };
    let mut mine: BTreeMap<u8, &Share> = BTreeMap::new();
    for (name, s) in good {
        if s.split != split || s.public_key != key || s.repository != repository {
            bad.push(format!(
                "{name} (holder {}): it belongs to another split or repository",
                s.holder
            ));
        } else if mine.insert(s.index, s).is_some() {
            bad.push(format!(
                "{name} (holder {}): share {} is given twice",
                s.holder, s.index
            ));
        }
    }
    let threshold = mine.values().next().map_or(0, |s| s.threshold) as usize;
    if mine.len() < threshold {
        let holders: Vec<&str> = mine.values().map(|s| s.holder.as_str()).collect();
        let mut msg = format!(
            "{threshold} shares are needed and {} good ones were given ({})",
            mine.len(),
            holders.join(", ")
        );
        if !bad.is_empty() {
            msg += &format!("; refused: {}", bad.join("; "));
        }
        return Err(Error::Invalid(msg));
    }
    if !bad.is_empty() {
        tracing::warn!("shares left out: {}", bad.join("; "));
    }
    let values = mine
        .values()
        .take(threshold)
        .map(|s| B64.decode(&s.value))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| Error::Invalid("a share's value is not base64".into()))?;
    let secret = Gf256::combine_array(&values)
        .map_err(|e| Error::Invalid(format!("the shares do not combine: {e:?}")))?;
    let first = mine.values().next().expect("at least the threshold");
    let secret: [u8; KEY_LEN] = secret
        .try_into()
        .map_err(|_| Error::Invalid("the shares combine into a key of the wrong size".into()))?;
    if commitment(split, &secret) != first.commitment {
        return Err(Error::Invalid(
            "the shares combine into a key that is not the split's: a share is damaged".into(),
        ));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holders(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn named(shares: &[Share]) -> Vec<(String, Share)> {
        shares
            .iter()
            .map(|s| (format!("{}.share", s.holder), s.clone()))
            .collect()
    }

    #[test]
    fn any_threshold_of_shares_restores_the_key_and_fewer_never_do() {
        let secret: [u8; KEY_LEN] = random_array();
        let repo = Id::random();
        let shares = split(
            &secret,
            repo,
            "slot",
            &holders(&["a", "b", "c", "d", "e"]),
            3,
        )
        .unwrap();
        for pick in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let some: Vec<Share> = pick.iter().map(|&i| shares[i].clone()).collect();
            assert_eq!(combine(&named(&some)).unwrap(), secret);
        }
        let two = combine(&named(&shares[..2])).unwrap_err().to_string();
        assert!(two.contains("3 shares are needed and 2"), "{two}");
        // A share read back from its text is the same share.
        assert_eq!(Share::parse(&shares[0].to_text()).unwrap(), shares[0]);
    }

    #[test]
    fn tampered_and_foreign_shares_are_named() {
        let secret: [u8; KEY_LEN] = random_array();
        let repo = Id::random();
        let shares = split(&secret, repo, "slot", &holders(&["a", "b", "c", "d"]), 3).unwrap();
        let other = split(&secret, repo, "slot", &holders(&["x", "y", "z"]), 2).unwrap();
        let mut tampered = shares[1].clone();
        let mut value = B64.decode(&tampered.value).unwrap();
        value[5] ^= 1;
        tampered.value = B64.encode(value);
        let given = vec![
            shares[0].clone(),
            tampered,
            other[0].clone(),
            shares[2].clone(),
        ];
        let err = combine(&named(&given)).unwrap_err().to_string();
        assert!(
            err.contains("b.share") && err.contains("signature"),
            "{err}"
        );
        assert!(
            err.contains("x.share") && err.contains("another split"),
            "{err}"
        );
        // With a third good share the key comes back, the bad ones left out.
        let mut enough = given.clone();
        enough.push(shares[3].clone());
        assert_eq!(combine(&named(&enough)).unwrap(), secret);
        assert!(split(&secret, repo, "slot", &holders(&["a", "a", "b"]), 2).is_err());
        assert!(split(&secret, repo, "slot", &holders(&["a", "b"]), 3).is_err());
    }
}
