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
    /// When the run started (Unix ms, the batch's clock), and the `busy-reply-threshold`
    /// after which it lets other clients in.
    pub started_ms: u64,
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
    /// FUNCTION libraries: apart from the EVAL cache, and kept by SCRIPT FLUSH.
    pub functions: Functions,
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

/// One function of a library (Redis's `functionInfo`).
#[derive(Debug)]
pub struct LibFunction {
    /// As registered: FCALL finds it whatever the case, FUNCTION LIST shows it as given.
    pub name: String,
    pub description: Option<Vec<u8>>,
    /// From `register_function{flags=...}`; never in compatibility mode.
    pub flags: ScriptFlags,
    pub function: mlua::Function,
}

/// A library loaded by FUNCTION LOAD (Redis's `functionLibInfo`).
#[derive(Debug)]
pub struct Library {
    pub name: String,
    /// The whole payload, shebang included: what FUNCTION LIST WITHCODE shows, FUNCTION
    /// DUMP and the RDB save, and what a load compiles again.
    pub code: Vec<u8>,
    /// By name (case-sensitive within a library, as Redis keeps them).
    pub functions: std::collections::BTreeMap<String, LibFunction>,
}

/// The loaded libraries and an index of their functions (Redis's `functionsLibCtx`).
/// Libraries are kept in name order, so FUNCTION LIST, DUMP and the RDB list them in a
/// stable order (Redis's follows its hash table).
#[derive(Debug, Default)]
pub struct Libraries {
    libraries: std::collections::BTreeMap<String, Library>,
    /// Lowercase function name -> its library: function names are unique across libraries
    /// regardless of case, as Redis's case-insensitive function table makes them.
    index: HashMap<String, String>,
}

impl Libraries {
    pub fn get(&self, name: &str) -> Option<&Library> {
        self.libraries.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Library> {
        self.libraries.values()
    }

    pub fn len(&self) -> usize {
        self.libraries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.libraries.is_empty()
    }

    /// Functions across all libraries (`number_of_functions`).
    pub fn function_count(&self) -> usize {
        self.index.len()
    }

    /// The function FCALL names, found case-insensitively.
    pub fn function(&self, name: &[u8]) -> Option<&LibFunction> {
        let key = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
        let lib = self.index.get(&key)?;
        self.libraries
            .get(lib)?
            .functions
            .values()
            .find(|f| f.name.eq_ignore_ascii_case(&key))
    }

    /// The library owning the function of this name (any case), if any.
    pub fn owner_of(&self, function: &str) -> Option<&str> {
        self.index
            .get(&function.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Adds a library; the caller has checked that neither its name nor its functions'
    /// names are taken.
    pub fn link(&mut self, lib: Library) {
        for f in lib.functions.keys() {
            self.index.insert(f.to_ascii_lowercase(), lib.name.clone());
        }
        self.libraries.insert(lib.name.clone(), lib);
    }

    /// Removes a library and its functions.
    pub fn unlink(&mut self, name: &str) -> Option<Library> {
        let lib = self.libraries.remove(name)?;
        for f in lib.functions.keys() {
            self.index.remove(&f.to_ascii_lowercase());
        }
        Some(lib)
    }

    /// Takes every library out, leaving the registry empty.
    pub fn take_all(&mut self) -> Vec<Library> {
        self.index.clear();
        std::mem::take(&mut self.libraries).into_values().collect()
    }

    /// Bytes of names, descriptions and code the registry holds (`used_memory_functions`,
    /// Redis's estimate of its function structures).
    pub fn overhead_bytes(&self) -> usize {
        self.libraries
            .values()
            .map(|l| {
                l.name.len()
                    + l.code.len()
                    + l.functions
                        .values()
                        .map(|f| f.name.len() + f.description.as_ref().map_or(0, Vec::len))
                        .sum::<usize>()
            })
            .sum()
    }
}

/// Redis 7.0's function engine: its own interpreter (SCRIPT FLUSH, which restarts EVAL's,
/// leaves it alone) and the libraries loaded into it.
#[derive(Debug, Default)]
pub struct Functions {
    /// Created on first use, like EVAL's.
    pub lua: Option<mlua::Lua>,
    pub libraries: Libraries,
}

impl Functions {
    /// Bytes held by the functions' Lua heap (`used_memory_vm_functions`).
    pub fn lua_memory(&self) -> usize {
        self.lua.as_ref().map_or(0, mlua::Lua::used_memory)
    }
}
