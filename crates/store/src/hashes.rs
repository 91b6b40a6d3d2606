//! SHA-256 of pushed texts, remembered per project and artifact.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use idse_protocol::content_hash;
use uuid::Uuid;

use crate::PushInput;

/// Bytes of text remembered at most; past it, the memory starts over.
const REMEMBERED_BYTES: usize = 32 * 1024 * 1024;

/// The hash of the text last pushed for each project and artifact. The IDSE client sends all
/// seven texts with every push and usually one has changed; a text equal to the one remembered
/// has its hash, so it is compared byte for byte instead of hashed (SHA-256 of the seven texts
/// was a quarter of the gateway's CPU per push). A memo of a pure function: never stale, at most
/// missing.
#[derive(Debug, Default)]
pub(crate) struct TextHashes {
    memo: Mutex<Memo>,
}

#[derive(Debug, Default)]
struct Memo {
    /// (project, artifact key) → (text, its hash).
    texts: HashMap<(Uuid, String), (String, String)>,
    bytes: usize,
}

impl TextHashes {
    /// The hash of each of `input.artifacts`, in its order.
    pub(crate) fn of(&self, input: &PushInput) -> Vec<String> {
        let Some(project) = input.project_id else {
            return input.artifacts.values().map(|t| content_hash(t)).collect();
        };
        let known: Vec<Option<String>> = {
            let memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
            input
                .artifacts
                .iter()
                .map(|(key, text)| {
                    memo.texts
                        .get(&(project, key.clone()))
                        .filter(|(remembered, _)| remembered == text)
                        .map(|(_, hash)| hash.clone())
                })
                .collect()
        };
        // Hashing runs outside the lock, so pushes hash in parallel.
        let mut new = Vec::new();
        let hashes = input
            .artifacts
            .iter()
            .zip(known)
            .map(|((key, text), known)| {
                known.unwrap_or_else(|| {
                    let hash = content_hash(text);
                    new.push((key, text, hash.clone()));
                    hash
                })
            })
            .collect();
        if !new.is_empty() {
            let mut memo = self.memo.lock().unwrap_or_else(PoisonError::into_inner);
            for (key, text, hash) in new {
                let added = key.len() + text.len() + hash.len();
                if memo.bytes + added > REMEMBERED_BYTES {
                    memo.texts.clear();
                    memo.bytes = 0;
                }
                let old = memo
                    .texts
                    .insert((project, key.clone()), (text.clone(), hash));
                memo.bytes += added;
                if let Some((text, hash)) = old {
                    memo.bytes -= key.len() + text.len() + hash.len();
                }
            }
        }
        hashes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(project: Option<Uuid>, texts: &[(&str, &str)]) -> PushInput {
        PushInput {
            project_id: project,
            artifacts: texts
                .iter()
                .map(|(k, t)| ((*k).to_owned(), (*t).to_owned()))
                .collect(),
            ..PushInput::default()
        }
    }

    fn expected(input: &PushInput) -> Vec<String> {
        input.artifacts.values().map(|t| content_hash(t)).collect()
    }

    #[test]
    fn remembered_or_not_every_hash_is_the_texts_own() {
        let memo = TextHashes::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let rounds = [
            push(Some(a), &[("spec_md", "one"), ("plan_md", "two")]),
            push(Some(a), &[("spec_md", "one"), ("plan_md", "two")]),
            push(Some(a), &[("spec_md", "one!"), ("plan_md", "two")]),
            // Same key and text on another project, and a text moved to another key.
            push(Some(b), &[("spec_md", "one!"), ("plan_md", "one")]),
            push(Some(a), &[("spec_md", "two"), ("plan_md", "one!")]),
            push(None, &[("spec_md", "one")]),
            push(Some(a), &[("spec_md", "")]),
        ];
        for input in &rounds {
            assert_eq!(memo.of(input), expected(input));
        }
        let memo = memo.memo.lock().unwrap();
        assert_eq!(memo.texts.len(), 4);
        let held: usize = memo
            .texts
            .iter()
            .map(|((_, k), (t, h))| k.len() + t.len() + h.len())
            .sum();
        assert_eq!(memo.bytes, held, "the byte count follows what is held");
    }

    #[test]
    fn memory_starts_over_past_its_limit() {
        let memo = TextHashes::default();
        let big = "x".repeat(REMEMBERED_BYTES / 3);
        for i in 0..5 {
            let input = push(Some(Uuid::new_v4()), &[("spec_md", &format!("{big}{i}"))]);
            assert_eq!(memo.of(&input), expected(&input));
            let held = memo.memo.lock().unwrap().bytes;
            assert!(held <= REMEMBERED_BYTES, "round {i}: {held} bytes held");
        }
    }
}
