//! How a workspace opens its repositories: each repository's own `password_file` or `key_file`
//! from the policy file (relative to it), else the front-end's credential (a key file, a password
//! file, a passphrase it was given, or a prompt). Secret files are read bounded: a path such as
//! `/dev/zero` is an error, never a hang.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bulwark_repo::Credential;

use crate::error::{Error, Result};

/// The most a password or key file may hold.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Asks a person for a passphrase; `None` when nobody can be asked.
pub type Prompt = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The front-end's credential, used for repositories that name none of their own.
#[derive(Clone, Default)]
pub struct Credentials {
    pub key_file: Option<PathBuf>,
    pub password_file: Option<PathBuf>,
    pub password: Option<String>,
    pub prompt: Option<Prompt>,
}

impl Credentials {
    /// The credential for repository `r` of a policy file whose directory is `base`.
    pub fn for_repository(
        &self,
        r: &bulwark_policy::config::Repository,
        base: &Path,
    ) -> Result<Credential> {
        if let Some(f) = &r.key_file {
            return read_key_file(&resolve(base, f));
        }
        if let Some(f) = &r.password_file {
            return read_password_file(&resolve(base, f)).map(Credential::Passphrase);
        }
        self.default_credential(&format!("repository '{}'", r.name))
    }

    /// The front-end's own credential.
    pub fn default_credential(&self, what: &str) -> Result<Credential> {
        if let Some(f) = &self.key_file {
            return read_key_file(f);
        }
        if let Some(f) = &self.password_file {
            return read_password_file(f).map(Credential::Passphrase);
        }
        if let Some(p) = &self.password {
            return non_empty(p.clone(), "the passphrase").map(Credential::Passphrase);
        }
        match self
            .prompt
            .as_ref()
            .and_then(|ask| ask(&format!("enter passphrase for {what}: ")))
        {
            Some(p) => non_empty(p, "the passphrase").map(Credential::Passphrase),
            None => Err(Error::Credential {
                what: what.to_string(),
                detail: "no passphrase or key file given, and no terminal to ask on".into(),
            }),
        }
    }
}

/// A path from the policy file, relative to its directory.
pub fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// The whole of a small secret file; a larger one (or an endless one) is refused.
pub fn read_secret_file(path: &Path, what: &str) -> Result<String> {
    let fail = |detail: String| Error::Credential {
        what: format!("{what} {}", path.display()),
        detail,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_SECRET_FILE {
        return Err(fail(format!(
            "larger than {} KiB: not a password or key file",
            MAX_SECRET_FILE / 1024
        )));
    }
    Ok(text)
}

/// The first line of a password file.
pub fn read_password_file(path: &Path) -> Result<String> {
    let text = read_secret_file(path, "password file")?;
    non_empty(
        text.lines().next().unwrap_or_default().to_string(),
        &format!("password file {}", path.display()),
    )
}

pub fn read_key_file(path: &Path) -> Result<Credential> {
    let text = read_secret_file(path, "key file")?;
    Credential::parse_key_file(&text).map_err(|e| Error::BadKeyFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

fn non_empty(p: String, what: &str) -> Result<String> {
    if p.is_empty() {
        return Err(Error::Credential {
            what: what.to_string(),
            detail: "an empty passphrase is not allowed".into(),
        });
    }
    Ok(p)
}
