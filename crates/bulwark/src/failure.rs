//! How a failed command reports itself: one line with the cause, a hint, and an exit code.

pub struct Failure {
    pub code: i32,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>, hint: Option<&str>) -> Failure {
        Failure {
            code,
            message: message.into(),
            hint: hint.map(str::to_string),
        }
    }

    pub fn usage(message: impl Into<String>, hint: &str) -> Failure {
        Failure::new(2, message, Some(hint))
    }

    pub fn print(&self, json: bool) {
        let line = match &self.hint {
            Some(h) => format!("error: {} (hint: {h})", self.message),
            None => format!("error: {}", self.message),
        };
        eprintln!("{line}");
        if json {
            let doc = serde_json::json!({ "error": self.message, "hint": self.hint, "exit_code": self.code });
            crate::output::print(&doc.to_string());
        }
    }
}

impl From<bulwark_repo::Error> for Failure {
    fn from(e: bulwark_repo::Error) -> Failure {
        Failure::new(e.exit_code(), e.to_string(), e.hint())
    }
}
