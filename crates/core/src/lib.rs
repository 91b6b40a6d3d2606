//! The client side of IDSE sync, shared by the `idse` CLI and the desktop app: the offline
//! workspace on disk, validation, the three-way merge, and push/pull that never lose an edit.

pub mod merge;

pub use merge::{merge3, ConflictStyle, MergeHunk, MergeOptions, MergeResult};
