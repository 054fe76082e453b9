//! CSV output for database exports: RFC 4180 records (comma-separated, CRLF line ends, fields in
//! double quotes with inner quotes doubled) written with `csv-core`, counting and hashing what
//! passes, so a `SHA256SUMS` line is ready when the file is done.
//!
//! NULL is told apart from the empty string by quoting: every value is quoted (`""` is the empty
//! string), and NULL is an empty, unquoted field (`a,,b`). This is what PostgreSQL's
//! `COPY … FROM … (FORMAT csv)` reads back as NULL. A record with one column holding NULL is an
//! empty line. The header row holds the column names, quoted likewise.

use std::io::{self, Write};

use csv_core::{QuoteStyle, Terminator, WriteResult, Writer, WriterBuilder};
use sha2::{Digest, Sha256};

/// A CSV file being written to `out`.
pub struct CsvWriter<W: Write> {
    out: W,
    csv: Writer,
    buf: Vec<u8>,
    hash: Sha256,
    bytes: u64,
    /// Records written, the header included.
    records: u64,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> CsvWriter<W> {
        CsvWriter {
            out,
            csv: WriterBuilder::new()
                .quote_style(QuoteStyle::Always)
                .terminator(Terminator::CRLF)
                .build(),
            buf: vec![0; 64 * 1024],
            hash: Sha256::new(),
            bytes: 0,
            records: 0,
        }
    }

    fn emit(&mut self, n: usize) -> io::Result<()> {
        let chunk = &self.buf[..n];
        self.hash.update(chunk);
        self.bytes += n as u64;
        self.out.write_all(chunk)
    }

    /// One record: `None` is NULL.
    pub fn record<T: AsRef<[u8]>>(&mut self, fields: &[Option<T>]) -> io::Result<()> {
        let mut written_any = false;
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                let (res, n) = self.csv.delimiter(&mut self.buf);
                debug_assert_eq!(res, WriteResult::InputEmpty);
                self.emit(n)?;
                written_any = true;
            }
            if let Some(value) = field {
                let mut input = value.as_ref();
                loop {
                    let (res, nin, nout) = self.csv.field(input, &mut self.buf);
                    input = &input[nin..];
                    self.emit(nout)?;
                    if res == WriteResult::InputEmpty {
                        break;
                    }
                }
                written_any = true;
            }
        }
        if written_any {
            let (res, n) = self.csv.terminator(&mut self.buf);
            debug_assert_eq!(res, WriteResult::InputEmpty);
            self.emit(n)?;
        } else {
            // csv-core would write `""` (an empty string): a lone NULL is an empty line.
            self.buf[..2].copy_from_slice(b"\r\n");
            self.emit(2)?;
        }
        self.records += 1;
        Ok(())
    }

    /// Flush and return the writer, the bytes written, their SHA-256 and the records (header
    /// included).
    pub fn finish(mut self) -> io::Result<(W, u64, String, u64)> {
        self.out.flush()?;
        Ok((
            self.out,
            self.bytes,
            hex::encode(self.hash.finalize()),
            self.records,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(rows: &[Vec<Option<&str>>]) -> String {
        let mut w = CsvWriter::new(Vec::new());
        for r in rows {
            w.record(r).unwrap();
        }
        let (out, bytes, sum, records) = w.finish().unwrap();
        assert_eq!(bytes, out.len() as u64);
        assert_eq!(sum, hex::encode(Sha256::digest(&out)));
        assert_eq!(records, rows.len() as u64);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn null_empty_quotes_and_newlines() {
        assert_eq!(
            csv(&[
                vec![Some("id"), Some("note")],
                vec![Some("1"), None],
                vec![Some("2"), Some("")],
                vec![None, Some("a \"b\", c\nd")],
            ]),
            "\"id\",\"note\"\r\n\"1\",\r\n\"2\",\"\"\r\n,\"a \"\"b\"\", c\nd\"\r\n"
        );
        assert_eq!(csv(&[vec![None], vec![Some("")]]), "\r\n\"\"\r\n");
    }

    #[test]
    fn long_fields_cross_the_buffer() {
        let long = "\"x".repeat(100_000);
        let out = csv(&[vec![Some(long.as_str())]]);
        let mut r = csv_parse(&out);
        assert_eq!(r.remove(0), vec![long]);
    }

    /// The csv crate's reader, as customers' tools read the file.
    fn csv_parse(text: &str) -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    }
}
