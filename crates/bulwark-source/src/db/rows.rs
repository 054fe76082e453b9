//! Rows of PostgreSQL `COPY … TO STDOUT` text output, counted and hashed as they stream by: the
//! fingerprint of a dump costs no second pass over the database.
//!
//! A table's digest is its row count and the wrapping sum, modulo 2^128, of the XXH3-128 of every
//! row's text (the line without its newline). A sum does not depend on row order, so a restore
//! that stores rows elsewhere, or a collation that sorts them differently, gives the same digest;
//! and unlike an exclusive or it counts duplicates, which a table without a key may hold. Backup
//! and verification read rows as `COPY` text under the same session settings (UTF-8, ISO dates,
//! hex bytea, …), so equal rows give equal text.

use std::io::{self, Write};

use xxhash_rust::xxh3::xxh3_128;

use super::TableFingerprint;

/// How a checksum taken by [`RowDigest`] starts; older snapshots hold other kinds.
pub const CHECKSUM_PREFIX: &str = "xxh3-128-sum:";

/// Whether `checksum` was taken by [`RowDigest`] (and can be checked by one).
pub fn is_row_checksum(checksum: &str) -> bool {
    checksum.starts_with(CHECKSUM_PREFIX)
}

/// A table's row count and order-independent content digest; see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowDigest {
    rows: u64,
    sum: u128,
}

impl RowDigest {
    /// Count and hash one row: a line of `COPY` text without its newline.
    pub fn add(&mut self, row: &[u8]) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add(xxh3_128(row));
    }

    /// The fingerprint: the exact count, and the checksum if `checksum`.
    pub fn fingerprint(&self, checksum: bool) -> TableFingerprint {
        TableFingerprint {
            rows: self.rows,
            checksum: checksum.then(|| format!("{CHECKSUM_PREFIX}{:032x}", self.sum)),
        }
    }
}

/// A writer that passes `COPY` text through to `inner`, counting and hashing each row on the way.
pub struct RowWriter<W> {
    inner: W,
    digest: RowDigest,
    /// The start of a row that began in an earlier write.
    partial: Vec<u8>,
}

impl<W: Write> RowWriter<W> {
    pub fn new(inner: W) -> RowWriter<W> {
        RowWriter {
            inner,
            digest: RowDigest::default(),
            partial: Vec::new(),
        }
    }

    /// The rows' digest; an `InvalidData` error if the text ended inside a row (it was cut short).
    pub fn finish(self) -> io::Result<RowDigest> {
        if !self.partial.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the rows end inside a row ({} bytes after the last newline)",
                    self.partial.len()
                ),
            ));
        }
        Ok(self.digest)
    }
}

impl<W: Write> Write for RowWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.inner.write_all(data)?;
        let mut at = 0;
        for newline in memchr::memchr_iter(b'\n', data) {
            if self.partial.is_empty() {
                self.digest.add(&data[at..newline]);
            } else {
                self.partial.extend_from_slice(&data[at..newline]);
                self.digest.add(&self.partial);
                self.partial.clear();
            }
            at = newline + 1;
        }
        self.partial.extend_from_slice(&data[at..]);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(rows: &[&[u8]]) -> RowDigest {
        let mut d = RowDigest::default();
        rows.iter().for_each(|r| d.add(r));
        d
    }

    const TEXT: &[u8] = b"1\ta\\\\.\n2\t\\N\n\nx\\ny\tz\n";

    #[test]
    fn rows_are_found_however_the_text_is_cut() {
        let want = digest_of(&[b"1\ta\\\\.", b"2\t\\N", b"", b"x\\ny\tz"]);
        for step in 1..=TEXT.len() {
            let mut w = RowWriter::new(Vec::new());
            TEXT.chunks(step).for_each(|c| w.write_all(c).unwrap());
            assert_eq!(w.inner, TEXT, "every byte passes through, in order");
            assert_eq!(w.finish().unwrap(), want, "cut every {step} bytes");
        }
    }

    #[test]
    fn text_that_ends_inside_a_row_is_an_error() {
        let mut w = RowWriter::new(io::sink());
        w.write_all(b"1\t2\n3\t").unwrap();
        let err = w.finish().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("inside a row"), "{err}");
    }

    #[test]
    fn the_digest_ignores_order_but_counts_every_row_and_byte() {
        let a = digest_of(&[b"1\tx", b"2\ty", b"2\ty"]);
        assert_eq!(a, digest_of(&[b"2\ty", b"1\tx", b"2\ty"]));
        assert_ne!(a, digest_of(&[b"1\tx", b"2\ty"]), "a duplicate counts");
        assert_ne!(
            a.fingerprint(true).checksum,
            digest_of(&[b"1\tx", b"2\ty", b"3\ty"])
                .fingerprint(true)
                .checksum,
            "same count, different content"
        );
        let fp = a.fingerprint(true);
        assert_eq!(fp.rows, 3);
        assert!(is_row_checksum(fp.checksum.as_deref().unwrap()));
        assert_eq!(a.fingerprint(false).checksum, None);
    }
}
