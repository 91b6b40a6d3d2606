/// Why a project name or session id was refused; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("The {what} is empty; give it a name such as `my-project`.")]
    Empty { what: &'static str },
    #[error("The {what} is longer than {max} characters; choose a shorter one.")]
    TooLong { what: &'static str, max: usize },
    #[error("The {what} `{value}` contains `{bad}`; names become folder names, so use letters, digits, spaces, `-`, `_` or `.` instead.")]
    BadCharacter {
        what: &'static str,
        value: String,
        bad: String,
    },
    #[error("The {what} `{value}` starts or ends with a space or a dot; remove it.")]
    BadEdge { what: &'static str, value: String },
}

const MAX_NAME: usize = 200;

/// A project name becomes a folder under `.idse/projects/`, so it must be a single safe path
/// component on every operating system.
pub fn validate_project_name(name: &str) -> Result<(), NameError> {
    validate_component("project name", name)
}

/// A session id becomes a folder under `sessions/`, with the same rules as a project name.
pub fn validate_session_id(id: &str) -> Result<(), NameError> {
    validate_component("session id", id)
}

fn validate_component(what: &'static str, value: &str) -> Result<(), NameError> {
    if value.trim().is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.chars().count() > MAX_NAME {
        return Err(NameError::TooLong {
            what,
            max: MAX_NAME,
        });
    }
    if value.contains("..") {
        return Err(NameError::BadCharacter {
            what,
            value: value.to_owned(),
            bad: "..".to_owned(),
        });
    }
    if let Some(bad) = value.chars().find(|c| {
        matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') || c.is_control()
    }) {
        return Err(NameError::BadCharacter {
            what,
            value: value.to_owned(),
            bad: bad.escape_default().to_string(),
        });
    }
    if value.starts_with([' ', '.']) || value.ends_with([' ', '.']) {
        return Err(NameError::BadEdge {
            what,
            value: value.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in [
            "idse-desk",
            "My Project",
            "proj_1.2",
            "__blueprint__",
            "session-1736534123",
        ] {
            assert_eq!(validate_project_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_paths_and_empties() {
        assert!(matches!(
            validate_project_name(""),
            Err(NameError::Empty { .. })
        ));
        assert!(matches!(
            validate_project_name("  "),
            Err(NameError::Empty { .. })
        ));
        for bad in ["a/b", "..", "a..b", "a\\b", "x\ny", "c:d"] {
            assert!(
                matches!(
                    validate_project_name(bad),
                    Err(NameError::BadCharacter { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            validate_project_name(".hidden"),
            Err(NameError::BadEdge { .. })
        ));
        assert!(matches!(
            validate_session_id(&"x".repeat(201)),
            Err(NameError::TooLong { .. })
        ));
    }
}
