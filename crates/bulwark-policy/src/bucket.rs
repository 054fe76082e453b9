//! The keys of a `kind = "s3"` dataset: `url` (required, and only there) and `include` (only
//! there). The URL is the one repositories take, `s3://BUCKET/PREFIX?region=…&endpoint=…&
//! allow_http=true`; credentials never go in it (they come from the environment or the shared
//! credentials file, as for repositories), so a URL carrying user info or an unknown parameter
//! is refused here, and messages never quote it.

use toml::Spanned;

use crate::config::DatasetKind;

/// The parameters an `s3://` URL may carry (those `StoreBackend::s3` reads).
const PARAMETERS: [&str; 3] = ["region", "endpoint", "allow_http"];

/// Check dataset `name`'s S3 keys; on a problem, where it is (when known) and what it is.
pub(crate) fn check_s3_keys(
    name: &str,
    kind: DatasetKind,
    url: Option<&Spanned<String>>,
    include: &[String],
) -> Result<(), (Option<usize>, String)> {
    if kind != DatasetKind::S3 {
        if let Some(u) = url {
            return Err((
                Some(u.span().start),
                format!("datasets.{name}.url: only s3 datasets take `url`"),
            ));
        }
        if !include.is_empty() {
            return Err((
                None,
                format!(
                    "datasets.{name}.include: only s3 datasets take `include` (files datasets back up their `paths`)"
                ),
            ));
        }
        return Ok(());
    }
    let Some(u) = url else {
        return Err((
            None,
            format!("datasets.{name}: an s3 dataset needs `url = \"s3://BUCKET/PREFIX\"`"),
        ));
    };
    let at = Some(u.span().start);
    let fail = |why: &str| Err((at, format!("datasets.{name}.url: {why}")));
    let Some(rest) = u.get_ref().strip_prefix("s3://") else {
        return fail("must start with s3://");
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let bucket = path.split('/').next().unwrap_or_default();
    if bucket.is_empty() {
        return fail("names no bucket (s3://BUCKET/PREFIX)");
    }
    if bucket.contains('@') || bucket.contains(':') {
        return fail(
            "must not carry credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a shared credentials file) for bulwark instead",
        );
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        if !PARAMETERS.contains(&key) {
            return fail(&format!(
                "unknown parameter '{}': use region, endpoint, allow_http (credentials come from the environment)",
                key.chars().take(40).collect::<String>()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn parse(dataset: &str) -> Result<Config, String> {
        let text = format!(
            "[repositories.r]\nurl = \"/r\"\n[datasets.media]\nschedule = \"daily at 02:00\"\n{dataset}"
        );
        Config::parse("bulwark.toml", &text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_s3_dataset_takes_a_url_and_include_patterns() {
        let c = parse(
            "kind = \"s3\"\nurl = \"s3://media/eu?region=eu-west-1\"\ninclude = [\"/photos\"]\nexclude = [\"*.tmp\"]\n",
        )
        .unwrap();
        let d = &c.datasets["media"];
        assert_eq!(d.url.as_deref(), Some("s3://media/eu?region=eu-west-1"));
        assert_eq!(d.include, ["/photos"]);
        assert_eq!(d.exclude, ["*.tmp"]);
    }

    #[test]
    fn bad_s3_keys_are_one_clear_error_that_never_quotes_a_secret() {
        for (dataset, says) in [
            ("kind = \"s3\"\n", "needs `url"),
            (
                "kind = \"s3\"\nurl = \"https://x\"\n",
                "must start with s3://",
            ),
            ("kind = \"s3\"\nurl = \"s3://\"\n", "names no bucket"),
            (
                "kind = \"s3\"\nurl = \"s3://AKIA:hunter2@media/x\"\n",
                "must not carry credentials",
            ),
            (
                "kind = \"s3\"\nurl = \"s3://media?secret_access_key=hunter2\"\n",
                "unknown parameter 'secret_access_key'",
            ),
            (
                "kind = \"files\"\npaths = [\"/x\"]\nurl = \"s3://m\"\n",
                "only s3 datasets take `url`",
            ),
            (
                "kind = \"files\"\npaths = [\"/x\"]\ninclude = [\"a\"]\n",
                "only s3 datasets take `include`",
            ),
        ] {
            let e = parse(dataset)
                .err()
                .unwrap_or_else(|| panic!("{dataset} was taken"));
            assert!(e.contains(says), "{dataset}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
}
