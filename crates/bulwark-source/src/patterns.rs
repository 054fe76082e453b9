//! `--exclude`, `--iexclude` and `--include` patterns, matched as restic matches them: a pattern
//! that starts with `/` is anchored at the root; any other pattern matches a trailing part of a
//! path at any depth (`*.tmp` a name anywhere, `share/doc` both `/usr/share/doc` and
//! `/opt/share/doc`). `*` and `?` stay within one path component, `**` crosses any number, and
//! a directory that matches is left out with everything below it.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

#[derive(Default, Clone)]
pub struct Patterns {
    set: GlobSet,
    patterns: Vec<String>,
}

impl Patterns {
    pub fn new(patterns: &[String]) -> Result<Patterns, String> {
        Patterns::with_case_insensitive(patterns, &[])
    }

    /// `exact` patterns and `insensitive` ones that ignore case (`--iexclude`).
    pub fn with_case_insensitive(
        exact: &[String],
        insensitive: &[String],
    ) -> Result<Patterns, String> {
        let mut set = GlobSetBuilder::new();
        let tagged = exact
            .iter()
            .map(|p| (p, false))
            .chain(insensitive.iter().map(|p| (p, true)));
        for (p, fold) in tagged {
            let anchored = if p.starts_with('/') {
                p.clone()
            } else {
                format!("**/{p}")
            };
            let glob = GlobBuilder::new(anchored.trim_end_matches('/'))
                .literal_separator(true)
                .case_insensitive(fold)
                .build()
                .map_err(|e| {
                    // Quoted with escapes: a pattern holding a newline must not break the error
                    // line (nor may the reason, which can quote characters of the pattern).
                    let reason: String = e
                        .kind()
                        .to_string()
                        .chars()
                        .map(|c| {
                            if c.is_control() {
                                c.escape_default().to_string()
                            } else {
                                c.to_string()
                            }
                        })
                        .collect();
                    format!("bad pattern {p:?}: {reason}")
                })?;
            set.add(glob);
        }
        Ok(Patterns {
            set: set.build().map_err(|e| format!("bad patterns: {e}"))?,
            patterns: exact.iter().chain(insensitive).cloned().collect(),
        })
    }

    pub fn matches(&self, path: &Path) -> bool {
        !self.patterns.is_empty() && self.set.is_match(path)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sub_paths_and_anchored_paths_match_as_in_restic() {
        let ex = Patterns::new(&[
            "*.tmp".into(),
            "/srv/cache/**".into(),
            "share/doc".into(),
            "/etc/*.conf".into(),
        ])
        .unwrap();
        assert!(ex.matches(Path::new("/a/b/x.tmp")));
        assert!(!ex.matches(Path::new("/a/b/x.tmpl")));
        assert!(ex.matches(Path::new("/srv/cache/a/b")));
        assert!(!ex.matches(Path::new("/srv/data/a")));
        assert!(ex.matches(Path::new("/usr/share/doc")));
        assert!(ex.matches(Path::new("/opt/x/share/doc")));
        assert!(!ex.matches(Path::new("/usr/share/docs")));
        assert!(ex.matches(Path::new("/etc/a.conf")));
        assert!(
            !ex.matches(Path::new("/etc/sub/a.conf")),
            "* stays in one component"
        );
        assert!(
            !ex.matches(Path::new("/x/etc/a.conf")),
            "anchored at the root"
        );
        assert!(Patterns::new(&["[".into()]).is_err());
        let e = Patterns::new(&["\n{".into()]).err().unwrap();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with("bad pattern \"\\n{\": unclosed alternate group"),
            "{e}"
        );
        let e = Patterns::new(&["[\u{b}-\n".into()]).err().unwrap();
        assert_eq!(e.lines().count(), 1, "{e}");
        let folded = Patterns::with_case_insensitive(&[], &["*.JPG".into()]).unwrap();
        assert!(folded.matches(Path::new("/p/holiday.jpg")));
        assert!(
            !Patterns::new(&["*.JPG".into()])
                .unwrap()
                .matches(Path::new("/p/a.jpg"))
        );
    }
}
