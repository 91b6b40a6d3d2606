//! Line-based three-way merge with diff3 semantics, built on `similar`'s Myers diff and shaped
//! to give the same results as `git merge-file`: the same hunk placement (changes slid the way
//! git slides them), adjacent edits from both sides conflict, identical edits do not, conflicts
//! are narrowed to the lines that really differ and ones separated by at most three lines (or
//! by lines without letters or digits) are joined, and markers follow the files' line endings.
//!
//! One deliberate difference: where two equally short diffs exist and they merge differently,
//! git takes the one its own Myers search happens to find; we try both tie-breaks and report a
//! conflict unless both merge cleanly. So we never merge cleanly where git conflicts, and in
//! about 0.2% of random cases (`tests/merge_vs_git.rs`) we conflict where git does not.
//! Rarer still (1 in 10,000 random cases seen, with seed 7), both tie-breaks agree with each
//! other but not with git's search, and a clean merge places a remote insertion among repeated
//! lines differently from git. Matching those too needs xdiff's own Myers split, not `similar`'s.

use rustc_hash::FxHashMap;

use similar::{capture_diff_slices, Algorithm, DiffOp};

/// How conflicts are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictStyle {
    /// `<<<<<<<` local `=======` remote `>>>>>>>`.
    #[default]
    Merge,
    /// As `Merge`, with the base between `|||||||` and `=======`.
    Diff3,
}

/// Labels and style of a merge.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    pub style: ConflictStyle,
    pub local_label: String,
    pub base_label: String,
    pub remote_label: String,
}

impl Default for MergeOptions {
    fn default() -> Self {
        Self {
            style: ConflictStyle::Merge,
            local_label: "local".into(),
            base_label: "base".into(),
            remote_label: "remote".into(),
        }
    }
}

/// A piece of a merge result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeHunk {
    /// Text both sides agree on, or that only one side changed.
    Resolved(String),
    /// Text the two sides changed differently.
    Conflict {
        local: String,
        base: String,
        remote: String,
    },
}

/// What happened to one stretch of the three files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkKind {
    /// No side changed these lines.
    Same,
    /// Only the local side changed them; the merge takes local.
    Local,
    /// Only the remote side changed them; the merge takes remote.
    Remote,
    /// Both sides made the same change.
    Both,
    /// The sides changed them differently.
    Conflict,
}

/// One stretch of the merge with the text each file holds there, so a view can show the three
/// side by side, aligned. The sides of all chunks, joined, give back each whole file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MergeChunk {
    pub kind: ChunkKind,
    pub base: String,
    pub local: String,
    pub remote: String,
}

impl MergeChunk {
    /// What the merge puts here; `None` for a conflict.
    pub fn merged(&self) -> Option<&str> {
        match self.kind {
            ChunkKind::Same | ChunkKind::Local | ChunkKind::Both => Some(&self.local),
            ChunkKind::Remote => Some(&self.remote),
            ChunkKind::Conflict => None,
        }
    }
}

/// The outcome of a three-way merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeResult {
    /// The merged text, with conflict markers where sides disagree.
    pub text: String,
    /// How many conflicts the text holds (what `git merge-file` exits with).
    pub conflicts: usize,
    /// The same result, piece by piece, for views that resolve conflicts one at a time.
    pub hunks: Vec<MergeHunk>,
    /// Every stretch of the three files with its kind, for a side-by-side view.
    pub chunks: Vec<MergeChunk>,
}

impl MergeResult {
    pub fn is_clean(&self) -> bool {
        self.conflicts == 0
    }
}

const MARKER: usize = 7;

/// A file as lines, each with its own terminator, and their interned ids.
struct File<'a> {
    lines: Vec<&'a str>,
    ids: Vec<u32>,
}

fn split(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

fn intern<'a>(texts: [&'a str; 3]) -> [File<'a>; 3] {
    let mut table: FxHashMap<&'a str, u32> = FxHashMap::default();
    texts.map(|t| {
        let lines = split(t);
        let ids = lines
            .iter()
            .map(|l| {
                let next = table.len() as u32;
                *table.entry(l).or_insert(next)
            })
            .collect();
        File { lines, ids }
    })
}

/// One difference: `chg1` lines at `i1` of the old file became `chg2` lines at `i2` of the new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Change {
    i1: usize,
    chg1: usize,
    i2: usize,
    chg2: usize,
}

/// A run of changed lines in one file during compaction.
#[derive(Debug, Clone, Copy)]
struct Group {
    start: usize,
    end: usize,
}

fn changed(rchg: &[bool], i: usize) -> bool {
    rchg.get(i).copied().unwrap_or(false)
}

fn group_first(rchg: &[bool]) -> Group {
    let mut end = 0;
    while changed(rchg, end) {
        end += 1;
    }
    Group { start: 0, end }
}

fn group_next(rchg: &[bool], g: &mut Group) -> bool {
    if g.end == rchg.len() {
        return false;
    }
    g.start = g.end + 1;
    g.end = g.start;
    while changed(rchg, g.end) {
        g.end += 1;
    }
    true
}

fn group_previous(rchg: &[bool], g: &mut Group) -> bool {
    if g.start == 0 {
        return false;
    }
    g.end = g.start - 1;
    g.start = g.end;
    while g.start > 0 && rchg[g.start - 1] {
        g.start -= 1;
    }
    true
}

fn slide_down(ids: &[u32], rchg: &mut [bool], g: &mut Group) -> bool {
    if g.end < ids.len() && ids[g.start] == ids[g.end] {
        rchg[g.start] = false;
        rchg[g.end] = true;
        g.start += 1;
        g.end += 1;
        while changed(rchg, g.end) {
            g.end += 1;
        }
        true
    } else {
        false
    }
}

fn slide_up(ids: &[u32], rchg: &mut [bool], g: &mut Group) -> bool {
    if g.start > 0 && ids[g.start - 1] == ids[g.end - 1] {
        g.start -= 1;
        g.end -= 1;
        rchg[g.start] = true;
        rchg[g.end] = false;
        while g.start > 0 && rchg[g.start - 1] {
            g.start -= 1;
        }
        true
    } else {
        false
    }
}

/// Slides each run of changes to a canonical place, as git does: down as far as it goes, unless
/// it can line up with a change in the other file. Runs that touch after sliding are joined.
fn compact(ids: &[u32], rchg: &mut [bool], other: &[bool]) {
    let mut g = group_first(rchg);
    let mut go = group_first(other);
    loop {
        if g.end != g.start {
            let mut earliest_end;
            let mut end_matching_other;
            loop {
                let size = g.end - g.start;
                end_matching_other = None;
                while slide_up(ids, rchg, &mut g) {
                    group_previous(other, &mut go);
                }
                earliest_end = g.end;
                if go.end > go.start {
                    end_matching_other = Some(g.end);
                }
                while slide_down(ids, rchg, &mut g) {
                    group_next(other, &mut go);
                    if go.end > go.start {
                        end_matching_other = Some(g.end);
                    }
                }
                if size == g.end - g.start {
                    break;
                }
            }
            if g.end != earliest_end && end_matching_other.is_some() {
                while go.end == go.start {
                    slide_up(ids, rchg, &mut g);
                    group_previous(other, &mut go);
                }
            }
        }
        if !group_next(rchg, &mut g) {
            break;
        }
        group_next(other, &mut go);
    }
}

/// `2^ceil(log4(n))`, git's cheap square root.
fn rough_sqrt(mut n: usize) -> usize {
    let mut i = 1;
    while n > 0 {
        i <<= 1;
        n >>= 2;
    }
    i
}

/// Whether a line with many matches sits inside a run of unmatched lines, where git leaves it
/// out of the diff search (it would only produce spurious matches there).
fn discard_multimatch(dis: &[u8], i: usize, start: usize, end: usize) -> bool {
    const WINDOW: usize = 100;
    let start = start.max(i.saturating_sub(WINDOW));
    let end = end.min(i + WINDOW);
    let (mut unmatched_before, mut multi_before) = (0, 1);
    let mut r = 1;
    while i >= start + r {
        match dis[i - r] {
            0 => unmatched_before += 1,
            2 => multi_before += 1,
            _ => break,
        }
        r += 1;
    }
    if unmatched_before == 0 {
        return false;
    }
    let (mut unmatched_after, mut multi_after) = (0, 1);
    let mut r = 1;
    while i + r <= end {
        match dis[i + r] {
            0 => unmatched_after += 1,
            2 => multi_after += 1,
            _ => break,
        }
        r += 1;
    }
    if unmatched_after == 0 {
        return false;
    }
    let unmatched = unmatched_before + unmatched_after;
    let multi = multi_before + multi_after;
    multi * 4 < multi + unmatched
}

/// The lines of `ids[start..=end]` the diff search looks at: those the other file has, less
/// frequent ones inside unmatched runs. The rest are changed from the start, as in git.
fn keep_for_search(ids: &[u32], other_counts: &[usize], start: usize, stop: usize) -> Vec<usize> {
    if start >= stop {
        return Vec::new();
    }
    let end = stop - 1;
    let limit = rough_sqrt(ids.len()).min(1024);
    let mut dis = vec![0u8; ids.len()];
    for i in start..=end {
        let n = other_counts.get(ids[i] as usize).copied().unwrap_or(0);
        dis[i] = if n == 0 {
            0
        } else if n >= limit {
            2
        } else {
            1
        };
    }
    (start..=end)
        .filter(|&i| dis[i] == 1 || (dis[i] == 2 && !discard_multimatch(&dis, i, start, end)))
        .collect()
}

/// How often each line occurs; ids are dense, so a vector indexed by id.
fn counts(ids: &[u32]) -> Vec<usize> {
    let mut c = vec![0; ids.iter().max().map_or(0, |m| *m as usize + 1)];
    for id in ids {
        c[*id as usize] += 1;
    }
    c
}

/// The differences between two files, compacted. Like git, the common head and tail are set
/// aside and lines the other file lacks are marked changed before the Myers search.
fn diff(a: &[u32], b: &[u32]) -> Vec<Change> {
    diff_with(a, b, false)
}

/// `reversed` searches from the end, which breaks ties between equally short diffs the other way.
fn diff_with(a: &[u32], b: &[u32], reversed: bool) -> Vec<Change> {
    let mut ra = vec![false; a.len()];
    let mut rb = vec![false; b.len()];
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ca, cb) = (counts(a), counts(b));
    let keep_a = keep_for_search(a, &cb, head, a.len() - tail);
    let keep_b = keep_for_search(b, &ca, head, b.len() - tail);
    ra[head..a.len() - tail].fill(true);
    rb[head..b.len() - tail].fill(true);
    let mut sa: Vec<u32> = keep_a.iter().map(|&i| a[i]).collect();
    let mut sb: Vec<u32> = keep_b.iter().map(|&i| b[i]).collect();
    if reversed {
        sa.reverse();
        sb.reverse();
    }
    for op in capture_diff_slices(Algorithm::Myers, &sa, &sb) {
        if let DiffOp::Equal {
            old_index,
            new_index,
            len,
        } = op
        {
            for k in 0..len {
                let (x, y) = if reversed {
                    (
                        sa.len() - 1 - (old_index + k),
                        sb.len() - 1 - (new_index + k),
                    )
                } else {
                    (old_index + k, new_index + k)
                };
                ra[keep_a[x]] = false;
                rb[keep_b[y]] = false;
            }
        }
    }
    compact(a, &mut ra, &rb);
    compact(b, &mut rb, &ra);
    debug_assert_eq!(
        ra.iter().filter(|c| !**c).count(),
        rb.iter().filter(|c| !**c).count(),
        "compaction kept the unchanged lines paired: {a:?} {b:?}"
    );
    let (mut i1, mut i2) = (0, 0);
    let mut script = Vec::new();
    while i1 < a.len() || i2 < b.len() {
        if changed(&ra, i1) || changed(&rb, i2) {
            let (s1, s2) = (i1, i2);
            while changed(&ra, i1) {
                i1 += 1;
            }
            while changed(&rb, i2) {
                i2 += 1;
            }
            script.push(Change {
                i1: s1,
                chg1: i1 - s1,
                i2: s2,
                chg2: i2 - s2,
            });
        } else {
            i1 += 1;
            i2 += 1;
        }
    }
    script
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Conflict,
    Local,
    Remote,
    /// Both sides made the same change.
    Both,
}

/// A region of the merge: `chg0` base lines at `i0`, `chg1` local lines at `i1`, `chg2` remote
/// lines at `i2`.
#[derive(Debug, Clone, Copy)]
struct Region {
    mode: Mode,
    i0: isize,
    chg0: isize,
    i1: isize,
    chg1: isize,
    i2: isize,
    chg2: isize,
}

impl Region {
    /// Signed, as in git: a side's start can be computed from a shift that is only made whole
    /// by the region it is joined to.
    fn new(mode: Mode, [i0, chg0, i1, chg1, i2, chg2]: [usize; 6]) -> Self {
        let s = |v: usize| v as isize;
        Self {
            mode,
            i0: s(i0),
            chg0: s(chg0),
            i1: s(i1),
            chg1: s(chg1),
            i2: s(i2),
            chg2: s(chg2),
        }
    }

    fn range(start: isize, len: isize) -> std::ops::Range<usize> {
        let start = start.max(0) as usize;
        start..start + len.max(0) as usize
    }

    fn local(&self) -> std::ops::Range<usize> {
        Self::range(self.i1, self.chg1)
    }

    fn remote(&self) -> std::ops::Range<usize> {
        Self::range(self.i2, self.chg2)
    }

    fn base(&self) -> std::ops::Range<usize> {
        Self::range(self.i0, self.chg0)
    }
}

/// Adds a region, joining it to the previous one when they overlap or touch on either side
/// (touching changes from different sides are a conflict).
fn append(regions: &mut Vec<Region>, r: Region) {
    if let Some(m) = regions.last_mut() {
        if r.i1 <= m.i1 + m.chg1 || r.i2 <= m.i2 + m.chg2 {
            if r.mode != m.mode {
                m.mode = Mode::Conflict;
            }
            m.chg0 = r.i0 + r.chg0 - m.i0;
            m.chg1 = r.i1 + r.chg1 - m.i1;
            m.chg2 = r.i2 + r.chg2 - m.i2;
            return;
        }
    }
    regions.push(r);
}

fn walk(local_changes: &[Change], remote_changes: &[Change], f: &[File<'_>; 3]) -> Vec<Region> {
    let [base, local, remote] = f;
    let mut regions = Vec::new();
    let (mut x1, mut x2) = (
        local_changes.iter().peekable(),
        remote_changes.iter().peekable(),
    );
    let s = |v: usize| v as isize;
    while let (Some(&&c1), Some(&&c2)) = (x1.peek(), x2.peek()) {
        if c1.i1 + c1.chg1 < c2.i1 {
            let i2 = s(c2.i2) - s(c2.i1) + s(c1.i1);
            let mut r = Region::new(Mode::Local, [c1.i1, c1.chg1, c1.i2, c1.chg2, 0, c1.chg1]);
            r.i2 = i2;
            append(&mut regions, r);
            x1.next();
            continue;
        }
        if c2.i1 + c2.chg1 < c1.i1 {
            let i1 = s(c1.i2) - s(c1.i1) + s(c2.i1);
            let mut r = Region::new(Mode::Remote, [c2.i1, c2.chg1, 0, c2.chg1, c2.i2, c2.chg2]);
            r.i1 = i1;
            append(&mut regions, r);
            x2.next();
            continue;
        }
        let identical = c1.i1 == c2.i1
            && c1.chg1 == c2.chg1
            && c1.chg2 == c2.chg2
            && local.ids[c1.i2..c1.i2 + c1.chg2] == remote.ids[c2.i2..c2.i2 + c2.chg2];
        if !identical {
            // Overlapping or touching: one conflict spanning both changes.
            let off = s(c1.i1) - s(c2.i1);
            let ffo = off + s(c1.chg1) - s(c2.chg1);
            let (mut i0, mut i1, mut i2) = (s(c1.i1), s(c1.i2), s(c2.i2));
            if off > 0 {
                i0 -= off;
                i1 -= off;
            } else {
                i2 += off;
            }
            let mut chg0 = s(c1.i1 + c1.chg1) - i0;
            let mut chg1 = s(c1.i2 + c1.chg2) - i1;
            let mut chg2 = s(c2.i2 + c2.chg2) - i2;
            if ffo < 0 {
                chg0 -= ffo;
                chg1 -= ffo;
            } else {
                chg2 += ffo;
            }
            append(
                &mut regions,
                Region {
                    mode: Mode::Conflict,
                    i0,
                    chg0,
                    i1,
                    chg1,
                    i2,
                    chg2,
                },
            );
        }
        let (end1, end2) = (c1.i1 + c1.chg1, c2.i1 + c2.chg1);
        if end1 >= end2 {
            x2.next();
        }
        if end2 >= end1 {
            x1.next();
        }
    }
    let remote_shift = s(remote.ids.len()) - s(base.ids.len());
    for &c1 in x1 {
        let mut r = Region::new(Mode::Local, [c1.i1, c1.chg1, c1.i2, c1.chg2, 0, c1.chg1]);
        r.i2 = s(c1.i1) + remote_shift;
        append(&mut regions, r);
    }
    let local_shift = s(local.ids.len()) - s(base.ids.len());
    for &c2 in x2 {
        let mut r = Region::new(Mode::Remote, [c2.i1, c2.chg1, 0, c2.chg1, c2.i2, c2.chg2]);
        r.i1 = s(c2.i1) + local_shift;
        append(&mut regions, r);
    }
    regions
}

/// Narrows each conflict to the lines where the two sides really differ; a conflict whose sides
/// are equal is no conflict.
fn refine(regions: Vec<Region>, f: &[File<'_>; 3]) -> Vec<Region> {
    let [_, local, remote] = f;
    let mut out = Vec::with_capacity(regions.len());
    for m in regions {
        if m.mode != Mode::Conflict || m.chg1 == 0 || m.chg2 == 0 {
            out.push(m);
            continue;
        }
        let inner = diff(&local.ids[m.local()], &remote.ids[m.remote()]);
        if inner.is_empty() {
            out.push(Region {
                mode: Mode::Both,
                ..m
            });
            continue;
        }
        for c in inner {
            out.push(Region {
                i1: m.i1 + c.i1 as isize,
                chg1: c.chg1 as isize,
                i2: m.i2 + c.i2 as isize,
                chg2: c.chg2 as isize,
                ..m
            });
        }
    }
    out
}

/// ASCII only, as git's `isalnum` in the C locale.
fn has_alnum(lines: &[&str]) -> bool {
    lines
        .iter()
        .any(|l| l.bytes().any(|b| b.is_ascii_alphanumeric()))
}

/// Joins conflicts separated by at most three lines, or by lines with no letter or digit.
fn join_close_conflicts(regions: Vec<Region>, local: &File<'_>) -> Vec<Region> {
    let mut out: Vec<Region> = Vec::with_capacity(regions.len());
    for next in regions {
        if let Some(m) = out.last_mut() {
            if m.mode == Mode::Conflict && next.mode == Mode::Conflict {
                let (begin, end) = (m.i1 + m.chg1, next.i1);
                if end - begin <= 3 || !has_alnum(&local.lines[Region::range(begin, end - begin)]) {
                    m.chg0 = next.i0 + next.chg0 - m.i0;
                    m.chg1 = next.i1 + next.chg1 - m.i1;
                    m.chg2 = next.i2 + next.chg2 - m.i2;
                    continue;
                }
            }
        }
        out.push(next);
    }
    out
}

/// Whether line `i` of `lines` ends in CRLF: `None` where it cannot tell.
fn eol_crlf(lines: &[&str], i: usize) -> Option<bool> {
    let crlf = |l: &str| l.ends_with("\r\n");
    if lines.is_empty() {
        return None;
    }
    if i + 1 < lines.len() {
        return Some(crlf(lines[i]));
    }
    if lines[i].ends_with('\n') {
        return Some(crlf(lines[i]));
    }
    if i == 0 {
        return None;
    }
    Some(crlf(lines[i - 1]))
}

/// Markers use CRLF when the lines around the conflict on both sides, and the base, do.
fn needs_cr(f: &[File<'_>; 3], m: &Region) -> bool {
    let [base, local, remote] = f;
    let checks = [
        eol_crlf(&local.lines, (m.i1 - 1).max(0) as usize),
        eol_crlf(&remote.lines, (m.i2 - 1).max(0) as usize),
        eol_crlf(&base.lines, 0),
    ];
    for c in checks {
        if c == Some(false) {
            return false;
        }
    }
    checks.contains(&Some(true))
}

fn push_lines(out: &mut String, lines: &[&str], ensure_eol: Option<&str>) {
    for l in lines {
        out.push_str(l);
    }
    if let (Some(eol), Some(last)) = (ensure_eol, lines.last()) {
        if !last.ends_with('\n') {
            out.push_str(eol);
        }
    }
}

fn marker(out: &mut String, ch: char, label: &str, eol: &str) {
    out.extend(std::iter::repeat_n(ch, MARKER));
    if !label.is_empty() {
        out.push(' ');
        out.push_str(label);
    }
    out.push_str(eol);
}

/// Merges `local` and `remote`, two descendants of `base`.
pub fn merge3(base: &str, local: &str, remote: &str, options: &MergeOptions) -> MergeResult {
    let files = intern([base, local, remote]);
    let first = merge_regions(&files, options, false);
    let result = render(&files, &first, options);
    if result.conflicts > 0 {
        return result;
    }
    // Two equally short diffs can merge differently. When the other tie-break conflicts, so do
    // we: a merge is only clean when it does not depend on how ties were broken.
    let other = render(&files, &merge_regions(&files, options, true), options);
    if other.conflicts > 0 {
        other
    } else {
        result
    }
}

fn merge_regions(files: &[File<'_>; 3], options: &MergeOptions, reversed: bool) -> Vec<Region> {
    let local_changes = diff_with(&files[0].ids, &files[1].ids, reversed);
    let remote_changes = diff_with(&files[0].ids, &files[2].ids, reversed);
    let mut regions = walk(&local_changes, &remote_changes, files);
    if options.style == ConflictStyle::Merge {
        // Like git, diff3 output keeps whole conflicts, since it shows their base.
        regions = refine(regions, files);
        regions = join_close_conflicts(regions, &files[1]);
    }
    regions
}

fn render(f: &[File<'_>; 3], regions: &[Region], options: &MergeOptions) -> MergeResult {
    let [base, local, remote] = f;
    let mut text = String::new();
    let mut hunks = Vec::new();
    let mut resolved = String::new();
    let mut conflicts = 0;
    let mut i = 0usize;
    for m in regions {
        let start = m.i1.max(0) as usize;
        match m.mode {
            Mode::Both => continue,
            Mode::Local | Mode::Remote => {
                push_lines(&mut resolved, &local.lines[i..start], None);
                if m.mode == Mode::Local {
                    push_lines(&mut resolved, &local.lines[m.local()], None);
                } else {
                    push_lines(&mut resolved, &remote.lines[m.remote()], None);
                }
            }
            Mode::Conflict => {
                push_lines(&mut resolved, &local.lines[i..start], None);
                if !resolved.is_empty() {
                    text.push_str(&resolved);
                    hunks.push(MergeHunk::Resolved(std::mem::take(&mut resolved)));
                }
                conflicts += 1;
                let eol = if needs_cr(f, m) { "\r\n" } else { "\n" };
                let side = |lines: &[&str]| lines.concat();
                let l = &local.lines[m.local()];
                let b = &base.lines[m.base()];
                let r = &remote.lines[m.remote()];
                marker(&mut text, '<', &options.local_label, eol);
                push_lines(&mut text, l, Some(eol));
                if options.style == ConflictStyle::Diff3 {
                    marker(&mut text, '|', &options.base_label, eol);
                    push_lines(&mut text, b, Some(eol));
                }
                marker(&mut text, '=', "", eol);
                push_lines(&mut text, r, Some(eol));
                marker(&mut text, '>', &options.remote_label, eol);
                hunks.push(MergeHunk::Conflict {
                    local: side(l),
                    base: side(b),
                    remote: side(r),
                });
            }
        }
        i = m.local().end;
    }
    push_lines(&mut resolved, &local.lines[i..], None);
    if !resolved.is_empty() {
        text.push_str(&resolved);
        hunks.push(MergeHunk::Resolved(resolved));
    }
    MergeResult {
        text,
        conflicts,
        hunks,
        chunks: chunks(f, regions),
    }
}

/// The regions as chunks carrying all three sides, with the unchanged runs between them.
fn chunks(f: &[File<'_>; 3], regions: &[Region]) -> Vec<MergeChunk> {
    let [base, local, remote] = f;
    let mut out: Vec<MergeChunk> = Vec::new();
    let mut at = [0usize; 3];
    let mut add = |kind: ChunkKind, b: &[&str], l: &[&str], r: &[&str]| {
        if b.is_empty() && l.is_empty() && r.is_empty() {
            return;
        }
        // Runs the merge split (a joined region next to an unchanged one) read better as one.
        if let Some(last) = out.last_mut() {
            if last.kind == kind && matches!(kind, ChunkKind::Same | ChunkKind::Both) {
                last.base.push_str(&b.concat());
                last.local.push_str(&l.concat());
                last.remote.push_str(&r.concat());
                return;
            }
        }
        out.push(MergeChunk {
            kind,
            base: b.concat(),
            local: l.concat(),
            remote: r.concat(),
        });
    };
    for m in regions {
        let (b, l, r) = (m.base(), m.local(), m.remote());
        // A region may start before the end of the previous one (git's signed shifts); the
        // part already shown is not shown twice.
        let b = b.start.max(at[0])..b.end.max(at[0]);
        let l = l.start.max(at[1])..l.end.max(at[1]);
        let r = r.start.max(at[2])..r.end.max(at[2]);
        gap(
            &mut add,
            &base.lines[at[0]..b.start],
            &local.lines[at[1]..l.start],
            &remote.lines[at[2]..r.start],
        );
        let kind = match m.mode {
            Mode::Local => ChunkKind::Local,
            Mode::Remote => ChunkKind::Remote,
            Mode::Both => ChunkKind::Both,
            Mode::Conflict => ChunkKind::Conflict,
        };
        add(
            kind,
            &base.lines[b.clone()],
            &local.lines[l.clone()],
            &remote.lines[r.clone()],
        );
        at = [b.end, l.end, r.end];
    }
    gap(
        &mut add,
        &base.lines[at[0]..],
        &local.lines[at[1]..],
        &remote.lines[at[2]..],
    );
    out
}

/// The lines between two regions. Both sides hold the same text there, but the merge does not
/// keep a region for a change both made alike, so the base may differ: those parts are `Both`.
fn gap(
    add: &mut impl FnMut(ChunkKind, &[&str], &[&str], &[&str]),
    b: &[&str],
    l: &[&str],
    r: &[&str],
) {
    if b == l || l != r {
        let kind = if b == l && l == r {
            ChunkKind::Same
        } else {
            ChunkKind::Both
        };
        add(kind, b, l, r);
        return;
    }
    for op in capture_diff_slices(Algorithm::Myers, b, l) {
        let (old, new) = (op.old_range(), op.new_range());
        let kind = match op {
            DiffOp::Equal { .. } => ChunkKind::Same,
            _ => ChunkKind::Both,
        };
        add(kind, &b[old], &l[new.clone()], &r[new]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(base: &str, local: &str, remote: &str) -> MergeResult {
        merge3(base, local, remote, &MergeOptions::default())
    }

    #[test]
    fn disjoint_edits_merge_cleanly() {
        let r = m("a\nb\nc\nd\ne\n", "A\nb\nc\nd\ne\n", "a\nb\nc\nd\nE\n");
        assert_eq!(r.text, "A\nb\nc\nd\nE\n");
        assert!(r.is_clean());
    }

    #[test]
    fn overlapping_edits_conflict_with_markers() {
        let r = m("a\nb\nc\n", "a\nX\nc\n", "a\nY\nc\n");
        assert_eq!(r.conflicts, 1);
        assert_eq!(
            r.text,
            "a\n<<<<<<< local\nX\n=======\nY\n>>>>>>> remote\nc\n"
        );
        assert_eq!(
            r.hunks[1],
            MergeHunk::Conflict {
                local: "X\n".into(),
                base: "b\n".into(),
                remote: "Y\n".into()
            }
        );
    }

    #[test]
    fn identical_changes_and_empty_files() {
        assert_eq!(m("a\n", "b\n", "b\n").text, "b\n");
        assert_eq!(m("", "", "").text, "");
        assert_eq!(m("", "x\n", "").text, "x\n");
        assert!(m("", "x\n", "y\n").conflicts == 1);
    }

    #[test]
    fn missing_final_newline_is_kept_or_closed_in_markers() {
        assert_eq!(m("a\nb", "A\nb", "a\nb").text, "A\nb");
        let r = m("a", "b", "c");
        assert_eq!(r.text, "<<<<<<< local\nb\n=======\nc\n>>>>>>> remote\n");
    }

    #[test]
    fn crlf_files_get_crlf_markers() {
        let r = m("a\r\nb\r\nc\r\n", "a\r\nX\r\nc\r\n", "a\r\nY\r\nc\r\n");
        assert!(r
            .text
            .contains("<<<<<<< local\r\nX\r\n=======\r\nY\r\n>>>>>>> remote\r\n"));
    }

    #[test]
    fn diff3_shows_the_base() {
        let opts = MergeOptions {
            style: ConflictStyle::Diff3,
            ..MergeOptions::default()
        };
        let r = merge3("a\nb\nc\n", "a\nX\nc\n", "a\nY\nc\n", &opts);
        assert_eq!(
            r.text,
            "a\n<<<<<<< local\nX\n||||||| base\nb\n=======\nY\n>>>>>>> remote\nc\n"
        );
    }

    #[test]
    fn deletion_against_edit_conflicts() {
        let r = m("a\nb\nc\n", "a\nc\n", "a\nB\nc\n");
        assert_eq!(r.conflicts, 1);
        assert_eq!(r.text, "a\n<<<<<<< local\n=======\nB\n>>>>>>> remote\nc\n");
    }
}
