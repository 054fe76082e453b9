use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

/// `--exclude` and `--include` patterns: a pattern matches a path's full text or, when it has no `/`, its name.
#[derive(Default, Clone)]
pub struct Patterns {
    full: GlobSet,
    names: GlobSet,
    patterns: Vec<String>,
}

impl Patterns {
    pub fn new(patterns: &[String]) -> Result<Patterns, String> {
        let (mut full, mut names) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        for p in patterns {
            // Quoted with escapes: a pattern holding a newline must not break the error line
            // (nor may the reason, which can quote characters of the pattern).
            let glob = Glob::new(p).map_err(|e| {
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
            if p.contains('/') {
                full.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| format!("bad patterns: {e}"));
        Ok(Patterns {
            full: build(full)?,
            names: build(names)?,
            patterns: patterns.to_vec(),
        })
    }

    pub fn matches(&self, path: &Path) -> bool {
        if self.patterns.is_empty() {
            return false;
        }
        self.full.is_match(path) || path.file_name().is_some_and(|n| self.names.is_match(n))
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_full_paths_match() {
        let ex = Patterns::new(&["*.tmp".into(), "/srv/cache/**".into()]).unwrap();
        assert!(ex.matches(Path::new("/a/b/x.tmp")));
        assert!(!ex.matches(Path::new("/a/b/x.tmpl")));
        assert!(ex.matches(Path::new("/srv/cache/a/b")));
        assert!(!ex.matches(Path::new("/srv/data/a")));
        assert!(Patterns::new(&["[".into()]).is_err());
        let e = Patterns::new(&["\n{".into()]).err().unwrap();
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(
            e.starts_with("bad pattern \"\\n{\": unclosed alternate group"),
            "{e}"
        );
        let e = Patterns::new(&["[\u{b}-\n".into()]).err().unwrap();
        assert_eq!(e.lines().count(), 1, "{e}");
    }
}
