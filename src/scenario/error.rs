//! Errors in scenario and schedule files: they name the file and either the line and
//! column (syntax and types) or the field (meaning).

use std::fmt;

/// A scenario or schedule file that cannot be used. It displays as
/// `FILE:LINE:COL: MESSAGE`, `FILE: FIELD: MESSAGE` or `FILE: MESSAGE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScenarioError {
    /// The file, as the user named it.
    pub file: String,
    /// Where in the file.
    pub location: Location,
    /// What is wrong, on one line.
    pub message: String,
}

/// Where in a file a [`ScenarioError`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// 1-based line and column.
    Position {
        /// The line, from 1.
        line: usize,
        /// The column, from 1, in bytes.
        col: usize,
    },
    /// A dotted field path, e.g. `faults[2].heal_ms`.
    Field(String),
    /// The file as a whole (it cannot be read, no scenario has that name, or a TOML
    /// error came without a position).
    File,
}

impl ScenarioError {
    /// An error in the value of `field` (a dotted path, e.g. `faults[2].heal_ms`).
    pub fn field(file: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_string(),
            location: Location::Field(field.into()),
            message: message.into(),
        }
    }

    /// An error about the file as a whole.
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_string(),
            location: Location::File,
            message: message.into(),
        }
    }

    /// A TOML syntax or type error, located in `text`.
    pub fn toml(file: &str, text: &str, err: &toml::de::Error) -> Self {
        // One line per error: toml's own messages sometimes span two.
        let message = err.message().trim().replace('\n', ": ");
        let location = match err.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                Location::Position { line, col }
            }
            None => Location::File,
        };
        ScenarioError {
            file: file.to_string(),
            location,
            message,
        }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::Position { line, col } => {
                write!(f, "{}:{line}:{col}: {}", self.file, self.message)
            }
            Location::Field(field) => write!(f, "{}: {field}: {}", self.file, self.message),
            Location::File => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}
