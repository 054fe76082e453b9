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

/// Widen the pipe a child streams its output through to 1 MiB (the default limit for any user)
/// from 64 KiB: the child and Bulwark each wake a sixteenth as often. Where the kernel says no,
/// the pipe stays as it was, slower but as correct.
pub fn widen_pipe(pipe: &impl std::os::fd::AsRawFd) {
    // SAFETY: fcntl on a descriptor the caller owns; F_SETPIPE_SZ takes an int and touches no memory.
    let _ = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
}
