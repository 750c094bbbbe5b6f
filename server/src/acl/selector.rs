//! A selector: one set of permissions (commands, key patterns, channel patterns). A user
//! has its root selector and any number of `(...)` selectors; a command runs when one of
//! them allows all of it. The rule grammar and the description ACL GETUSER and ACL LIST
//! print are Redis 7.0's.

use crate::acl::key_access::{R, RW, W};
use crate::acl::universe::{CommandBits, UNIVERSE, WORDS, category};
use crate::protocol::Args;
use std::collections::BTreeMap;

/// Why a rule was refused: Redis's texts, after `Error in ACL SETUSER modifier '...': `.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("Unknown command or category name in ACL")]
    Unknown,
    #[error("Syntax error")]
    Syntax,
    #[error(
        "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns"
    )]
    AfterAllKeys,
    #[error(
        "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels"
    )]
    AfterAllChannels,
    #[error("The password you are trying to remove from the user does not exist")]
    NoSuchPassword,
    #[error(
        "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters"
    )]
    BadHash,
    #[error("Allowing first-arg of a subcommand is not supported")]
    FirstArgOfSubcommand,
}

/// A key pattern and the access it grants (`~` both, `%R~` read, `%W~` write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPattern {
    pub pattern: Vec<u8>,
    pub access: u8,
}

impl KeyPattern {
    fn describe(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.access {
            R => b"%R~",
            W => b"%W~",
            _ => b"~",
        });
        out.extend_from_slice(&self.pattern);
    }
}

/// What a selector refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    Command,
    /// The key at this argument index.
    Key(usize),
    /// The channel at this argument index.
    Channel(usize),
}

impl Denied {
    /// Redis's order of relevance when no selector allows a command: a key or channel over
    /// the command, a channel over a key, then the later argument.
    pub fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (0, 0),
            Denied::Key(i) => (1, i),
            Denied::Channel(i) => (2, i),
        }
    }
}

/// What a command asks of a selector: its id, and the keys and channels (`true` for a
/// PSUBSCRIBE pattern) it names, by argument index.
#[derive(Debug)]
pub struct Request<'a> {
    pub id: usize,
    /// AUTH, HELLO and the like run for anyone.
    pub no_auth: bool,
    pub args: Args<'a>,
    pub keys: Vec<usize>,
    /// The access the first key needs, and the access each other key needs.
    pub key_access: (u8, u8),
    pub channels: Vec<(usize, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    commands: CommandBits,
    /// Redis's ALLCOMMANDS flag: set by `+@all`, cleared when any command is removed.
    all_commands: bool,
    /// Redis's reserved bit for commands added later: set by `+@all` only, cleared by
    /// `-@all`; it decides whether the description starts from `+@all` or `-@all`.
    future_commands: bool,
    /// `+select|0`: first arguments allowed for a command that is not.
    first_args: BTreeMap<usize, Vec<Vec<u8>>>,
    pub patterns: Vec<KeyPattern>,
    pub all_keys: bool,
    pub channels: Vec<Vec<u8>>,
    pub all_channels: bool,
}

impl Selector {
    /// An empty selector (no commands, keys or channels), as a new user has.
    pub fn new() -> Self {
        Selector {
            commands: [0; WORDS],
            all_commands: false,
            future_commands: false,
            first_args: BTreeMap::new(),
            patterns: Vec::new(),
            all_keys: false,
            channels: Vec::new(),
            all_channels: false,
        }
    }

    /// Redis's ALLCOMMANDS flag.
    pub fn all_commands(&self) -> bool {
        self.all_commands
    }

    fn bit(&self, id: usize) -> bool {
        self.commands[id / 64] & (1 << (id % 64)) != 0
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if on {
            self.commands[id / 64] |= 1 << (id % 64);
        } else {
            self.commands[id / 64] &= !(1 << (id % 64));
            self.all_commands = false;
        }
    }

    /// Allows or denies a command, a container with all its subcommands.
    fn change(&mut self, id: usize, on: bool) {
        self.set_bit(id, on);
        self.first_args.remove(&id);
        for &sub in &UNIVERSE.commands[id].subs {
            self.set_bit(sub, on);
        }
    }

    fn change_category(&mut self, cat: u32, on: bool) {
        for (id, c) in UNIVERSE.commands.iter().enumerate() {
            if c.categories & cat != 0 {
                self.change(id, on);
            }
        }
    }

    fn set_all(&mut self, on: bool) {
        self.commands = if on { [u64::MAX; WORDS] } else { [0; WORDS] };
        self.all_commands = on;
        self.future_commands = on;
        self.first_args.clear();
    }

    /// Applies one rule (Redis's `ACLSetSelector`).
    ///
    /// # Errors
    /// The rule is unknown or malformed; the selector may be partly changed (callers apply
    /// rules to a copy).
    pub fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |w: &str| op.eq_ignore_ascii_case(w.as_bytes());
        if is("allkeys") || op == b"~*" {
            self.all_keys = true;
            self.patterns.clear();
        } else if is("resetkeys") {
            self.all_keys = false;
            self.patterns.clear();
        } else if is("allchannels") || op == b"&*" {
            self.all_channels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.all_channels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.set_all(true);
        } else if is("nocommands") || is("-@all") {
            self.set_all(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            self.add_key_pattern(op)?;
        } else if op[0] == b'&' {
            if self.all_channels {
                return Err(RuleError::AfterAllChannels);
            }
            let pat = &op[1..];
            if has_spaces(pat) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pat) {
                self.channels.push(pat.to_vec());
            }
            self.all_channels = false;
        } else if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') {
            let cat = category(&op[2..]).ok_or(RuleError::Unknown)?;
            self.change_category(cat, op[0] == b'+');
        } else if op[0] == b'+' {
            self.allow_command(&op[1..])?;
        } else if op[0] == b'-' {
            let id = UNIVERSE.lookup(&op[1..]).ok_or(RuleError::Unknown)?;
            self.change(id, false);
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    fn add_key_pattern(&mut self, op: &[u8]) -> Result<(), RuleError> {
        if self.all_keys {
            return Err(RuleError::AfterAllKeys);
        }
        let (access, rest) = if op[0] == b'%' {
            let mut access = 0;
            let mut i = 1;
            loop {
                match op.get(i).map(u8::to_ascii_uppercase) {
                    Some(b'R') if access & R == 0 => access |= R,
                    Some(b'W') if access & W == 0 => access |= W,
                    Some(b'~') => {
                        i += 1;
                        break;
                    }
                    // Redis accepts `%R` with no `~` as a pattern that is the empty string.
                    None => break,
                    _ => return Err(RuleError::Syntax),
                }
                i += 1;
            }
            (access, &op[i.min(op.len())..])
        } else {
            (RW, &op[1..])
        };
        if has_spaces(rest) {
            return Err(RuleError::Syntax);
        }
        match self.patterns.iter_mut().find(|p| p.pattern == rest) {
            Some(p) => p.access |= access,
            None => self.patterns.push(KeyPattern {
                pattern: rest.to_vec(),
                access,
            }),
        }
        self.all_keys = false;
        Ok(())
    }

    fn allow_command(&mut self, name: &[u8]) -> Result<(), RuleError> {
        let Some(bar) = name.iter().rposition(|&c| c == b'|') else {
            let id = UNIVERSE.lookup(name).ok_or(RuleError::Unknown)?;
            self.change(id, true);
            return Ok(());
        };
        let (base, sub) = (&name[..bar], &name[bar + 1..]);
        let id = UNIVERSE.lookup(base).ok_or(RuleError::Unknown)?;
        if UNIVERSE.commands[id].parent.is_some() {
            return Err(RuleError::FirstArgOfSubcommand);
        }
        if sub.is_empty() {
            return Err(RuleError::Syntax);
        }
        if UNIVERSE.commands[id].subs.is_empty() {
            tracing::warn!(
                "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future (offender: +{})",
                String::from_utf8_lossy(name)
            );
            let list = self.first_args.entry(id).or_default();
            if !list.iter().any(|a| a.eq_ignore_ascii_case(sub)) {
                list.push(sub.to_vec());
            }
        } else {
            let sub_id = UNIVERSE.lookup(name).ok_or(RuleError::Unknown)?;
            self.change(sub_id, true);
        }
        Ok(())
    }

    /// Whether this selector allows the whole request (Redis's `ACLSelectorCheckCmd`).
    pub fn check(&self, req: &Request<'_>) -> Result<(), Denied> {
        if !self.all_commands && !req.no_auth && !self.bit(req.id) {
            let allowed = req.args.len() >= 2
                && self
                    .first_args
                    .get(&req.id)
                    .is_some_and(|l| l.iter().any(|a| a.eq_ignore_ascii_case(req.args.get(1))));
            if !allowed {
                return Err(Denied::Command);
            }
        }
        if !self.all_keys {
            for (n, &i) in req.keys.iter().enumerate() {
                let need = if n == 0 {
                    req.key_access.0
                } else {
                    req.key_access.1
                };
                if !self.key_allowed(req.args.get(i), need) {
                    return Err(Denied::Key(i));
                }
            }
        }
        if !self.all_channels {
            for &(i, pattern) in &req.channels {
                if !self.channel_allowed(req.args.get(i), pattern) {
                    return Err(Denied::Channel(i));
                }
            }
        }
        Ok(())
    }

    /// Whether a key may be accessed as `need` (read and/or write) says.
    pub fn key_allowed(&self, key: &[u8], need: u8) -> bool {
        self.all_keys
            || self
                .patterns
                .iter()
                .any(|p| p.access & need == need && crate::glob::matches(&p.pattern, key, false))
    }

    /// Whether every key may be accessed as `need` says: `allkeys`, or a `*` pattern with
    /// that access.
    pub fn key_allowed_everywhere(&self, need: u8) -> bool {
        self.all_keys
            || self
                .patterns
                .iter()
                .any(|p| p.access & need == need && p.pattern == b"*")
    }

    /// A channel is matched against the patterns; a PSUBSCRIBE pattern must equal one.
    pub fn channel_allowed(&self, channel: &[u8], pattern: bool) -> bool {
        self.all_channels
            || self.channels.iter().any(|p| {
                if pattern {
                    p == channel
                } else {
                    crate::glob::matches(p, channel, false)
                }
            })
    }

    /// Keys (`~* ` or each pattern), channels, then command rules: the selector as ACL LIST
    /// prints it.
    pub fn describe(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.all_keys {
            out.extend_from_slice(b"~* ");
        } else {
            for p in &self.patterns {
                p.describe(&mut out);
                out.push(b' ');
            }
        }
        if self.all_channels {
            out.extend_from_slice(b"&* ");
        } else {
            out.extend_from_slice(b"resetchannels ");
            for c in &self.channels {
                out.push(b'&');
                out.extend_from_slice(c);
                out.push(b' ');
            }
        }
        out.extend_from_slice(self.describe_commands().as_bytes());
        out
    }

    /// GETUSER's `keys` field: the patterns separated by spaces.
    pub fn describe_keys(&self) -> Vec<u8> {
        if self.all_keys {
            return b"~*".to_vec();
        }
        join(self.patterns.iter().map(|p| {
            let mut out = Vec::new();
            p.describe(&mut out);
            out
        }))
    }

    /// GETUSER's `channels` field.
    pub fn describe_channels(&self) -> Vec<u8> {
        if self.all_channels {
            return b"&*".to_vec();
        }
        join(self.channels.iter().map(|c| [&b"&"[..], c].concat()))
    }

    /// The command rules that rebuild this selector's command set, as Redis 7.0 finds them:
    /// `+@all` or `-@all`, then the categories that fit best, one at a time, then single
    /// commands for what is left (in name order; Redis's own order follows its hash table).
    pub fn describe_commands(&self) -> String {
        let additive = !self.future_commands;
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::new();
        fake.set_all(!additive);
        let mut temp = Selector::new();
        temp.commands = self.commands;
        let names = crate::acl::categories::NAMES;
        let mut applied = vec![false; names.len()];
        loop {
            let mut best = None;
            let (mut min_diff, mut max_same) = (usize::MAX, 0);
            for (j, _) in names.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(1 << j);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < min_diff || (diff == min_diff && same > max_same)) {
                    best = Some(j);
                    min_diff = diff;
                    max_same = same;
                }
            }
            let Some(j) = best else { break };
            fake.change_category(1 << j, additive);
            temp.change_category(1 << j, !additive);
            rules.push(if additive { '+' } else { '-' });
            rules.push('@');
            rules.push_str(names[j]);
            rules.push(' ');
            applied[j] = true;
        }
        for (id, c) in UNIVERSE.commands.iter().enumerate() {
            let user = self.bit(id);
            if user != fake.bit(id) {
                rules.push(if user { '+' } else { '-' });
                rules.push_str(c.full);
                rules.push(' ');
                fake.change(id, user);
            }
            if !user && let Some(args) = self.first_args.get(&id) {
                for a in args {
                    rules.push('+');
                    rules.push_str(c.full);
                    rules.push('|');
                    rules.push_str(&String::from_utf8_lossy(a));
                    rules.push(' ');
                }
            }
        }
        rules.pop();
        rules
    }

    /// Commands of a category this selector allows and denies.
    fn count_category(&self, cat: u32) -> (usize, usize) {
        let mut counts = (0, 0);
        for (id, c) in UNIVERSE.commands.iter().enumerate() {
            if c.categories & cat != 0 {
                if self.bit(id) {
                    counts.0 += 1;
                } else {
                    counts.1 += 1;
                }
            }
        }
        counts
    }
}

impl Default for Selector {
    fn default() -> Self {
        Selector::new()
    }
}

/// Items separated by single spaces.
fn join(items: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    items.collect::<Vec<_>>().join(&b' ')
}

/// Redis refuses spaces and NUL in usernames and patterns (`ACLStringHasSpaces`).
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter()
        .any(|&c| c == 0 || c == b' ' || (b'\t'..=b'\r').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Rules drawn from categories, commands, subcommands, first arguments and the `all`
    /// forms.
    fn rule() -> impl Strategy<Value = String> {
        let cats = crate::acl::categories::NAMES;
        let names: Vec<&'static str> = UNIVERSE.commands.iter().map(|c| c.full).collect();
        prop_oneof![
            (any::<bool>(), 0..cats.len()).prop_map(move |(on, i)| format!(
                "{}@{}",
                if on { '+' } else { '-' },
                cats[i]
            )),
            (any::<bool>(), 0..names.len()).prop_map(move |(on, i)| format!(
                "{}{}",
                if on { '+' } else { '-' },
                names[i]
            )),
            Just("+select|0".to_string()),
            Just("allcommands".to_string()),
            Just("nocommands".to_string()),
        ]
    }

    proptest! {
        /// Redis checks that its description rebuilds the exact command set, and aborts
        /// otherwise; here it is a property.
        #[test]
        fn a_description_rebuilds_the_same_commands(rules in proptest::collection::vec(rule(), 0..12)) {
            let mut s = Selector::new();
            for r in &rules {
                s.apply(r.as_bytes()).expect("valid rule");
            }
            let described = s.describe_commands();
            let mut again = Selector::new();
            for r in described.split(' ') {
                again.apply(r.as_bytes()).expect("a description is valid rules");
            }
            prop_assert_eq!(again.commands, s.commands, "{}", described);
            // First arguments matter only for a command not allowed as a whole (Redis keeps
            // them otherwise too, and describes them only then).
            let effective = |x: &Selector| {
                x.first_args
                    .iter()
                    .filter(|(id, _)| !x.bit(**id))
                    .map(|(id, a)| (*id, a.clone()))
                    .collect::<Vec<_>>()
            };
            prop_assert_eq!(effective(&again), effective(&s), "{}", described);
        }
    }

    #[test]
    fn read_and_write_patterns() {
        let mut s = Selector::new();
        for r in ["%R~r:*", "%W~w:*", "~both:*", "%W~r:*"] {
            s.apply(r.as_bytes()).expect("valid");
        }
        assert_eq!(s.describe_keys(), b"~r:* %W~w:* ~both:*".to_vec());
        assert!(s.key_allowed(b"w:1", W) && !s.key_allowed(b"w:1", R));
        assert!(s.key_allowed(b"r:1", RW) && !s.key_allowed(b"other", 0));
        assert_eq!(s.apply(b"%X~a"), Err(RuleError::Syntax));
        assert!(!s.key_allowed_everywhere(R));
    }
}
