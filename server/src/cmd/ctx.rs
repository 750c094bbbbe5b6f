//! The context a command handler runs in: the server state, the calling client, the reply
//! buffer, and the keyspace accessors that apply Redis's rules (lazy expiry, hit/miss stats,
//! access clocks) so handlers cannot forget them.

use super::CmdError;
use crate::client::{Client, OwnedArgs};
use crate::keyspace::{Db, Entry, SmallBytes, Value};
use crate::notify::class;
use crate::protocol::Args;
use crate::protocol::Reply;
use crate::state::Server;
use crate::state::blocking::Block;
use crate::state::scripting::ScriptRun;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// What a write command sends to replicas.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Propagate {
    /// The command as received (the usual case).
    #[default]
    Verbatim,
    /// The command as received, even if the change counter did not move (FLUSHALL, whose
    /// save resets the counter) or the command is not a write (PFCOUNT writing its cache).
    Always,
    /// Nothing (the write changed nothing, or it was already propagated piecewise).
    Nothing,
    /// These commands instead, in order (e.g. `SET k v PXAT <abs>` for `SET k v EX 10`).
    Rewrite(Vec<Vec<Vec<u8>>>),
}

/// How a script's command reaches the executor (Redis's `scriptCall`): the executor hands
/// itself to handlers through this, so commands that run scripts need not import it.
pub type ScriptCall =
    fn(&mut Server, &mut Client, &mut ScriptRun, Args<'_>, &mut Vec<u8>) -> Result<(), String>;

pub struct Ctx<'a> {
    pub srv: &'a mut Server,
    pub client: &'a mut Client,
    pub reply: Reply<'a>,
    /// Wall clock for this command, in Unix milliseconds: one command sees one instant.
    pub now_ms: u64,
    pub block: Option<Block>,
    /// The command a client that blocks re-runs when woken, when not the one it sent
    /// (XREAD with `$` waits for entries after the ids `$` stood for when it blocked).
    pub block_command: Option<OwnedArgs>,
    pub propagate: Propagate,
    /// The keys a write changed, when not all of its key arguments (SINTERSTORE changes only
    /// its destination): WATCH and blocked clients are signalled for these alone.
    pub touched: Option<Vec<Vec<u8>>>,
    /// False while EXEC runs queued commands (Redis's CLIENT_DENY_BLOCKING): a blocking
    /// command that finds nothing must answer at once instead of setting [`Ctx::block`].
    pub may_block: bool,
    /// True while a script runs the command (Redis's CLIENT_SCRIPT): SORT then orders what
    /// it would otherwise return in a set's unspecified order.
    pub from_script: bool,
    /// Set when the command is re-run for a blocked client because this key (of the
    /// client's database) was written: the command should serve from this key, as Redis
    /// serves blocked clients from the key that became ready, or block again.
    pub woken_by: Option<SmallBytes>,
    /// Runs a command for a script (EVAL, FCALL).
    pub script_call: ScriptCall,
}

impl<'a> Ctx<'a> {
    pub fn new(
        srv: &'a mut Server,
        client: &'a mut Client,
        out: &'a mut Vec<u8>,
        script_call: ScriptCall,
    ) -> Self {
        let now_ms = srv.now_ms;
        let proto = client.proto;
        Ctx {
            srv,
            client,
            reply: Reply::new(out, proto),
            now_ms,
            block: None,
            block_command: None,
            propagate: Propagate::Verbatim,
            touched: None,
            may_block: true,
            from_script: false,
            woken_by: None,
            script_call,
        }
    }

    /// The client's current database.
    pub fn db(&mut self) -> &mut Db {
        self.srv.keyspace.db_mut(self.client.db)
    }

    /// The slot of a live key in the current database, deleting it first if it has expired
    /// (on a master; a replica waits for the master's DEL but still reports it missing).
    pub fn find(&mut self, key: &[u8]) -> Option<u32> {
        let db = self.client.db;
        self.srv.find_live(db, key, self.now_ms)
    }

    /// Looks a key up for a read command: counts a keyspace hit or miss and refreshes the
    /// access clock. Returns the slot.
    pub fn read(&mut self, key: &[u8]) -> Option<u32> {
        let found = self.read_untouched(key);
        if let Some(i) = found {
            let clock = self.srv.access_clock(self.now_ms);
            self.db().touch(i, |a| clock.touch(a));
        }
        found
    }

    /// Looks a key up as Redis's `LOOKUP_NOTOUCH` reads do (EXISTS, TYPE, TTL, OBJECT):
    /// counts a keyspace hit or miss but leaves the access clock alone. Returns the slot.
    pub fn read_untouched(&mut self, key: &[u8]) -> Option<u32> {
        let found = self.read_quietly(key);
        if found.is_none() {
            self.notify(class::KEY_MISS, "keymiss", key);
        }
        found
    }

    /// [`Ctx::read_untouched`] without the `keymiss` event (Redis's `LOOKUP_NONOTIFY`, as
    /// OBJECT looks keys up).
    pub fn read_quietly(&mut self, key: &[u8]) -> Option<u32> {
        let found = self.find(key);
        match found {
            Some(_) => self.srv.stats.keyspace_hits += 1,
            None => self.srv.stats.keyspace_misses += 1,
        }
        found
    }

    /// Reads a key's value for a read command (see [`Ctx::read`]).
    pub fn get(&mut self, key: &[u8]) -> Option<&Value> {
        let i = self.read(key)?;
        Some(&self.db().entry(i).value)
    }

    /// A generator seeded from the server's one, for the random draws of a command: it can
    /// run while the keyspace is borrowed, and every draw still comes from one source. It is
    /// of another algorithm than the server's (ChaCha from xoshiro), as a generator seeded
    /// from one of its own kind may produce a correlated stream.
    pub fn rng(&mut self) -> StdRng {
        StdRng::from_rng(&mut self.srv.rng)
    }

    /// The current database and the reply writer at once, so a value can be written out
    /// without copying it.
    pub fn db_and_reply(&mut self) -> (&mut Db, &mut Reply<'a>) {
        (self.srv.keyspace.db_mut(self.client.db), &mut self.reply)
    }

    /// Reads a key that must hold a string.
    ///
    /// # Errors
    /// WRONGTYPE when it holds another type.
    pub fn get_str(&mut self, key: &[u8]) -> Result<Option<&SmallBytes>, CmdError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            #[allow(unreachable_patterns)]
            Some(_) => Err(CmdError::WrongType),
        }
    }

    /// A key's entry for writing, without hit/miss accounting (write commands don't count).
    pub fn entry_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let i = self.find_for_write(key)?;
        Some(self.db().entry_mut(i))
    }

    /// Looks a key up for a write command (Redis's `lookupKeyWrite`): no hit/miss
    /// accounting, the access clock refreshed. Returns the slot.
    pub fn find_for_write(&mut self, key: &[u8]) -> Option<u32> {
        let i = self.find(key)?;
        let clock = self.srv.access_clock(self.now_ms);
        self.db().touch(i, |a| clock.touch(a));
        Some(i)
    }

    /// Stores `value` at `key`; an existing key keeps its expiry only when `keep_ttl`.
    /// Returns the slot.
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool) -> u32 {
        let clock = self.srv.access_clock(self.now_ms);
        match self.find(key) {
            Some(i) => {
                let db = self.db();
                let e = db.entry_mut(i);
                e.value = value;
                // Redis's lookupKeyWrite touches the old object and the new value keeps its
                // access data.
                e.access = clock.touch(e.access);
                if !keep_ttl {
                    db.set_expire(i, None);
                }
                i
            }
            None => {
                let mut e = Entry::new(SmallBytes::new(key), value);
                e.access = clock.fresh();
                self.notify(class::NEW, "new", key);
                self.db().insert(e)
            }
        }
    }

    /// Deletes a key; true when it existed (and had not expired).
    pub fn delete(&mut self, key: &[u8]) -> bool {
        match self.find(key) {
            Some(i) => {
                self.db().remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Reads a key that must hold a string for a write command (Redis's `lookupKeyWrite`:
    /// no hit/miss accounting, no `keymiss` event).
    ///
    /// # Errors
    /// WRONGTYPE when it holds another type.
    pub fn get_str_for_write(&mut self, key: &[u8]) -> Result<Option<&SmallBytes>, CmdError> {
        match self.entry_mut(key).map(|e| &e.value) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s)),
            #[allow(unreachable_patterns)]
            Some(_) => Err(CmdError::WrongType),
        }
    }

    /// Raises a keyspace notification for `key` of the client's database (Redis's
    /// `notifyKeyspaceEvent`), published when the command is done.
    pub fn notify(&mut self, class: u16, event: &'static str, key: &[u8]) {
        self.srv.notify(class, event, self.client.db, key);
    }

    /// Records `n` changes for `rdb_changes_since_last_save` and save points.
    pub fn dirty(&mut self, n: u64) {
        self.srv.dirty += n;
    }

    /// Declares that this write changed only `key` (among its key arguments).
    pub fn touched_only(&mut self, key: &[u8]) {
        self.touched = Some(vec![key.to_vec()]);
    }

    /// Asks the dispatcher to propagate nothing for this command.
    pub fn no_propagate(&mut self) {
        self.propagate = Propagate::Nothing;
    }

    /// Asks the dispatcher to propagate these commands instead of the one received.
    pub fn rewrite(&mut self, commands: Vec<Vec<Vec<u8>>>) {
        self.propagate = Propagate::Rewrite(commands);
    }
}
