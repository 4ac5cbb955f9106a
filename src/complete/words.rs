//! Reads a half-typed command line against the clap definition of the CLI and says what
//! the word under the cursor should become: a subcommand, a flag, one of a flag's values,
//! or a live name (StatefulSet, pod, node, namespace, context). Pure: no cluster, no I/O.
//!
//! The line is what kubectl hands to `kubectl_complete-sts_safe`: the words after
//! `kubectl sts-safe`, the last one being the word being completed (possibly empty).

use std::path::PathBuf;

use clap::{Arg, ArgAction, Command, ValueHint};

/// What the word under the cursor should become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Subcommands,
    Flags,
    /// One of a fixed set of values (value enums), with their help.
    Choices(Vec<Candidate>),
    StatefulSets,
    /// The pods of this StatefulSet (recover's POD arguments).
    Pods(String),
    /// `CONTAINER=` for each container of this StatefulSet (canary's --image).
    Containers(String),
    Nodes,
    Namespaces,
    Contexts,
    /// A path: left to the shell's own file completion.
    Files,
    Nothing,
}

/// One completion: the text, and a short help shown by zsh and fish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub help: Option<String>,
}

impl Candidate {
    pub fn new(value: impl Into<String>, help: Option<String>) -> Candidate {
        Candidate {
            value: value.into(),
            help,
        }
    }
}

/// The cluster the line points at so far (flags given earlier on the line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub all_namespaces: bool,
}

/// A parsed line: what to complete and how to present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub want: Want,
    /// The part of the word the candidates must start with.
    pub prefix: String,
    /// Written before every candidate: `--flag=` when a value is typed inline.
    pub lead: String,
    pub scope: Scope,
    /// The subcommand's path below the root (empty at the root).
    pub path: Vec<String>,
    /// Ids of the flags already on the line.
    pub used: Vec<String>,
}

/// Parses `words` (the last one being completed) against `root`, which must have been
/// built (`Command::build`) so that global flags are known to every subcommand.
pub fn parse(root: &Command, words: &[String]) -> Line {
    let (cur, done) = match words.split_last() {
        Some((cur, done)) => (cur.as_str(), done),
        None => ("", &[][..]),
    };
    let mut cmd = root;
    let mut path = Vec::new();
    let mut scope = Scope::default();
    let mut used = Vec::new();
    let mut positionals: Vec<String> = Vec::new();
    let mut pending: Option<&Arg> = None;
    let mut only_positionals = false;
    for w in done {
        if let Some(a) = pending.take() {
            record(&mut scope, a, w);
            continue;
        }
        if only_positionals || w == "-" || !w.starts_with('-') {
            if !only_positionals && positionals.is_empty() {
                if let Some(sub) = cmd.find_subcommand(w) {
                    cmd = sub;
                    path.push(sub.get_name().to_string());
                    continue;
                }
            }
            positionals.push(w.clone());
            continue;
        }
        if w == "--" {
            only_positionals = true;
            continue;
        }
        if let Some(body) = w.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            if let Some(a) = long(cmd, name) {
                note_flag(&mut scope, &mut used, a);
                if takes_value(a) {
                    match inline {
                        Some(v) => record(&mut scope, a, v),
                        None if !a.is_require_equals_set() => pending = Some(a),
                        None => {}
                    }
                }
            }
            continue;
        }
        // A cluster of short flags: -yA, -n prod, -nprod, -n=prod.
        let shorts = &w[1..];
        for (i, c) in shorts.char_indices() {
            let Some(a) = short(cmd, c) else { break };
            note_flag(&mut scope, &mut used, a);
            if takes_value(a) {
                let rest = &shorts[i + c.len_utf8()..];
                let rest = rest.strip_prefix('=').unwrap_or(rest);
                if rest.is_empty() {
                    pending = Some(a);
                } else {
                    record(&mut scope, a, rest);
                }
                break;
            }
        }
    }
    let mut line = Line {
        want: Want::Nothing,
        prefix: cur.to_string(),
        lead: String::new(),
        scope,
        path,
        used,
    };
    line.want = want_at(cmd, &mut line, pending, only_positionals, &positionals);
    // An image is typed after CONTAINER=: only the container part is completed.
    if matches!(line.want, Want::Containers(_)) && line.prefix.contains('=') {
        line.want = Want::Nothing;
    }
    line
}

fn want_at(
    cmd: &Command,
    line: &mut Line,
    pending: Option<&Arg>,
    only_positionals: bool,
    positionals: &[String],
) -> Want {
    let cur = line.prefix.clone();
    if let Some(a) = pending {
        return value_want(a, &line.scope, positionals);
    }
    if !only_positionals && cur.starts_with('-') {
        if let Some((name, value)) = cur.strip_prefix("--").and_then(|b| b.split_once('=')) {
            line.lead = format!("--{name}=");
            line.prefix = value.to_string();
            return match long(cmd, name).filter(|a| takes_value(a)) {
                Some(a) => value_want(a, &line.scope, positionals),
                None => Want::Nothing,
            };
        }
        return Want::Flags;
    }
    if line.path.is_empty() && positionals.is_empty() && cmd.has_subcommands() {
        return Want::Subcommands;
    }
    let args: Vec<&Arg> = cmd.get_positionals().collect();
    let arg = args.get(positionals.len()).copied().or_else(|| {
        args.last()
            .copied()
            .filter(|a| matches!(a.get_action(), ArgAction::Append))
    });
    arg.map_or(Want::Nothing, |a| value_want(a, &line.scope, positionals))
}

/// The flags of the subcommand at `path` that may still be given, long forms always,
/// short forms too when the word is a single dash prefix.
pub fn flags(root: &Command, line: &Line) -> Vec<Candidate> {
    let cmd = at(root, &line.path);
    let shorts = !line.prefix.starts_with("--");
    let mut out = Vec::new();
    for a in cmd
        .get_arguments()
        .filter(|a| !a.is_positional() && !a.is_hide_set())
    {
        let repeatable = matches!(a.get_action(), ArgAction::Append | ArgAction::Count);
        if !repeatable && line.used.iter().any(|u| u == a.get_id().as_str()) {
            continue;
        }
        let help = a.get_help().map(|h| first_line(&h.to_string()));
        if let Some(l) = a.get_long() {
            out.push(Candidate::new(format!("--{l}"), help.clone()));
        }
        if shorts {
            if let Some(s) = a.get_short() {
                out.push(Candidate::new(format!("-{s}"), help));
            }
        }
    }
    out
}

/// The subcommands of the root, with their one-line summaries.
pub fn subcommands(root: &Command) -> Vec<Candidate> {
    root.get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| {
            Candidate::new(
                c.get_name(),
                c.get_about().map(|h| first_line(&h.to_string())),
            )
        })
        .collect()
}

fn at<'a>(root: &'a Command, path: &[String]) -> &'a Command {
    path.iter()
        .fold(root, |c, name| c.find_subcommand(name).unwrap_or(c))
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn long<'a>(cmd: &'a Command, name: &str) -> Option<&'a Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

fn short(cmd: &Command, c: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(c))
}

fn takes_value(a: &Arg) -> bool {
    a.get_action().takes_values()
}

fn note_flag(scope: &mut Scope, used: &mut Vec<String>, a: &Arg) {
    if a.get_id().as_str() == "all_namespaces" {
        scope.all_namespaces = true;
    }
    used.push(a.get_id().to_string());
}

fn record(scope: &mut Scope, a: &Arg, value: &str) {
    match a.get_id().as_str() {
        "kubeconfig" => scope.kubeconfig = Some(PathBuf::from(value)),
        "context" => scope.context = Some(value.to_string()),
        "namespace" => scope.namespace = Some(value.to_string()),
        _ => {}
    }
}

/// What a value of `a` can be, given what the line holds so far.
fn value_want(a: &Arg, scope: &Scope, positionals: &[String]) -> Want {
    let values: Vec<Candidate> = a
        .get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| {
            Candidate::new(
                v.get_name(),
                v.get_help().map(|h| first_line(&h.to_string())),
            )
        })
        .collect();
    if !values.is_empty() {
        return Want::Choices(values);
    }
    let statefulset = positionals.first().cloned();
    match a.get_id().as_str() {
        "namespace" => Want::Namespaces,
        "context" => Want::Contexts,
        "untaint" => Want::Nodes,
        "name" if scope.all_namespaces => Want::Nothing,
        "name" => Want::StatefulSets,
        "pods" => statefulset.map_or(Want::Nothing, Want::Pods),
        "images" => statefulset.map_or(Want::Nothing, Want::Containers),
        _ if is_path(a) => Want::Files,
        _ => Want::Nothing,
    }
}

fn is_path(a: &Arg) -> bool {
    matches!(
        a.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
    ) || a
        .get_value_names()
        .is_some_and(|n| n.iter().any(|n| n == "FILE" || n == "PATH"))
}

#[cfg(test)]
#[path = "words_tests.rs"]
mod tests;
