//! Copying the Agency copy from one store to another (the embedded SQLite file to a team's
//! Postgres, say) with ids, history, sessions and tokens kept, so clients keep their links and
//! base hashes. Each project is written whole or not at all; a copy run again skips what an
//! earlier run copied and refuses, by name, what differs. A project whose name is taken in the
//! destination can be copied under another name ([`Renames`]).

use std::collections::{BTreeMap, HashMap};

use idse_protocol::{validate_project_name, NameError};
use uuid::Uuid;

use crate::{Clash, Imported, ProjectExport, ProjectRecord, Store, StoreError, TokenExport};

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
        // The name may differ: copied earlier under another (`--rename`), or renamed there.
        if same.revision == p.revision && same.last_session_id == p.last_session_id {
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

/// New names in the destination for projects of the source, each named by its name or id in
/// the source: for a project whose name another project holds in the destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renames(BTreeMap<String, String>);

/// Why renames cannot be used; nothing is copied then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenameError {
    #[error("`{0}` is not a rename; write it as OLD=NEW, with OLD the project's name or id in the source, e.g. alpha=alpha-old")]
    Shape(String),
    #[error("`{old}` cannot be renamed to `{new}`: {reason}")]
    BadName {
        old: String,
        new: String,
        reason: NameError,
    },
    #[error("`{0}` is renamed twice; give each project one new name")]
    Twice(String),
    #[error("the source has no project named `{0}` (nor with that id), so nothing was copied; check the name (GET /sync/projects on the source's gateway lists them)")]
    NotInSource(String),
    #[error("the source has {} projects named `{name}` ({}), so nothing was copied; rename one by its id instead, e.g. {}=NEW", .ids.len(), ids_list(.ids), .ids[0])]
    Ambiguous { name: String, ids: Vec<Uuid> },
    #[error("two projects of the source would both be named `{0}` in the destination, so nothing was copied; choose another new name")]
    SameName(String),
}

fn ids_list(ids: &[Uuid]) -> String {
    ids.iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Renames {
    /// Reads `OLD=NEW` pairs (OLD a project's name or id in the source); each new name must be
    /// a project name a client can pull, and each project is renamed once.
    pub fn parse<S: AsRef<str>>(pairs: &[S]) -> Result<Self, RenameError> {
        let mut renames = BTreeMap::new();
        for pair in pairs {
            let pair = pair.as_ref();
            let Some((old, new)) = pair.split_once('=') else {
                return Err(RenameError::Shape(pair.to_owned()));
            };
            if old.is_empty() {
                return Err(RenameError::Shape(pair.to_owned()));
            }
            validate_project_name(new).map_err(|reason| RenameError::BadName {
                old: old.to_owned(),
                new: new.to_owned(),
                reason,
            })?;
            if renames.insert(old.to_owned(), new.to_owned()).is_some() {
                return Err(RenameError::Twice(old.to_owned()));
            }
        }
        Ok(Self(renames))
    }

    /// The destination name of each project of the source that is renamed, by id; refuses
    /// renames that name no project, or a name several projects share, or that would give two
    /// projects of the source one name.
    fn resolve(&self, projects: &[ProjectRecord]) -> Result<HashMap<Uuid, String>, RenameError> {
        let mut by_id = HashMap::new();
        for (old, new) in &self.0 {
            let as_id = Uuid::parse_str(old).ok();
            let by_id_match = projects.iter().find(|p| Some(p.id) == as_id);
            let named: Vec<Uuid> = projects
                .iter()
                .filter(|p| p.name == *old)
                .map(|p| p.id)
                .collect();
            let id = match (by_id_match, named.as_slice()) {
                (Some(p), _) => p.id,
                (None, [id]) => *id,
                (None, []) => return Err(RenameError::NotInSource(old.clone())),
                (None, _) => {
                    return Err(RenameError::Ambiguous {
                        name: old.clone(),
                        ids: named,
                    })
                }
            };
            if by_id.insert(id, new.clone()).is_some() {
                // The same project named once by its name and once by its id.
                return Err(RenameError::Twice(old.clone()));
            }
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for p in projects {
            let name = by_id.get(&p.id).map_or(p.name.as_str(), String::as_str);
            *names.entry(name).or_default() += 1;
        }
        for new in by_id.values() {
            if names.get(new.as_str()).copied().unwrap_or(0) > 1 {
                return Err(RenameError::SameName(new.clone()));
            }
        }
        Ok(by_id)
    }
}

/// Why a copy stopped.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Rename(#[from] RenameError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One step of a copy, as it is done.
#[derive(Debug)]
pub enum CopyStep<'a> {
    Project {
        name: &'a str,
        /// The name it has in the destination, when it was renamed.
        renamed: Option<&'a str>,
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

/// Copies every project and token of `from` into `to`, the projects `renames` names under
/// their new names. A clash is reported and the copy goes on; any other error (a database that
/// cannot be reached, say) stops it, with every project copied so far whole, so that running
/// it again finishes the job. Renames that cannot be used stop it before anything is written.
/// The source is only read. Projects pushed to the source while it runs may be left out: run
/// it with the source's gateway stopped, or run it again.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    renames: &Renames,
    on_step: &mut (dyn FnMut(CopyStep<'_>) + Send),
) -> Result<CopyReport, CopyError> {
    let mut report = CopyReport::default();
    // Oldest first, so a re-run meets them in the same order.
    let mut projects = from.projects().await?;
    projects.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    let new_names = renames.resolve(&projects)?;
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
            Err(e) => return Err(e.into()),
        }
    }
    for project in projects {
        let mut export = match from.export_project(project.id).await {
            // Removed from the source since it was listed.
            Err(StoreError::ProjectNotFound(_)) => continue,
            other => other?,
        };
        let renamed = new_names.get(&project.id);
        if let Some(new) = renamed {
            new.clone_into(&mut export.project.name);
        }
        let revisions = export.revisions.len();
        let outcome = to.import_project(export).await;
        on_step(CopyStep::Project {
            name: &project.name,
            renamed: renamed.map(String::as_str),
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
            Err(e) => return Err(e.into()),
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
    fn a_project_copied_earlier_under_another_name_is_already_there() {
        assert!(matches!(
            placement(&export("a", 3), &[found(7, "a-old", 3)]),
            Ok(Some(Imported::AlreadyThere))
        ));
        assert!(matches!(
            placement(&export("a", 3), &[found(7, "a-old", 4)]),
            Err(StoreError::Clash(Clash::ProjectMoved { .. }))
        ));
    }

    #[test]
    fn renames_are_pairs_to_a_valid_name_once_each() {
        let renames = Renames::parse(&["alpha=alpha-old", "beta=beta 2"]).unwrap();
        assert_eq!(renames.0["alpha"], "alpha-old");
        assert_eq!(renames.0["beta"], "beta 2");
        assert!(Renames::parse::<&str>(&[]).unwrap().0.is_empty());
        for shape in ["alpha", "=beta"] {
            assert_eq!(
                Renames::parse(&[shape]),
                Err(RenameError::Shape(shape.to_owned()))
            );
        }
        for bad in ["alpha=", "alpha=../x", "alpha=a/b", "alpha=x."] {
            let e = Renames::parse(&[bad]).unwrap_err();
            assert!(matches!(e, RenameError::BadName { .. }), "{bad}: {e:?}");
            assert!(
                e.to_string().starts_with("`alpha` cannot be renamed to"),
                "{e}"
            );
        }
        assert_eq!(
            Renames::parse(&["alpha=b", "alpha=c"]),
            Err(RenameError::Twice("alpha".to_owned()))
        );
    }

    fn record(id: u128, name: &str) -> ProjectRecord {
        let mut p = export(name, 1).project;
        p.id = Uuid::from_u128(id);
        p
    }

    #[test]
    fn a_rename_names_one_project_of_the_source_by_name_or_id() {
        let source = [record(1, "alpha"), record(2, "beta"), record(3, "beta")];
        let resolve = |pairs: &[&str]| Renames::parse(pairs).unwrap().resolve(&source);
        let by_name = resolve(&["alpha=alpha-old"]).unwrap();
        assert_eq!(
            by_name,
            HashMap::from([(Uuid::from_u128(1), "alpha-old".into())])
        );
        let id = Uuid::from_u128(3).to_string().to_uppercase();
        let by_id = resolve(&[&format!("{id}=beta-3")]).unwrap();
        assert_eq!(
            by_id,
            HashMap::from([(Uuid::from_u128(3), "beta-3".into())])
        );
        assert_eq!(
            resolve(&["gamma=g"]),
            Err(RenameError::NotInSource("gamma".into()))
        );
        let ambiguous = resolve(&["beta=b"]).unwrap_err();
        assert_eq!(
            ambiguous,
            RenameError::Ambiguous {
                name: "beta".into(),
                ids: vec![Uuid::from_u128(2), Uuid::from_u128(3)]
            }
        );
        assert!(ambiguous
            .to_string()
            .contains(&format!("{}=NEW", Uuid::from_u128(2))));
        // Onto a name another project of the source keeps, or two onto one name.
        assert_eq!(
            resolve(&["alpha=beta"]),
            Err(RenameError::SameName("beta".into()))
        );
        let id2 = Uuid::from_u128(2).to_string();
        assert_eq!(
            resolve(&["alpha=x", &format!("{id2}=x")]),
            Err(RenameError::SameName("x".into()))
        );
        // A swap is fine: no two end with one name.
        let swap = resolve(&["alpha=gamma", &format!("{id2}=alpha")]).unwrap();
        assert_eq!(swap.len(), 2);
        let id1 = Uuid::from_u128(1).to_string();
        // One project, once by name and once by id.
        assert!(matches!(
            resolve(&["alpha=x", &format!("{id1}=y")]),
            Err(RenameError::Twice(_))
        ));
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
