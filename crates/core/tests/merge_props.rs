//! Properties of the merge that hold for any input (proptest: random texts, shrunk on failure).
#![allow(clippy::unwrap_used)]

use idse_core::merge::ChunkKind;
use idse_core::{merge3, MergeHunk, MergeOptions};
use proptest::prelude::*;

/// Texts of a few short lines from a small alphabet, so that sides share lines often; with or
/// without a final newline, sometimes CRLF, sometimes non-ASCII.
fn text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", "", "}", "é ü", "x y"]),
            0..12,
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(lines, final_eol, crlf)| {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut s = lines.join(eol);
            if final_eol && !lines.is_empty() {
                s.push_str(eol);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn one_sided_changes_win_cleanly(base in text(), changed in text()) {
        let opts = MergeOptions::default();
        let r = merge3(&base, &changed, &base, &opts);
        prop_assert_eq!(r.conflicts, 0);
        prop_assert_eq!(&r.text, &changed);
        let r = merge3(&base, &base, &changed, &opts);
        prop_assert_eq!(r.conflicts, 0);
        prop_assert_eq!(&r.text, &changed);
    }

    #[test]
    fn identical_sides_never_conflict(base in text(), both in text()) {
        let r = merge3(&base, &both, &both, &MergeOptions::default());
        prop_assert_eq!(r.conflicts, 0);
        prop_assert_eq!(r.text, both);
    }

    #[test]
    fn hunks_add_up_to_the_text_and_count_the_conflicts(base in text(), local in text(), remote in text()) {
        let r = merge3(&base, &local, &remote, &MergeOptions::default());
        let conflicts = r.hunks.iter().filter(|h| matches!(h, MergeHunk::Conflict { .. })).count();
        prop_assert_eq!(conflicts, r.conflicts);
        if r.conflicts == 0 {
            let joined: String = r.hunks.iter().map(|h| match h {
                MergeHunk::Resolved(t) => t.clone(),
                MergeHunk::Conflict { .. } => unreachable!(),
            }).collect();
            prop_assert_eq!(joined, r.text);
        } else {
            prop_assert!(r.text.contains("<<<<<<< local"));
        }
    }

    #[test]
    fn chunks_give_back_every_file_and_the_merge(base in text(), local in text(), remote in text()) {
        let r = merge3(&base, &local, &remote, &MergeOptions::default());
        let side = |f: fn(&idse_core::merge::MergeChunk) -> &str| r.chunks.iter().map(f).collect::<String>();
        prop_assert_eq!(side(|c| &c.base), base);
        prop_assert_eq!(side(|c| &c.local), local);
        prop_assert_eq!(side(|c| &c.remote), remote);
        for c in &r.chunks {
            if c.kind == ChunkKind::Same {
                prop_assert_eq!(&c.local, &c.base);
                prop_assert_eq!(&c.remote, &c.base);
            }
        }
        let conflicts = r.chunks.iter().filter(|c| c.kind == ChunkKind::Conflict).count();
        prop_assert_eq!(conflicts, r.conflicts);
        if r.conflicts == 0 {
            let merged: String = r.chunks.iter().map(|c| c.merged().unwrap_or_default()).collect();
            prop_assert_eq!(merged, r.text);
        }
    }

    #[test]
    fn clean_merges_do_not_depend_on_which_side_is_local(base in text(), local in text(), remote in text()) {
        let opts = MergeOptions::default();
        let ab = merge3(&base, &local, &remote, &opts);
        let ba = merge3(&base, &remote, &local, &opts);
        prop_assert_eq!(ab.conflicts == 0, ba.conflicts == 0);
        if ab.conflicts == 0 {
            prop_assert_eq!(ab.text, ba.text);
        }
    }
}
