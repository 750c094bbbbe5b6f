//! Live tuning: which `CONFIG SET`s bring a node to the plan's directives
//! ([`crate::policy::Plan::directives`]), from what its `CONFIG GET` says. Every node gets the same plan (Invariant 1: any node can become master). Pure.

use std::collections::HashMap;

/// The `(name, value)` pairs to CONFIG SET so that `current` (a node's CONFIG GET) matches
/// `wanted`; empty when the node is in line. A directive the node does not report is set.
pub fn changes(
    wanted: &[(&'static str, String)],
    current: &HashMap<String, String>,
) -> Vec<(&'static str, String)> {
    wanted
        .iter()
        .filter(|(name, value)| {
            current
                .get(*name)
                .is_none_or(|have| !same(name, value, have))
        })
        .cloned()
        .collect()
}

/// Compares a wanted value with what CONFIG GET prints: numbers as numbers, and for
/// client-output-buffer-limit only the replica class (GET prints every class, and names
/// the replica class `slave`); notify-keyspace-events as a set of classes, save word by
/// word.
fn same(name: &str, wanted: &str, have: &str) -> bool {
    if name == "client-output-buffer-limit" {
        return replica_class(wanted).is_some() && replica_class(wanted) == replica_class(have);
    }
    if name == "notify-keyspace-events" {
        // CONFIG GET prints the classes in its own order.
        let sorted = |v: &str| {
            let mut c: Vec<char> = v.chars().collect();
            c.sort_unstable();
            c
        };
        return sorted(wanted) == sorted(have);
    }
    if name == "save" {
        return wanted.split_whitespace().eq(have.split_whitespace());
    }
    match (wanted.parse::<u64>(), have.parse::<u64>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => wanted.eq_ignore_ascii_case(have),
    }
}

/// The `hard soft seconds` of the replica class in a client-output-buffer-limit value.
fn replica_class(value: &str) -> Option<[u64; 3]> {
    let words: Vec<&str> = value.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.eq_ignore_ascii_case("replica") || w.eq_ignore_ascii_case("slave"))?;
    let mut out = [0; 3];
    for (slot, word) in out.iter_mut().zip(words.get(at + 1..at + 4)?) {
        *slot = word.parse().ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicyInput, plan};
    use crate::quantity::GIB;

    fn get(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_fresh_node_gets_every_directive_and_a_tuned_node_none() {
        let p = plan(&PolicyInput {
            dataset_size_hint: 20 * GIB,
            replicas: 3,
            ..PolicyInput::default()
        });
        let w = p.directives();
        let defaults = get(&[
            ("repl-diskless-sync", "no"),
            ("repl-timeout", "60"),
            (
                "client-output-buffer-limit",
                "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
            ),
        ]);
        let all = changes(&w, &defaults);
        assert_eq!(all.len(), w.len(), "{all:?}");

        let tuned: HashMap<String, String> = w
            .iter()
            .map(|(k, v)| {
                let v = if *k == "client-output-buffer-limit" {
                    format!(
                        "normal 0 0 0 {} pubsub 33554432 8388608 60",
                        v.replace("replica", "slave")
                    )
                } else {
                    v.clone()
                };
                ((*k).to_owned(), v)
            })
            .collect();
        assert_eq!(changes(&w, &tuned), []);
    }

    #[test]
    fn only_what_differs_is_set() {
        let w = vec![
            ("repl-timeout", "2100".to_owned()),
            ("repl-diskless-sync", "yes".to_owned()),
            ("client-output-buffer-limit", "replica 1024 0 0".to_owned()),
        ];
        let current = get(&[
            ("repl-timeout", "2100"),
            ("repl-diskless-sync", "YES"),
            (
                "client-output-buffer-limit",
                "normal 0 0 0 slave 1024 0 1 pubsub 0 0 0",
            ),
        ]);
        assert_eq!(
            changes(&w, &current),
            [("client-output-buffer-limit", "replica 1024 0 0".to_owned())]
        );
    }
}
