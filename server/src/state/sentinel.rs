//! What the Sentinel endpoint (`crate::sentinel`) shares with the rest of the server: the
//! `+switch-master` announcements made when this node's view of the master changes.

/// A master address as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterAddr {
    /// This node is the master: each connection renders its own reachable address.
    Own,
    /// The master this replica follows (`replicaof`).
    Remote(String, u16),
}

/// This node's view of the master moved from `old` to `new` (a promotion, a REPLICAOF).
#[derive(Debug, Clone)]
pub struct SwitchMaster {
    pub old: MasterAddr,
    pub new: MasterAddr,
}
