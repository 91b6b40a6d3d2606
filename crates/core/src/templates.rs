//! Stage templates written by `idse init`: the headings `validate` looks for, with
//! `[REQUIRES INPUT]` wherever a person must fill in.

use idse_protocol::Stage;

/// The headings a stage is expected to have; each entry lists accepted words for one heading.
pub fn expected_headings(stage: Stage) -> &'static [&'static [&'static str]] {
    match stage {
        Stage::Intent => &[
            &["Purpose", "Goal"],
            &["Problem", "Opportunity"],
            &["Vision"],
            &["Stakeholders"],
            &["Success Criteria"],
        ],
        Stage::Context => &[
            &["Environment Overview"],
            &["Technical Context"],
            &["Organizational Context"],
        ],
        Stage::Spec => &[
            &["Purpose"],
            &["System Overview"],
            &["Functional Requirements"],
        ],
        Stage::Plan => &[
            &["Architectural Overview"],
            &["Core Components"],
            &["Data Flow"],
        ],
        Stage::Tasks => &[&["Phase"]],
        Stage::Implementation | Stage::Feedback => &[],
    }
}

pub fn template(stage: Stage, project: &str) -> String {
    let title = match stage {
        Stage::Intent => "Intent",
        Stage::Context => "Context",
        Stage::Spec => "Specification",
        Stage::Plan => "Plan",
        Stage::Tasks => "Tasks",
        Stage::Implementation => "Implementation",
        Stage::Feedback => "Feedback",
    };
    let mut text = format!("# {title}: {project}\n\n");
    let headings: Vec<&str> = match stage {
        Stage::Tasks => vec!["Phase 1"],
        Stage::Implementation => vec!["Summary", "Changes"],
        Stage::Feedback => vec!["What worked", "What to change"],
        _ => expected_headings(stage)
            .iter()
            .map(|words| words[0])
            .collect(),
    };
    for heading in headings {
        text.push_str(&format!("## {heading}\n\n[REQUIRES INPUT]\n\n"));
    }
    if stage == Stage::Tasks {
        text.push_str("- [ ] [REQUIRES INPUT]\n");
    }
    text
}
