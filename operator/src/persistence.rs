//! The persistence policy: what a node keeps on its volume (RDB snapshots, the append-only
//! file, or both) and how often the AOF is fsynced, from spec.persistence. Pure: no
//! network.
//!
//! Default with a volume: both, the AOF with `appendfsync everysec` and the RDB preamble
//! (a rewrite writes an RDB base, so a restart loads it at RDB speed and replays only what
//! came after), plus Redis's snapshot schedule: the AOF bounds what a pod restart loses to
//! about the last second, and the snapshot keeps the replication id and offset a restarted
//! node reports before the operator chooses a master (docs/operations.md). Without a volume
//! nothing is written: a pod's files would not survive it.

use crate::crd::{Appendfsync, PersistenceMode, PersistenceSpec, PersistenceStatus};

/// What the nodes of a set keep, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistencePlan {
    /// `None`: no volume, nothing is written.
    pub mode: Option<PersistenceMode>,
    pub appendfsync: Appendfsync,
    /// For humans: the choice and where it came from.
    pub reason: String,
}

impl PersistencePlan {
    /// Whether nodes write the AOF (and so load it at start-up).
    pub fn aof(&self) -> bool {
        matches!(
            self.mode,
            Some(PersistenceMode::Aof | PersistenceMode::Both)
        )
    }

    /// Whether nodes take RDB snapshots at the `save` points.
    pub fn snapshots(&self) -> bool {
        matches!(
            self.mode,
            Some(PersistenceMode::Rdb | PersistenceMode::Both)
        )
    }

    /// status.persistence: the mode, the fsync policy when the AOF is on, the reason.
    pub fn status(&self) -> PersistenceStatus {
        PersistenceStatus {
            mode: self.mode,
            appendfsync: self.aof().then_some(self.appendfsync),
            reason: self.reason.clone(),
        }
    }

    /// The AOF directives in redis.conf syntax (`save` is the caller's: a user may set it).
    pub fn directives(&self) -> Vec<(&'static str, String)> {
        let fsync = match self.appendfsync {
            Appendfsync::Always => "always",
            Appendfsync::Everysec => "everysec",
            Appendfsync::No => "no",
        };
        vec![
            (
                "appendonly",
                if self.aof() { "yes" } else { "no" }.to_owned(),
            ),
            ("appendfsync", fsync.to_owned()),
            ("aof-use-rdb-preamble", "yes".to_owned()),
        ]
    }
}

/// The plan for a resource's spec.persistence.
pub fn for_spec(p: &PersistenceSpec) -> PersistencePlan {
    plan(p.enabled, p.mode, p.appendfsync)
}

/// The plan for a set with (`enabled`) or without a volume and the fields the user set.
pub fn plan(
    enabled: bool,
    mode: Option<PersistenceMode>,
    appendfsync: Option<Appendfsync>,
) -> PersistencePlan {
    let fsync = appendfsync.unwrap_or(Appendfsync::Everysec);
    if !enabled {
        return PersistencePlan {
            mode: None,
            appendfsync: fsync,
            reason: "persistence: none, no volume (nothing is written to disk)".to_owned(),
        };
    }
    let chosen = mode.unwrap_or(PersistenceMode::Both);
    let what = match chosen {
        PersistenceMode::Rdb => "RDB snapshots".to_owned(),
        PersistenceMode::Aof => format!("AOF ({}, RDB preamble)", fsync_name(fsync)),
        PersistenceMode::Both => format!(
            "AOF ({}, RDB preamble) and RDB snapshots",
            fsync_name(fsync)
        ),
    };
    let why = match (mode, appendfsync) {
        (None, None) => {
            ": the default, a restart loses at most about the last second, the snapshot keeps the replication offset"
        }
        _ => " as spec.persistence asks",
    };
    PersistencePlan {
        mode: Some(chosen),
        appendfsync: fsync,
        reason: format!("persistence: {what}{why}"),
    }
}

fn fsync_name(f: Appendfsync) -> &'static str {
    match f {
        Appendfsync::Always => "appendfsync always",
        Appendfsync::Everysec => "appendfsync everysec",
        Appendfsync::No => "appendfsync no",
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn status_shows_the_mode_and_the_fsync_only_with_the_aof() {
        let both = plan(true, None, None).status();
        assert_eq!(both.mode, Some(PersistenceMode::Both));
        assert_eq!(both.appendfsync, Some(Appendfsync::Everysec));
        assert!(both.reason.contains("the default"), "{}", both.reason);
        let rdb = plan(true, Some(PersistenceMode::Rdb), Some(Appendfsync::Always)).status();
        assert_eq!(
            (rdb.mode, rdb.appendfsync),
            (Some(PersistenceMode::Rdb), None)
        );
        let none = plan(false, Some(PersistenceMode::Aof), None).status();
        assert_eq!((none.mode, none.appendfsync), (None, None));
        assert!(none.reason.contains("no volume"), "{}", none.reason);
    }

    use super::*;

    #[test]
    fn a_volume_gets_the_aof_everysec_and_snapshots() {
        let p = plan(true, None, None);
        assert_eq!(p.mode, Some(PersistenceMode::Both));
        assert!(p.aof() && p.snapshots());
        assert_eq!(
            p.directives(),
            [
                ("appendonly", "yes".to_owned()),
                ("appendfsync", "everysec".to_owned()),
                ("aof-use-rdb-preamble", "yes".to_owned()),
            ]
        );
        assert!(p.reason.contains("the default"), "{}", p.reason);
    }

    #[test]
    fn no_volume_writes_nothing_and_the_user_choice_wins() {
        let p = plan(false, Some(PersistenceMode::Aof), None);
        assert!(!p.aof() && !p.snapshots());
        assert_eq!(p.directives()[0], ("appendonly", "no".to_owned()));
        let p = plan(true, Some(PersistenceMode::Rdb), None);
        assert!(!p.aof() && p.snapshots());
        let p = plan(true, Some(PersistenceMode::Aof), Some(Appendfsync::Always));
        assert!(p.aof() && !p.snapshots());
        assert_eq!(p.directives()[1], ("appendfsync", "always".to_owned()));
        assert_eq!(
            p.reason,
            "persistence: AOF (appendfsync always, RDB preamble) as spec.persistence asks"
        );
    }
}
