//! `bulwark restore SNAPSHOT --to-bucket s3://BUCKET/PREFIX`: a snapshot (an s3 dataset's, or
//! any files) into a bucket, each file an object with the metadata recorded for it; `--verify`
//! reads every object back and compares it with the snapshot.

use bulwark_ops::bucket::{BucketRestoreOptions, PARALLEL_OBJECTS, restore_to_bucket};
use bulwark_ops::restore::Overwrite;
use bulwark_source::Patterns;

use super::restore::{Args, OverwriteArg};
use super::{emit, human_bytes, open, plural, progress};
use crate::CliResult;
use crate::cli::Global;
use crate::failure::Failure;

pub fn run(g: &Global, a: Args) -> CliResult<i32> {
    let patterns = |p: &[String]| {
        Patterns::new(p).map_err(|e| Failure::usage(e, "see --help for the pattern syntax"))
    };
    let opts = BucketRestoreOptions {
        target: a.to_bucket.clone().unwrap_or_default(),
        include: patterns(&a.include)?,
        exclude: patterns(&a.exclude)?,
        overwrite: match a.overwrite {
            OverwriteArg::Always => Overwrite::Always,
            OverwriteArg::IfChanged => Overwrite::IfChanged,
            OverwriteArg::Never => Overwrite::Never,
        },
        filter: a.filter.filter(),
        dataset: a.db.dataset.clone(),
        verify: a.verify,
        parallel: PARALLEL_OBJECTS,
    };
    if !opts.target.starts_with("s3://") {
        return Err(Failure::usage(
            "--to-bucket takes an s3://BUCKET/PREFIX URL",
            "to restore into a directory, use --target",
        ));
    }
    let repo = open(g)?;
    let report = restore_to_bucket(&repo, &a.snapshot, &opts, progress(g))?;
    for e in &report.errors {
        eprintln!("error: {e}");
    }
    emit(g, &report, || {
        let mut t = format!(
            "restored {} ({}) to {}",
            plural(report.objects as usize, "object", "objects"),
            human_bytes(report.bytes),
            report.target
        );
        if report.skipped > 0 {
            t += &format!(
                "\nkept {} already there (--overwrite)",
                plural(report.skipped as usize, "object", "objects")
            );
        }
        if a.verify && report.verified {
            t += &format!(
                "\nverified {} objects: content and metadata match the snapshot",
                report.objects_verified
            );
        }
        t
    });
    if !report.errors.is_empty() {
        return Err(Failure::new(
            1,
            format!(
                "{} were not restored intact",
                plural(report.errors.len(), "object", "objects")
            ),
            Some("check the target bucket's permissions, then `bulwark check --read-data`"),
        ));
    }
    Ok(0)
}
