//! Where passphrases and key files come from: never only the command line.

use std::io::Write;
use std::path::Path;

use bulwark_repo::Credential;

use crate::cli::Global;
use crate::failure::Failure;

const HINT: &str = "set BULWARK_PASSWORD_FILE or --password-file, BULWARK_PASSWORD, or --key-file";

/// The credential to open a repository with.
pub fn existing(global: &Global) -> Result<Credential, Failure> {
    if let Some(path) = &global.key_file {
        return read_key_file(path);
    }
    if let Some(path) = &global.password_file {
        return read_password_file(path).map(Credential::Passphrase);
    }
    if let Ok(p) = std::env::var("BULWARK_PASSWORD") {
        return non_empty(p).map(Credential::Passphrase);
    }
    prompt("enter passphrase for repository: ").map(Credential::Passphrase)
}

/// The credential for a new key slot (`init`, `key add`): asked twice when typed.
pub fn new(
    global: &Global,
    new_key_file: Option<&Path>,
    env_file: &str,
) -> Result<Credential, Failure> {
    if let Some(path) = new_key_file {
        let (cred, text) = Credential::new_key_file();
        write_key_file(path, &text)?;
        return Ok(cred);
    }
    if let Ok(file) = std::env::var(env_file) {
        return read_password_file(Path::new(&file)).map(Credential::Passphrase);
    }
    // For `init`, the usual sources name the new passphrase.
    if env_file == "BULWARK_PASSWORD_FILE" {
        if let Some(path) = &global.key_file {
            return read_key_file(path);
        }
        if let Some(path) = &global.password_file {
            return read_password_file(path).map(Credential::Passphrase);
        }
        if let Ok(p) = std::env::var("BULWARK_PASSWORD") {
            return non_empty(p).map(Credential::Passphrase);
        }
    }
    let first = prompt("enter new passphrase: ")?;
    let second = prompt("enter the new passphrase again: ")?;
    if first != second {
        return Err(Failure::new(
            1,
            "the passphrases do not match",
            Some("type the same passphrase twice"),
        ));
    }
    Ok(Credential::Passphrase(first))
}

fn non_empty(p: String) -> Result<String, Failure> {
    if p.is_empty() {
        Err(Failure::new(
            1,
            "an empty passphrase is not allowed",
            Some(HINT),
        ))
    } else {
        Ok(p)
    }
}

fn read_password_file(path: &Path) -> Result<String, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            1,
            format!("cannot read password file {}: {e}", path.display()),
            Some(HINT),
        )
    })?;
    non_empty(text.lines().next().unwrap_or_default().to_string())
}

fn read_key_file(path: &Path) -> Result<Credential, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            1,
            format!("cannot read key file {}: {e}", path.display()),
            Some(HINT),
        )
    })?;
    Credential::parse_key_file(&text)
        .map_err(|e| Failure::new(12, format!("{}: {e}", path.display()), Some(HINT)))
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

fn prompt(question: &str) -> Result<String, Failure> {
    let answer = rpassword::prompt_password(question).map_err(|_| {
        Failure::new(
            1,
            "no passphrase given and no terminal to ask on",
            Some(HINT),
        )
    })?;
    non_empty(answer)
}
