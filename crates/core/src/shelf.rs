//! The folders a user added to the desktop app, the IDSE projects found in them, and the check
//! that every path the app touches lies inside one of them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::workspace::{read_optional, write_file, Project, Workspace, WorkspaceError};

/// Why a folder cannot be added or a path used.
#[derive(Debug, thiserror::Error)]
pub enum ShelfError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("{0} does not exist or cannot be opened; check the path")]
    Missing(PathBuf),
    #[error("{0} holds no IDSE project (no .idse/projects folder in it, in its sub-folders, or around it); run `idse init NAME` there first")]
    NoProjects(PathBuf),
    #[error("{0} is outside the folders added to IDSE Desk; add its folder first")]
    NotGranted(PathBuf),
}

/// A folder on the shelf, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Folder {
    pub path: PathBuf,
    /// The folder vanished (moved, deleted, an unplugged disk); kept until the user removes it.
    pub missing: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ShelfFile {
    #[serde(default)]
    folders: Vec<PathBuf>,
}

/// The list of added folders, kept in one JSON file of the app's own.
#[derive(Debug)]
pub struct Shelf {
    file: PathBuf,
    folders: Vec<PathBuf>,
}

impl Shelf {
    /// Reads the list at `file`; an absent file is an empty shelf.
    pub fn load(file: &Path) -> Result<Self, WorkspaceError> {
        let folders = match read_optional(file)? {
            Some(text) => {
                serde_json::from_str::<ShelfFile>(&text)
                    .map_err(|source| WorkspaceError::Json {
                        path: file.to_owned(),
                        source,
                    })?
                    .folders
            }
            None => Vec::new(),
        };
        Ok(Self {
            file: file.to_owned(),
            folders,
        })
    }

    fn save(&self) -> Result<(), WorkspaceError> {
        let body = ShelfFile {
            folders: self.folders.clone(),
        };
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        write_file(&self.file, &text)
    }

    pub fn folders(&self) -> Vec<Folder> {
        self.folders
            .iter()
            .map(|p| Folder {
                path: p.clone(),
                missing: !p.is_dir(),
            })
            .collect()
    }

    /// Adds a folder holding IDSE projects; returns the canonical path and its projects.
    /// Adding a folder twice, or one already inside an added folder, changes nothing.
    pub fn add(&mut self, folder: &Path) -> Result<(PathBuf, Vec<Project>), ShelfError> {
        let canonical =
            std::fs::canonicalize(folder).map_err(|_| ShelfError::Missing(folder.to_owned()))?;
        if !canonical.is_dir() {
            return Err(ShelfError::Missing(folder.to_owned()));
        }
        let projects = projects_in(&canonical)?;
        if projects.is_empty() {
            return Err(ShelfError::NoProjects(canonical));
        }
        let covered = self.folders.iter().any(|f| canonical.starts_with(f));
        if !covered {
            // A parent added after its children replaces them.
            self.folders.retain(|f| !f.starts_with(&canonical));
            self.folders.push(canonical.clone());
            self.save()?;
        }
        Ok((canonical, projects))
    }

    /// Removes a folder from the list (never from disk); `false` when it was not there.
    pub fn remove(&mut self, folder: &Path) -> Result<bool, WorkspaceError> {
        let before = self.folders.len();
        self.folders.retain(|f| f != folder);
        if self.folders.len() == before {
            return Ok(false);
        }
        self.save()?;
        Ok(true)
    }

    /// `path` made canonical, when it lies inside an added folder. A path that does not exist
    /// yet is checked through its nearest existing parent.
    pub fn grant(&self, path: &Path) -> Result<PathBuf, ShelfError> {
        let denied = || ShelfError::NotGranted(path.to_owned());
        let mut existing = path;
        let mut rest = Vec::new();
        let canonical = loop {
            match std::fs::canonicalize(existing) {
                Ok(c) => break c,
                Err(_) => {
                    rest.push(existing.file_name().ok_or_else(denied)?.to_owned());
                    existing = existing.parent().ok_or_else(denied)?;
                }
            }
        };
        let mut full = canonical;
        for part in rest.iter().rev() {
            if part == ".." || part == "." {
                return Err(denied());
            }
            full.push(part);
        }
        if self.folders.iter().any(|f| full.starts_with(f)) {
            Ok(full)
        } else {
            Err(denied())
        }
    }

    /// Every project in every folder that is still there, with the folder it came from.
    pub fn projects(&self) -> Vec<(PathBuf, Result<Vec<Project>, ShelfError>)> {
        self.folders
            .iter()
            .filter(|f| f.is_dir())
            .map(|f| (f.clone(), projects_in(f)))
            .collect()
    }
}

/// The IDSE projects a folder holds: a repository root with `.idse/projects/*`, one project
/// folder (`…/.idse/projects/NAME`), a repository's `.idse` folder, or a folder of repositories
/// (one level down).
pub fn projects_in(folder: &Path) -> Result<Vec<Project>, ShelfError> {
    if !folder.is_dir() {
        return Err(ShelfError::Missing(folder.to_owned()));
    }
    if folder.join(".idse").join("projects").is_dir() {
        return Ok(Workspace::at(folder).projects()?);
    }
    if folder.file_name().is_some_and(|n| n == ".idse") && folder.join("projects").is_dir() {
        if let Some(root) = folder.parent() {
            return Ok(Workspace::at(root).projects()?);
        }
    }
    let parent = folder.parent();
    let grand = parent.and_then(Path::parent);
    if let (Some(parent), Some(grand)) = (parent, grand) {
        if parent.file_name().is_some_and(|n| n == "projects")
            && grand.file_name().is_some_and(|n| n == ".idse")
        {
            if let Some(root) = grand.parent() {
                let name = folder.file_name().map(|n| n.to_string_lossy().into_owned());
                return Ok(Workspace::at(root)
                    .projects()?
                    .into_iter()
                    .filter(|p| Some(&p.name) == name.as_ref())
                    .collect());
            }
        }
    }
    let mut found = Vec::new();
    let entries = std::fs::read_dir(folder).map_err(|_| ShelfError::Missing(folder.to_owned()))?;
    let mut children: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(".idse").join("projects").is_dir())
        .collect();
    children.sort();
    for child in children {
        found.extend(Workspace::at(child).projects()?);
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(root: &Path, names: &[&str]) {
        for n in names {
            std::fs::create_dir_all(root.join(".idse/projects").join(n)).unwrap();
        }
    }

    #[test]
    fn finds_projects_in_every_kind_of_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        repo(&a, &["one", "two"]);
        let b = tmp.path().join("b");
        repo(&b, &["three"]);
        let names = |v: Vec<Project>| v.into_iter().map(|p| p.name).collect::<Vec<_>>();
        assert_eq!(names(projects_in(&a).unwrap()), ["one", "two"]);
        assert_eq!(
            names(projects_in(&a.join(".idse/projects/two")).unwrap()),
            ["two"]
        );
        assert_eq!(
            names(projects_in(&a.join(".idse")).unwrap()),
            ["one", "two"]
        );
        assert_eq!(
            names(projects_in(tmp.path()).unwrap()),
            ["one", "two", "three"]
        );
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(projects_in(&empty).unwrap().is_empty());
    }

    #[test]
    fn shelf_survives_reload_and_reports_missing_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("desk/folders.json");
        let a = tmp.path().join("a");
        repo(&a, &["one"]);
        let mut shelf = Shelf::load(&file).unwrap();
        let (canonical, projects) = shelf.add(&a).unwrap();
        assert_eq!(projects.len(), 1);
        // Adding a project folder inside an added repo changes nothing.
        shelf.add(&a.join(".idse/projects/one")).unwrap();
        let shelf2 = Shelf::load(&file).unwrap();
        assert_eq!(
            shelf2.folders(),
            [Folder {
                path: canonical.clone(),
                missing: false
            }]
        );
        std::fs::remove_dir_all(&a).unwrap();
        let shelf3 = Shelf::load(&file).unwrap();
        assert!(shelf3.folders()[0].missing);
        let mut shelf3 = shelf3;
        assert!(shelf3.remove(&canonical).unwrap());
        assert!(Shelf::load(&file).unwrap().folders().is_empty());
    }

    #[test]
    fn refuses_folders_without_projects_and_paths_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("folders.json");
        let mut shelf = Shelf::load(&file).unwrap();
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = shelf.add(&empty).unwrap_err();
        assert!(matches!(err, ShelfError::NoProjects(_)), "{err}");
        assert!(err.to_string().contains("empty"));
        assert!(matches!(
            shelf.add(&tmp.path().join("nope")).unwrap_err(),
            ShelfError::Missing(_)
        ));
        let a = tmp.path().join("a");
        repo(&a, &["one"]);
        shelf.add(&a).unwrap();
        let inside = shelf
            .grant(&a.join(".idse/projects/one/new/file.md"))
            .unwrap();
        assert!(inside.ends_with("new/file.md"));
        let err = shelf.grant(&empty).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        assert!(shelf.grant(&a.join("x/../../empty")).is_err());
        assert!(shelf.grant(&a.join("missing/../../empty")).is_err());
    }
}
