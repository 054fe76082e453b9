//! Where passphrases and key files come from on the command line: `--key-file`,
//! `--password-file`/`BULWARK_PASSWORD_FILE`, `BULWARK_PASSWORD`, or a prompt on the terminal;
//! never only the command line. Files are read bounded (see `bulwark_app::credentials`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use bulwark_app::Credentials;
use bulwark_app::credentials::{read_key_file, read_password_file};
use bulwark_repo::Credential;

use crate::cli::Global;
use crate::failure::Failure;

/// What the command line gives for opening repositories, for the application layer.
pub fn for_workspace(g: &Global) -> Credentials {
    Credentials {
        key_file: g.key_file.clone(),
        password_file: g.password_file.clone(),
        password: std::env::var("BULWARK_PASSWORD").ok(),
        prompt: Some(Arc::new(|question: &str| {
            rpassword::prompt_password(question).ok()
        })),
    }
}

/// The credential to open the repository of `-r` with.
pub fn existing(g: &Global) -> Result<Credential, Failure> {
    Ok(for_workspace(g).default_credential("the repository")?)
}

/// The credential for a new key slot (`init`, `key add`, `key passwd`): a new key file, the
/// new passphrase's file, or a passphrase typed twice. For `init` (`for_init`), the usual
/// sources (`--key-file`, `--password-file`, `BULWARK_PASSWORD`) name the first key too.
pub fn new(
    g: &Global,
    new_key_file: Option<&Path>,
    new_password_file: Option<&Path>,
    for_init: bool,
) -> Result<Credential, Failure> {
    if let Some(path) = new_key_file {
        let (cred, text) = Credential::new_key_file();
        write_key_file(path, &text)?;
        return Ok(cred);
    }
    if let Some(file) = new_password_file {
        return Ok(read_password_file(file).map(Credential::Passphrase)?);
    }
    if for_init {
        if let Some(path) = &g.key_file {
            return Ok(read_key_file(path)?);
        }
        if let Some(path) = &g.password_file {
            return Ok(read_password_file(path).map(Credential::Passphrase)?);
        }
        if let Ok(p) = std::env::var("BULWARK_PASSWORD") {
            if p.is_empty() {
                return Err(Failure::new(
                    1,
                    "an empty passphrase is not allowed",
                    Some(
                        "set BULWARK_PASSWORD_FILE or --password-file, BULWARK_PASSWORD, or --key-file",
                    ),
                ));
            }
            return Ok(Credential::Passphrase(p));
        }
    }
    let ask = |q: &str| {
        rpassword::prompt_password(q).map_err(|_| {
            Failure::new(
                1,
                "no passphrase given and no terminal to ask on",
                Some("give --new-password-file (key add, key passwd) or --password-file (init), or use --new-key-file"),
            )
        })
    };
    let first = ask("enter new passphrase: ")?;
    let second = ask("enter the new passphrase again: ")?;
    if first != second {
        return Err(Failure::new(
            1,
            "the passphrases do not match",
            Some("type the same passphrase twice"),
        ));
    }
    if first.is_empty() {
        return Err(Failure::new(1, "an empty passphrase is not allowed", None));
    }
    Ok(Credential::Passphrase(first))
}

fn write_key_file(path: &Path, text: &str) -> Result<(), Failure> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            Failure::new(
                1,
                format!("cannot create key file {}: {e}", path.display()),
                Some("choose a path that does not exist yet"),
            )
        })?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| {
            Failure::new(
                1,
                format!("cannot write key file {}: {e}", path.display()),
                None,
            )
        })
}
