//! `bulwark-wal-fetch --socket S %f %p`: the `restore_command` of a server that a `bulwark
//! restore` (or restore test) replays, answered by that restore's WAL service.
//!
//! The same client as `bulwark wal-fetch --socket`, in a program of its own: PostgreSQL's
//! startup process waits for every `restore_command` and replays nothing meanwhile, and starting
//! the whole `bulwark` program (a large binary whose relocations are applied at every start)
//! costs several milliseconds per segment that this one does not. The exit codes are
//! `bulwark wal-fetch`'s: 0 fetched, 1 not in the archive, 250 anything else (PostgreSQL aborts
//! recovery rather than end it early).

use std::path::PathBuf;
use std::process::ExitCode;

/// `bulwark wal-fetch`'s code for an archive that could not be read (`commands::wal_fetch`
/// in the `bulwark` program; this program shares no module with it, to stay small).
const ARCHIVE_ERROR: u8 = 250;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, socket, name, dest] = args.as_slice() else {
        return usage();
    };
    if flag != "--socket" {
        return usage();
    }
    match bulwark_ops::wal::fetch_over_socket(&PathBuf::from(socket), name, &PathBuf::from(dest)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: wal-fetch {name}: {e} (recovery stops here rather than end early)");
            ExitCode::from(ARCHIVE_ERROR)
        }
    }
}

/// A usage error is an archive error too, never "not archived": recovery must not end early.
fn usage() -> ExitCode {
    eprintln!("usage: bulwark-wal-fetch --socket SOCKET WAL_FILE DESTINATION");
    ExitCode::from(ARCHIVE_ERROR)
}
