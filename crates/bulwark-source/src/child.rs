//! Child processes. Every program Bulwark starts (`pg_dump`, `psql`, `initdb`, a dataset's backup
//! command, a notification command) starts from an environment without Bulwark's own settings and
//! secrets: no `BULWARK_*` variable (passphrases, key and token files, the repository) reaches it,
//! so a backed-up `env` or a hostile hook learns nothing it was not given on purpose.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::process::Command;

/// The prefix of every variable a child must not inherit.
pub const PRIVATE_PREFIX: &str = "BULWARK_";

/// A command for `program` that inherits the environment less Bulwark's variables.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    scrub(&mut c);
    c
}

/// Removes Bulwark's variables from what `c` will inherit.
pub fn scrub(c: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.as_bytes().starts_with(PRIVATE_PREFIX.as_bytes()) {
            c.env_remove(name);
        }
    }
    c
}
