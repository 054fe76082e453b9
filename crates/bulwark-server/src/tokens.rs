//! Who may use the API and the dashboard: bearer tokens from a file that only its owner can read.
//! Each line is a token, or `NAME=TOKEN` to name its holder in the ledger (a bare token's holder
//! is `operator`); blank lines and `#` comments are ignored. A presented token is compared with
//! every known one in constant time, by their BLAKE3 hashes, so neither timing nor length tells
//! anything about a token.
//!
//! A browser signs in once with a token and then keeps a session cookie, not the token: the
//! session is a keyed BLAKE3 hash of the token's hash under a key this process drew at start, so
//! a stolen cookie never reveals a token that works elsewhere, and every session ends when the
//! daemon restarts.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use subtle::ConstantTimeEq;

pub struct Tokens {
    known: Vec<(String, [u8; 32])>,
    /// The key sessions of this process are derived under.
    session_key: [u8; 32],
}

impl Tokens {
    /// Load the tokens of `path`, creating it with one new random token when it does not exist.
    pub fn load_or_create(path: &Path) -> Result<(Tokens, bool), String> {
        let created = if path.exists() {
            false
        } else {
            let token = hex::encode(bulwark_repo::crypto::random_array::<32>());
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("cannot create the token file {}: {e}", path.display()))?;
            writeln!(f, "{token}")
                .and_then(|()| f.sync_all())
                .map_err(|e| format!("cannot write the token file {}: {e}", path.display()))?;
            true
        };
        Ok((Tokens::load(path)?, created))
    }

    pub fn load(path: &Path) -> Result<Tokens, String> {
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "the token file {} may be read by others: chmod 600 it",
                path.display()
            ));
        }
        let text = bulwark_app::credentials::read_secret_file(path, "token file")
            .map_err(|e| e.to_string())?;
        let known: Vec<(String, [u8; 32])> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| match l.split_once('=') {
                Some((name, token)) => (name.trim().to_string(), token.trim()),
                None => ("operator".to_string(), l),
            })
            .map(|(name, token)| (name, *blake3::hash(token.as_bytes()).as_bytes()))
            .collect();
        if known.is_empty() {
            return Err(format!("the token file {} holds no token", path.display()));
        }
        Ok(Tokens {
            known,
            session_key: bulwark_repo::crypto::random_array::<32>(),
        })
    }

    /// The holder of `presented`, if it is a known token.
    pub fn holder(&self, presented: &str) -> Option<&str> {
        let h = blake3::hash(presented.as_bytes());
        let mut found = None;
        for (name, known) in &self.known {
            if bool::from(known.ct_eq(h.as_bytes())) {
                found = Some(name.as_str());
            }
        }
        found
    }

    fn session_of(&self, token_hash: &[u8; 32]) -> [u8; 32] {
        *blake3::keyed_hash(&self.session_key, token_hash).as_bytes()
    }

    /// The session a browser keeps after signing in with `presented` (hex), if it is a known
    /// token.
    pub fn session(&self, presented: &str) -> Option<String> {
        self.holder(presented)?;
        Some(hex::encode(
            self.session_of(blake3::hash(presented.as_bytes()).as_bytes()),
        ))
    }

    /// The holder of a session cookie's value, if this process issued it.
    pub fn session_holder(&self, session: &str) -> Option<&str> {
        let mut presented = [0u8; 32];
        hex::decode_to_slice(session, &mut presented).ok()?;
        let mut found = None;
        for (name, known) in &self.known {
            if bool::from(self.session_of(known).ct_eq(&presented)) {
                found = Some(name.as_str());
            }
        }
        found
    }
}
