//! Byte streams to back up as one file: standard input, or the output of a command.

use std::io::{self, Read};
use std::process::{Child, Stdio};

use crate::read_ahead::ReadAhead;

/// Reads a command's standard output; the command's failure is an error at the end of the stream,
/// so a dump that dies half-way can never be stored as if it were complete. The output is read
/// ahead ([`ReadAhead`]): the command goes on writing while the backup compresses.
pub struct CommandStream {
    child: Child,
    stdout: ReadAhead,
    program: String,
    finished: bool,
}

impl CommandStream {
    pub fn spawn(argv: &[String]) -> io::Result<CommandStream> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command given"))?;
        let mut child = crate::child::command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run '{program}': {e}")))?;
        let stdout = ReadAhead::spawn("command-output", child.stdout.take().expect("piped"))?;
        Ok(CommandStream {
            child,
            stdout,
            program: program.clone(),
            finished: false,
        })
    }
}

impl Read for CommandStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        let n = self.stdout.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.finished = true;
            let status = self.child.wait()?;
            if !status.success() {
                return Err(io::Error::other(format!(
                    "'{}' failed: {status}",
                    self.program
                )));
            }
        }
        Ok(n)
    }
}

impl Drop for CommandStream {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_fails_the_stream() {
        let mut ok =
            CommandStream::spawn(&["sh".into(), "-c".into(), "printf abc".into()]).unwrap();
        let mut out = String::new();
        ok.read_to_string(&mut out).unwrap();
        assert_eq!(out, "abc");
        let mut bad =
            CommandStream::spawn(&["sh".into(), "-c".into(), "printf abc; exit 3".into()]).unwrap();
        let err = bad.read_to_string(&mut String::new()).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
        assert!(CommandStream::spawn(&["/nonexistent/pg_dump".into()]).is_err());
    }
}
