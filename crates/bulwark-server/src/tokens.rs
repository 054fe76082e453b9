//! Who may use the API and the dashboard: bearer tokens from a file that only its owner can read.
//! Each line is a token, or `NAME=TOKEN` to name its holder in the ledger (a bare token's holder
//! is `operator`); blank lines and `#` comments are ignored. A presented token is compared with
//! every known one in constant time, by their BLAKE3 hashes, so neither timing nor length tells
//! anything about a token.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use subtle::ConstantTimeEq;

pub struct Tokens {
    known: Vec<(String, [u8; 32])>,
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
        Ok(Tokens { known })
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
}
