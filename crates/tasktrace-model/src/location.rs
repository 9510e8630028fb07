//! Source locations.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A position in a source file: `file:line[:column]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Location {
    /// Path of the source file, as recorded in the debuginfo.
    pub file: String,
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, when the debuginfo has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl Location {
    /// A location from its parts.
    pub fn new(file: impl Into<String>, line: u32, column: Option<u32>) -> Self {
        Location {
            file: file.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)?;
        if let Some(col) = self.column {
            write!(f, ":{col}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_col() {
        assert_eq!(
            Location::new("src/a.rs", 3, Some(9)).to_string(),
            "src/a.rs:3:9"
        );
        assert_eq!(Location::new("src/a.rs", 3, None).to_string(), "src/a.rs:3");
    }
}
