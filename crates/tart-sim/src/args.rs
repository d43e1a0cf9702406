//! A small re-implementation of swift-argument-parser 1.6.1 as tart uses it: option
//! syntax, the order in which problems are found, and the exact error and help texts
//! (the crate README, "What is simulated"), so tools are tested against tart's words.
//!
//! Over 500 lines, for a reason: one parser whose order of checks is the thing simulated
//! (the first problem swift-argument-parser finds is the one tart prints), with its help
//! renderer and their unit tests; split, that order would be spread over files.

use std::collections::HashMap;

/// What kind of value an option takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Flag,
    Text,
    UInt16,
    UInt64,
    UInt,
    /// One of the listed values (tart's enums).
    Choice(&'static [&'static str]),
}

/// One named option of a command.
#[derive(Clone, Debug)]
pub struct OptSpec {
    pub long: &'static str,
    pub short: Option<char>,
    pub value_name: &'static str,
    pub kind: ValueKind,
    pub repeating: bool,
    pub help: &'static str,
    pub hidden: bool,
}

impl OptSpec {
    pub const fn flag(long: &'static str, help: &'static str) -> OptSpec {
        OptSpec {
            long,
            short: None,
            value_name: "",
            kind: ValueKind::Flag,
            repeating: false,
            help,
            hidden: false,
        }
    }

    pub const fn value(
        long: &'static str,
        value_name: &'static str,
        kind: ValueKind,
        help: &'static str,
    ) -> OptSpec {
        OptSpec {
            long,
            short: None,
            value_name,
            kind,
            repeating: false,
            help,
            hidden: false,
        }
    }

    pub const fn short(mut self, c: char) -> OptSpec {
        self.short = Some(c);
        self
    }

    pub const fn repeating(mut self) -> OptSpec {
        self.repeating = true;
        self
    }

    pub const fn hidden(mut self) -> OptSpec {
        self.hidden = true;
        self
    }

    /// The synopsis used in `Help:` lines and in help output, e.g. `--wait <wait>`.
    fn label(&self) -> String {
        let mut label = String::new();
        match (self.short, self.long.is_empty()) {
            (Some(c), true) => label.push_str(&format!("-{c}")),
            (Some(c), false) => label.push_str(&format!("-{c}, --{}", self.long)),
            (None, _) => label.push_str(&format!("--{}", self.long)),
        }
        if self.kind != ValueKind::Flag {
            label.push_str(&format!(" <{}>", self.value_name));
        }
        label
    }

    /// How the option is named in errors: the long form when it has one.
    fn error_name(&self) -> String {
        let name = if self.long.is_empty() {
            format!("-{}", self.short.unwrap_or('?'))
        } else {
            format!("--{}", self.long)
        };
        if self.kind == ValueKind::Flag {
            name
        } else {
            format!("{name} <{}>", self.value_name)
        }
    }
}

/// How a positional argument consumes words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    One,
    /// One or more.
    Repeating,
    /// Everything from here on, verbatim (`.captureForPassthrough`).
    Passthrough,
}

#[derive(Clone, Debug)]
pub struct ArgSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub arity: Arity,
}

/// One tart subcommand as the parser sees it.
#[derive(Clone, Debug)]
pub struct CommandSpec {
    pub name: &'static str,
    pub abstract_text: &'static str,
    pub discussion: &'static str,
    /// The usage synopsis after `tart `, as tart prints it.
    pub usage: &'static str,
    pub args: Vec<ArgSpec>,
    pub opts: Vec<OptSpec>,
}

/// A parse or validation failure, printed the way swift-argument-parser prints it (exit 64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub help: Option<String>,
    /// `None` for the root usage (`tart <subcommand>`).
    pub command: Option<&'static str>,
    pub usage: String,
}

impl UsageError {
    pub fn for_command(spec: &CommandSpec, message: String, help: Option<String>) -> UsageError {
        UsageError {
            message,
            help,
            command: Some(spec.name),
            usage: spec.usage.to_string(),
        }
    }

    /// A ValidationError thrown from `run()`: swift-argument-parser shows the root usage.
    pub fn root(message: String) -> UsageError {
        UsageError {
            message,
            help: None,
            command: None,
            usage: "<subcommand>".to_string(),
        }
    }

    /// The full text for stderr, without the final newline `print` adds.
    pub fn render(&self) -> String {
        let mut out = format!("Error: {}\n", self.message);
        if let Some(help) = &self.help {
            out.push_str(&format!("Help:  {help}\n"));
        }
        let path = match self.command {
            Some(name) => format!("tart {name}"),
            None => "tart".to_string(),
        };
        out.push_str(&format!(
            "Usage: tart {}\n  See '{path} --help' for more information.",
            self.usage
        ));
        out
    }
}

/// The values a command line gave, by option long name (or short letter) and positional name.
#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<String, Vec<String>>,
    flags: HashMap<String, usize>,
    positionals: HashMap<&'static str, Vec<String>>,
    /// Unknown options and surplus words, reported after the command's validation (trap 3).
    leftovers: Vec<Leftover>,
}

#[derive(Debug)]
enum Leftover {
    UnknownOption(String, Option<String>),
    Unexpected(String),
}

impl Parsed {
    pub fn flag(&self, name: &str) -> bool {
        self.flags.get(name).copied().unwrap_or(0) > 0
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(String::as_str)
    }

    pub fn values(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn positional(&self, name: &str) -> Option<&str> {
        self.positionals
            .get(name)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn positionals(&self, name: &str) -> &[String] {
        self.positionals.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Reports what the command did not consume, as swift-argument-parser does once the
    /// command has validated.
    pub fn check_leftovers(&self, spec: &CommandSpec) -> Result<(), UsageError> {
        if let Some(Leftover::UnknownOption(name, suggestion)) = self
            .leftovers
            .iter()
            .find(|l| matches!(l, Leftover::UnknownOption(..)))
        {
            let message = match suggestion {
                Some(s) => format!("Unknown option '{name}'. Did you mean '{s}'?"),
                None => format!("Unknown option '{name}'"),
            };
            return Err(UsageError::for_command(spec, message, None));
        }
        let unexpected: Vec<&str> = self
            .leftovers
            .iter()
            .filter_map(|l| match l {
                Leftover::Unexpected(w) => Some(w.as_str()),
                Leftover::UnknownOption(..) => None,
            })
            .collect();
        match unexpected.as_slice() {
            [] => Ok(()),
            [one] => Err(UsageError::for_command(
                spec,
                format!("Unexpected argument '{one}'"),
                None,
            )),
            many => Err(UsageError::for_command(
                spec,
                format!(
                    "{} unexpected arguments: {}",
                    many.len(),
                    many.iter()
                        .map(|w| format!("'{w}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            )),
        }
    }
}

/// Why parsing stopped without an error: the user asked for help.
#[derive(Debug)]
pub enum ParseOutcome {
    Parsed(Parsed),
    Help,
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggestion_for(spec: &CommandSpec, unknown: &str) -> Option<String> {
    spec.opts
        .iter()
        .filter(|o| !o.hidden && !o.long.is_empty())
        .map(|o| format!("--{}", o.long))
        .map(|name| (edit_distance(unknown, &name), name))
        .filter(|(d, _)| *d < 4)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

fn check_value(spec: &CommandSpec, opt: &OptSpec, value: &str) -> Result<(), UsageError> {
    let ok = match opt.kind {
        ValueKind::Flag | ValueKind::Text => true,
        ValueKind::UInt16 => value.parse::<u16>().is_ok(),
        ValueKind::UInt64 | ValueKind::UInt => value.parse::<u64>().is_ok(),
        ValueKind::Choice(choices) => choices.contains(&value),
    };
    if ok {
        return Ok(());
    }
    let mut message = format!("The value '{value}' is invalid for '{}'", opt.error_name());
    if let ValueKind::Choice(choices) = opt.kind {
        let quoted: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
        let listed = match quoted.split_last() {
            Some((last, rest)) if rest.len() > 1 => format!("{} or {last}", rest.join(", ")),
            Some((last, rest)) if rest.len() == 1 => format!("{} and {last}", rest[0]),
            _ => quoted.join(""),
        };
        message.push_str(&format!(". Please provide one of {listed}."));
    }
    Err(UsageError::for_command(
        spec,
        message,
        Some(format!("{}  {}", opt.error_name(), opt.help)),
    ))
}

/// Parses `words` (the words after the subcommand) against `spec`.
pub fn parse(spec: &CommandSpec, words: &[String]) -> Result<ParseOutcome, UsageError> {
    let mut parsed = Parsed::default();
    let mut positional_words: Vec<String> = Vec::new();
    let passthrough_index = spec.args.iter().position(|a| a.arity == Arity::Passthrough);
    let mut i = 0;
    let mut only_positionals = false;
    while i < words.len() {
        let word = &words[i];
        // Once a passthrough command would start, everything is taken verbatim.
        if let Some(p) = passthrough_index {
            if positional_words.len() >= p {
                positional_words.extend(words[i..].iter().cloned());
                break;
            }
        }
        if only_positionals || word == "-" || !word.starts_with('-') || is_negative_number(word) {
            positional_words.push(word.clone());
            i += 1;
            continue;
        }
        if word == "--" {
            only_positionals = true;
            i += 1;
            continue;
        }
        if word == "-h" || word == "--help" {
            return Ok(ParseOutcome::Help);
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let Some(opt) = spec
                .opts
                .iter()
                .find(|o| !o.long.is_empty() && o.long == name)
            else {
                let unknown = format!("--{name}");
                let suggestion = suggestion_for(spec, &unknown);
                parsed
                    .leftovers
                    .push(Leftover::UnknownOption(unknown, suggestion));
                i += 1;
                continue;
            };
            i += 1;
            take_option(spec, opt, inline, words, &mut i, &mut parsed)?;
            continue;
        }
        // Short options, possibly combined (`-it`).
        let letters: Vec<char> = word[1..].chars().collect();
        i += 1;
        for (k, c) in letters.iter().enumerate() {
            let Some(opt) = spec.opts.iter().find(|o| o.short == Some(*c)) else {
                parsed
                    .leftovers
                    .push(Leftover::UnknownOption(format!("-{c}"), None));
                continue;
            };
            if opt.kind == ValueKind::Flag {
                *parsed.flags.entry(key(opt)).or_insert(0) += 1;
            } else {
                let rest: String = letters[k + 1..].iter().collect();
                let inline = if rest.is_empty() { None } else { Some(rest) };
                take_option(spec, opt, inline, words, &mut i, &mut parsed)?;
                break;
            }
        }
    }
    assign_positionals(spec, positional_words, &mut parsed)?;
    Ok(ParseOutcome::Parsed(parsed))
}

fn is_negative_number(word: &str) -> bool {
    word.len() > 1 && word[1..].chars().all(|c| c.is_ascii_digit())
}

fn key(opt: &OptSpec) -> String {
    if opt.long.is_empty() {
        opt.short.map(String::from).unwrap_or_default()
    } else {
        opt.long.to_string()
    }
}

fn take_option(
    spec: &CommandSpec,
    opt: &OptSpec,
    inline: Option<String>,
    words: &[String],
    i: &mut usize,
    parsed: &mut Parsed,
) -> Result<(), UsageError> {
    if opt.kind == ValueKind::Flag {
        if let Some(value) = inline {
            return Err(UsageError::for_command(
                spec,
                format!(
                    "The option '--{}' does not take any value, but '{value}' was specified.",
                    opt.long
                ),
                None,
            ));
        }
        *parsed.flags.entry(key(opt)).or_insert(0) += 1;
        return Ok(());
    }
    let value = match inline {
        Some(v) => v,
        None => match words.get(*i) {
            Some(next) if !next.starts_with('-') || is_negative_number(next) => {
                *i += 1;
                next.clone()
            }
            _ => {
                return Err(UsageError::for_command(
                    spec,
                    format!("Missing value for '{}'", opt.error_name()),
                    Some(format!("{}  {}", opt.error_name(), opt.help)),
                ))
            }
        },
    };
    check_value(spec, opt, &value)?;
    parsed.values.entry(key(opt)).or_default().push(value);
    Ok(())
}

fn assign_positionals(
    spec: &CommandSpec,
    words: Vec<String>,
    parsed: &mut Parsed,
) -> Result<(), UsageError> {
    let mut words = words.into_iter();
    for arg in &spec.args {
        match arg.arity {
            Arity::One => match words.next() {
                Some(w) => parsed.positionals.insert(arg.name, vec![w]),
                None => return Err(missing_argument(spec, arg)),
            },
            Arity::Repeating | Arity::Passthrough => {
                let rest: Vec<String> = words.by_ref().collect();
                if rest.is_empty() {
                    return Err(missing_argument(spec, arg));
                }
                parsed.positionals.insert(arg.name, rest)
            }
        };
    }
    parsed.leftovers.extend(words.map(Leftover::Unexpected));
    Ok(())
}

fn missing_argument(spec: &CommandSpec, arg: &ArgSpec) -> UsageError {
    UsageError::for_command(
        spec,
        format!("Missing expected argument '<{}>'", arg.name),
        Some(format!("<{}>  {}", arg.name, arg.help)),
    )
}

/// Help text in swift-argument-parser's layout: labels in a 24-column gutter.
pub fn render_help(spec: &CommandSpec) -> String {
    let mut out = format!("OVERVIEW: {}\n", spec.abstract_text);
    if !spec.discussion.is_empty() {
        out.push_str(&format!("\n{}\n", spec.discussion));
    }
    out.push_str(&format!("\nUSAGE: tart {}\n", spec.usage));
    if !spec.args.is_empty() {
        out.push_str("\nARGUMENTS:\n");
        for arg in &spec.args {
            let suffix = if matches!(arg.arity, Arity::Repeating | Arity::Passthrough) {
                " ..."
            } else {
                ""
            };
            out.push_str(&help_row(&format!("<{}>{suffix}", arg.name), arg.help));
        }
    }
    out.push_str("\nOPTIONS:\n");
    for opt in spec.opts.iter().filter(|o| !o.hidden) {
        out.push_str(&help_row(&opt.label(), opt.help));
    }
    out.push_str(&help_row("--version", "Show the version."));
    out.push_str(&help_row("-h, --help", "Show help information."));
    out
}

fn help_row(label: &str, help: &str) -> String {
    const GUTTER: usize = 24;
    if label.len() + 2 <= GUTTER - 2 {
        format!("  {label:<width$}{help}\n", width = GUTTER)
    } else {
        format!("  {label}\n{:width$}{help}\n", "", width = GUTTER + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CommandSpec {
        CommandSpec {
            name: "ip",
            abstract_text: "Get VM's IP address",
            discussion: "",
            usage: "ip <name> [--wait <wait>] [--resolver <resolver>]",
            args: vec![ArgSpec {
                name: "name",
                help: "VM name",
                arity: Arity::One,
            }],
            opts: vec![
                OptSpec::value(
                    "wait",
                    "wait",
                    ValueKind::UInt16,
                    "Number of seconds to wait for a potential VM booting",
                ),
                OptSpec::value(
                    "resolver",
                    "resolver",
                    ValueKind::Choice(&["dhcp", "arp", "agent"]),
                    "Strategy for resolving IP address",
                ),
            ],
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn err(s: &str) -> UsageError {
        match parse(&spec(), &words(s)) {
            Err(e) => e,
            Ok(ParseOutcome::Parsed(p)) => p.check_leftovers(&spec()).unwrap_err(),
            Ok(ParseOutcome::Help) => panic!("help"),
        }
    }

    #[test]
    fn inline_and_separate_values_parse() {
        let ParseOutcome::Parsed(p) = parse(&spec(), &words("vm --wait=5 --resolver arp")).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.positional("name"), Some("vm"));
        assert_eq!(p.value("wait"), Some("5"));
        assert_eq!(p.value("resolver"), Some("arp"));
    }

    #[test]
    fn choice_errors_list_the_values_like_swift() {
        assert_eq!(
            err("vm --resolver x").message,
            "The value 'x' is invalid for '--resolver <resolver>'. Please provide one of 'dhcp', 'arp' or 'agent'."
        );
    }

    #[test]
    fn near_misses_get_a_suggestion() {
        assert_eq!(
            err("vm --wiat 3").message,
            "Unknown option '--wiat'. Did you mean '--wait'?"
        );
        assert_eq!(err("vm --config x").message, "Unknown option '--config'");
    }

    #[test]
    fn missing_values_and_arguments_name_the_help() {
        let e = err("vm --wait");
        assert_eq!(e.message, "Missing value for '--wait <wait>'");
        assert_eq!(
            e.help.as_deref(),
            Some("--wait <wait>  Number of seconds to wait for a potential VM booting")
        );
        assert_eq!(err("").message, "Missing expected argument '<name>'");
        assert_eq!(err("a b c").message, "2 unexpected arguments: 'b', 'c'");
    }
}
