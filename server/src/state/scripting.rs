//! The scripting records: the Lua interpreter, the EVAL script cache, and the run in
//! progress. What a script may do and how its commands run is the business of
//! [`crate::scripting`] and the executor; this is only what they share.

use hashbrown::HashMap;

/// The flags a script declares in its `#!lua flags=...` line (Redis 7.0's `SCRIPT_FLAG_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScriptFlags {
    /// No shebang: the script runs as before Redis 7.0 (flags come from the commands it calls).
    pub compat: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
    pub allow_stale: bool,
    pub no_cluster: bool,
    pub allow_cross_slot: bool,
}

/// One cached EVAL script: its source (SCRIPT LOAD's body, kept for memory accounting and
/// for the interpreter's reset) and its compiled function.
#[derive(Debug)]
pub struct Script {
    pub body: Vec<u8>,
    pub flags: ScriptFlags,
    pub function: mlua::Function,
}

/// The script running now, as the commands it calls see it (Redis's `scriptRunCtx`).
#[derive(Debug, Clone, Default)]
pub struct ScriptRun {
    /// EVAL_RO, FCALL_RO, or a `no-writes` script: write commands are refused.
    pub read_only: bool,
    /// `allow-oom`: commands that may grow memory run even over `maxmemory`.
    pub allow_oom: bool,
    /// The script has run a write: it can no longer be refused halfway (OOM, replica state)
    /// nor killed.
    pub wrote: bool,
    /// `redis.set_repl`: whether its writes reach replicas.
    pub replicate: bool,
    /// `redis.setresp`: the protocol the script's commands reply in.
    pub resp3: bool,
    /// The memory was over `maxmemory` when the script started (Redis checks OOM once, before
    /// the first write).
    pub oom_at_start: bool,
    /// The script's database: SELECT inside a script changes it, never the caller's.
    pub db: usize,
    /// EVAL (as opposed to FCALL): which KILL stops it and which BUSY text others get.
    pub eval: bool,
    /// The caller is our master: the script cannot be killed.
    pub from_master: bool,
    /// When the run started, and the `busy-reply-threshold` after which it lets other
    /// clients in.
    pub started: Option<std::time::Instant>,
    pub busy_threshold_ms: u64,
    /// The run passed the threshold (it was logged as slow; other clients get BUSY).
    pub timed_out: bool,
    /// SCRIPT KILL / FUNCTION KILL was accepted: the script fails at its next instruction
    /// check.
    pub killed: bool,
}

/// Scripting state of the server.
#[derive(Debug, Default)]
pub struct Scripts {
    /// Created on first use: a server that never runs a script pays nothing for it.
    pub lua: Option<mlua::Lua>,
    /// EVAL scripts by lowercase hex SHA1.
    pub cache: HashMap<[u8; 40], Script>,
    /// Bytes of cached script bodies and names (`used_memory_scripts_eval`).
    pub cache_bytes: usize,
}

impl Scripts {
    /// SCRIPT FLUSH: forgets every script and drops the interpreter with them, as Redis
    /// restarts its Lua state (globals a script may have left behind go too).
    pub fn flush(&mut self) {
        self.cache.clear();
        self.cache_bytes = 0;
        self.lua = None;
    }

    /// Bytes held by the Lua heap (`used_memory_lua`).
    pub fn lua_memory(&self) -> usize {
        self.lua.as_ref().map_or(0, mlua::Lua::used_memory)
    }
}
