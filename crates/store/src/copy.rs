//! Copying the Agency copy from one store to another (the embedded SQLite file to a team's
//! Postgres, say) with ids, history, sessions and tokens kept, so clients keep their links and
//! base hashes. Each project is written whole or not at all; a copy run again skips what an
//! earlier run copied and refuses, by name, what differs.

use uuid::Uuid;

use crate::{Clash, Imported, ProjectExport, Store, StoreError, TokenExport};

/// A project the destination already holds under the exported one's id or name.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub id: Uuid,
    pub name: String,
    pub revision: i64,
    pub last_session_id: Option<String>,
}

/// Where an exported project may go, given what the destination holds under its id or name:
/// `Ok(None)` to write it, `Ok(Some(AlreadyThere))` when an earlier copy wrote it as it is.
pub(crate) fn placement(
    export: &ProjectExport,
    found: &[Found],
) -> Result<Option<Imported>, StoreError> {
    let p = &export.project;
    if let Some(same) = found.iter().find(|f| f.id == p.id) {
        if same.revision == p.revision
            && same.name == p.name
            && same.last_session_id == p.last_session_id
        {
            return Ok(Some(Imported::AlreadyThere));
        }
        return Err(Clash::ProjectMoved {
            name: same.name.clone(),
            id: p.id,
            there: same.revision,
            from: p.revision,
        }
        .into());
    }
    if let Some(other) = found.first() {
        return Err(Clash::ProjectName {
            name: p.name.clone(),
            id: p.id,
            there: other.id,
        }
        .into());
    }
    Ok(None)
}

/// Whether a token may go where the destination holds one of that name with `there` as its
/// secret's hash.
pub(crate) fn token_placement(
    token: &TokenExport,
    there: Option<&str>,
) -> Result<Option<Imported>, StoreError> {
    match there {
        None => Ok(None),
        Some(hash) if hash == token.sha256 => Ok(Some(Imported::AlreadyThere)),
        Some(_) => Err(Clash::Token(token.token.name.clone()).into()),
    }
}

/// One step of a copy, as it is done.
#[derive(Debug)]
pub enum CopyStep<'a> {
    Project {
        name: &'a str,
        id: Uuid,
        revisions: usize,
        outcome: &'a Result<Imported, StoreError>,
    },
    Token {
        name: &'a str,
        outcome: &'a Result<Imported, StoreError>,
    },
}

/// What a copy did. `refused` holds what clashed with the destination; it was left out, and
/// everything else was copied.
#[derive(Debug, Default)]
pub struct CopyReport {
    pub projects_copied: usize,
    pub revisions_copied: usize,
    pub projects_there: usize,
    pub tokens_copied: usize,
    pub tokens_there: usize,
    pub refused: Vec<Clash>,
}

/// Copies every project and token of `from` into `to`. A clash is reported and the copy goes
/// on; any other error (a database that cannot be reached, say) stops it, with every project
/// copied so far whole, so that running it again finishes the job. The source is only read.
/// Projects pushed to the source while it runs may be left out: run it with the source's
/// gateway stopped, or run it again.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    on_step: &mut (dyn FnMut(CopyStep<'_>) + Send),
) -> Result<CopyReport, StoreError> {
    let mut report = CopyReport::default();
    for token in from.export_tokens().await? {
        let name = token.token.name.clone();
        let outcome = to.import_token(token).await;
        on_step(CopyStep::Token {
            name: &name,
            outcome: &outcome,
        });
        match outcome {
            Ok(Imported::Copied) => report.tokens_copied += 1,
            Ok(Imported::AlreadyThere) => report.tokens_there += 1,
            Err(StoreError::Clash(clash)) => report.refused.push(clash),
            Err(e) => return Err(e),
        }
    }
    // Oldest first, so a re-run meets them in the same order.
    let mut projects = from.projects().await?;
    projects.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    for project in projects {
        let export = match from.export_project(project.id).await {
            // Removed from the source since it was listed.
            Err(StoreError::ProjectNotFound(_)) => continue,
            other => other?,
        };
        let revisions = export.revisions.len();
        let outcome = to.import_project(export).await;
        on_step(CopyStep::Project {
            name: &project.name,
            id: project.id,
            revisions,
            outcome: &outcome,
        });
        match outcome {
            Ok(Imported::Copied) => {
                report.projects_copied += 1;
                report.revisions_copied += revisions;
            }
            Ok(Imported::AlreadyThere) => report.projects_there += 1,
            Err(StoreError::Clash(clash)) => report.refused.push(clash),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{ProjectRecord, TokenRecord};

    fn export(name: &str, revision: i64) -> ProjectExport {
        let at = Utc
            .timestamp_opt(1_790_000_000, 0)
            .single()
            .unwrap_or_default();
        ProjectExport {
            project: ProjectRecord {
                id: Uuid::from_u128(7),
                name: name.to_owned(),
                stack: None,
                framework: None,
                state_json: None,
                created_at: at,
                updated_at: at,
                last_synced: None,
                last_agent: None,
                last_author: None,
                last_session_id: Some("s1".to_owned()),
                revision,
            },
            constraints: None,
            sessions: Vec::new(),
            revisions: Vec::new(),
        }
    }

    fn found(id: u128, name: &str, revision: i64) -> Found {
        Found {
            id: Uuid::from_u128(id),
            name: name.to_owned(),
            revision,
            last_session_id: Some("s1".to_owned()),
        }
    }

    #[test]
    fn a_project_goes_where_nothing_is_and_is_skipped_where_it_already_is() {
        assert!(matches!(placement(&export("a", 3), &[]), Ok(None)));
        assert!(matches!(
            placement(&export("a", 3), &[found(7, "a", 3)]),
            Ok(Some(Imported::AlreadyThere))
        ));
    }

    #[test]
    fn a_project_that_moved_on_or_a_taken_name_is_refused_naming_both() {
        let moved = placement(&export("a", 3), &[found(7, "a", 5)]);
        assert!(
            matches!(
                &moved,
                Err(StoreError::Clash(Clash::ProjectMoved {
                    there: 5,
                    from: 3,
                    ..
                }))
            ),
            "{moved:?}"
        );
        let mut other_session = found(7, "a", 3);
        other_session.last_session_id = Some("s2".to_owned());
        assert!(placement(&export("a", 3), &[other_session]).is_err());
        let taken = placement(&export("a", 3), &[found(9, "a", 1)]);
        let Err(StoreError::Clash(clash)) = taken else {
            panic!("{taken:?}")
        };
        let text = clash.to_string();
        assert!(text.contains(&Uuid::from_u128(9).to_string()), "{text}");
        assert!(text.contains(&Uuid::from_u128(7).to_string()), "{text}");
        assert!(text.contains("`a`"), "{text}");
    }

    #[test]
    fn a_token_is_copied_once_and_never_over_another_secret() {
        let token = TokenExport {
            token: TokenRecord {
                name: "ci".to_owned(),
                read_only: false,
                created_at: Utc::now(),
                revoked_at: None,
            },
            sha256: "aa".to_owned(),
        };
        assert!(matches!(token_placement(&token, None), Ok(None)));
        assert!(matches!(
            token_placement(&token, Some("aa")),
            Ok(Some(Imported::AlreadyThere))
        ));
        assert!(matches!(
            token_placement(&token, Some("bb")),
            Err(StoreError::Clash(Clash::Token(name))) if name == "ci"
        ));
    }
}
