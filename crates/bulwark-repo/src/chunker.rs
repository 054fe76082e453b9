//! Content-defined chunking (FastCDC 2020) with a secret seed, so cut points, and with them stored
//! sizes, cannot be predicted for known files by someone without the repository key; and fixed
//! blocks ([`fixed_blocks`]) for files whose content never shifts (a database's relation files).

use std::io::{self, Read};
use std::ops::Range;

use fastcdc::v2020::{FastCDC, Normalization};
use serde::{Deserialize, Serialize};

/// The chunking algorithm (its cut points are part of the format).
pub const ALGORITHM: &str = "FastCDC 2020 (fastcdc 5.0.0), seeded";

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    pub seed: u64,
}

impl ChunkerParams {
    /// Defaults for `init`: 1 MiB average chunks bound the index at about one entry per MiB stored
    /// while still deduplicating shifted content; a random seed per repository.
    pub fn with_random_seed() -> Self {
        ChunkerParams {
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
            seed: u64::from_le_bytes(crate::crypto::random_array()),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020 as f;
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let ok = (f::MINIMUM_MIN..=f::MINIMUM_MAX).contains(&min)
            && (f::AVERAGE_MIN..=f::AVERAGE_MAX).contains(&avg)
            && (f::MAXIMUM_MIN..=f::MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && max <= 64 * 1024 * 1024;
        if ok {
            Ok(())
        } else {
            Err(format!("invalid chunk sizes {self:?}"))
        }
    }

    /// How much of a stream is held in memory at once: enough for several maximal chunks.
    pub fn window(&self) -> usize {
        3 * self.max_size as usize
    }

    /// Read `reader` to its end, handing each window of data and the chunks cut in it to `each`.
    /// `buf` is scratch space reused across calls.
    pub fn chunk_stream<R: Read, E: From<io::Error>>(
        &self,
        reader: R,
        buf: &mut Vec<u8>,
        each: impl FnMut(&[u8], &[Range<usize>]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let max = self.max_size as usize;
        windows(reader, buf, self.window(), each, |data, eof, cuts| {
            let cdc = FastCDC::with_level_and_seed(
                data,
                self.min_size as usize,
                self.avg_size as usize,
                self.max_size as usize,
                Normalization::Level1,
                self.seed,
            );
            let mut pos = 0;
            // A cut is final only when a whole maximal chunk is in view, or the stream has ended.
            while pos < data.len() && (eof || data.len() - pos >= max) {
                let (_, end) = cdc.cut(pos, data.len() - pos);
                cuts.push(pos..end);
                pos = end;
            }
            pos
        })
    }
}

/// The block size of [`fixed_blocks`]: the default chunks' average, so the index holds as many
/// entries per byte stored either way.
pub const FIXED_BLOCK: usize = 1024 * 1024;

/// Read `reader` to its end in blocks of [`FIXED_BLOCK`] bytes from its start (the last one
/// shorter), handed to `each` several at a time like [`ChunkerParams::chunk_stream`]'s chunks.
///
/// For files changed in place, a database's relation files: their pages never shift, so a cut
/// point found from the content finds nothing a fixed one misses (a changed page changes its
/// block, a table that grows changes its last), and finding it costs about a fifth of a base
/// backup's CPU. Blob lengths stay as hidden as chunk lengths: they are in the packs' encrypted
/// directories only.
pub fn fixed_blocks<R: Read, E: From<io::Error>>(
    reader: R,
    buf: &mut Vec<u8>,
    each: impl FnMut(&[u8], &[Range<usize>]) -> Result<(), E>,
) -> Result<u64, E> {
    windows(reader, buf, 8 * FIXED_BLOCK, each, |data, eof, cuts| {
        let mut pos = 0;
        while pos < data.len() && (eof || data.len() - pos >= FIXED_BLOCK) {
            let end = (pos + FIXED_BLOCK).min(data.len());
            cuts.push(pos..end);
            pos = end;
        }
        pos
    })
}

/// The read loop both cutters share: fill a window of `window` bytes, let `cut` append the
/// final cuts it sees (it is told whether the stream has ended) and say how far they reach, hand
/// them to `each`, keep the rest for the next window.
fn windows<R: Read, E: From<io::Error>>(
    mut reader: R,
    buf: &mut Vec<u8>,
    window: usize,
    mut each: impl FnMut(&[u8], &[Range<usize>]) -> Result<(), E>,
    mut cut: impl FnMut(&[u8], bool, &mut Vec<Range<usize>>) -> usize,
) -> Result<u64, E> {
    if buf.len() < window {
        buf.resize(window, 0);
    }
    let (mut len, mut eof, mut total) = (0usize, false, 0u64);
    let mut cuts = Vec::new();
    loop {
        while len < window && !eof {
            match reader.read(&mut buf[len..window]) {
                Ok(0) => eof = true,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        if len == 0 {
            return Ok(total);
        }
        cuts.clear();
        let pos = cut(&buf[..len], eof, &mut cuts);
        each(&buf[..len], &cuts)?;
        total += pos as u64;
        buf.copy_within(pos..len, 0);
        len -= pos;
        if eof && len == 0 {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, mut state: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    /// A reader handing out at most `.1` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn cut_all(p: &ChunkerParams, data: &[u8], read_size: usize) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        let mut buf = Vec::new();
        p.chunk_stream::<_, io::Error>(Trickle(data, read_size), &mut buf, |w, cuts| {
            chunks.extend(cuts.iter().map(|r| w[r.clone()].to_vec()));
            Ok(())
        })
        .unwrap();
        chunks
    }

    #[test]
    fn fixed_blocks_start_at_the_file_start_and_a_changed_page_changes_one() {
        let blocks = |data: &[u8], read_size: usize| {
            let mut out: Vec<Vec<u8>> = Vec::new();
            let total = fixed_blocks::<_, io::Error>(
                Trickle(data, read_size),
                &mut Vec::new(),
                |w, cuts| {
                    out.extend(cuts.iter().map(|r| w[r.clone()].to_vec()));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(total, data.len() as u64);
            out
        };
        let data = pseudo_random(20 * FIXED_BLOCK + 12345, 3);
        let a = blocks(&data, 1 << 20);
        assert_eq!(
            a,
            blocks(&data, 8191),
            "the blocks do not depend on read sizes"
        );
        assert_eq!(a.concat(), data);
        assert_eq!(a.len(), 21);
        assert!(a[..20].iter().all(|b| b.len() == FIXED_BLOCK));
        assert_eq!(a[20].len(), 12345);
        let mut changed = data.clone();
        changed[13 * FIXED_BLOCK + 8192 * 3] ^= 1;
        let b = blocks(&changed, 1 << 20);
        let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
        assert_eq!(differ, vec![13]);
        assert!(blocks(&[], 4096).is_empty());
    }

    #[test]
    fn chunks_cover_the_stream_and_do_not_depend_on_read_sizes() {
        let p = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
            seed: 7,
        };
        let data = pseudo_random(1_000_003, 1);
        let a = cut_all(&p, &data, 1 << 20);
        let b = cut_all(&p, &data, 777);
        assert_eq!(a, b);
        assert_eq!(a.concat(), data);
        assert!(a.len() > 20);
        assert!(a.iter().all(|c| c.len() <= 65536));
    }

    #[test]
    fn the_seed_moves_cut_points_and_shifts_resynchronise() {
        let mut p = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
            seed: 1,
        };
        let data = pseudo_random(500_000, 9);
        let a = cut_all(&p, &data, 1 << 20);
        p.seed = 2;
        let b = cut_all(&p, &data, 1 << 20);
        assert_ne!(
            a.iter().map(Vec::len).collect::<Vec<_>>(),
            b.iter().map(Vec::len).collect::<Vec<_>>()
        );
        p.seed = 1;
        let mut shifted = b"inserted prefix".to_vec();
        shifted.extend_from_slice(&data);
        let c = cut_all(&p, &shifted, 1 << 20);
        let shared = c.iter().filter(|chunk| a.contains(chunk)).count();
        assert!(
            shared + 2 >= a.len(),
            "only {shared} of {} chunks survive a shift",
            a.len()
        );
    }
}
