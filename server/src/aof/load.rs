//! Loading the AOF at start-up (and for DEBUG LOADAOF) as Redis 7.0's `loadAppendOnlyFiles`:
//! the manifest names a base file (an RDB, or commands) and incremental files; each is
//! loaded in order in the LOADING state, the commands replayed through the executor by a
//! client of its own.
//!
//! A file that ends in the middle of a command (a crash during a write) is truncated to its
//! last whole command and loaded when it is the last file and `aof-load-truncated yes`, as
//! Redis does; an unfinished MULTI at the end is dropped the same way. Anything else (a
//! format error, an unknown command, a truncated file that is not the last, a missing
//! file, a bad manifest) refuses the load with an error naming the file and the byte
//! offset, and the server exits: it never serves part of a dataset.
//!
//! The command reader ([`CommandReader`]) is pure over any `BufRead`, so the fuzz target and
//! the tests drive it directly.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::Instant;

use tracing::{info, warn};

use crate::aof::manifest::{Manifest, ManifestError, manifest_name};
use crate::client::Client;
use crate::persistence::load::{Access, LoadError, load_items};
use crate::rdb::RdbReader;
use crate::state::Server;
use crate::state::persistence::Loading;

/// Commands replayed between two yields to the clients.
const BATCH: usize = 1024;

/// Why the AOF was refused.
#[derive(Debug, thiserror::Error)]
pub enum AofLoadError {
    #[error("Fatal error: can't open the AOF manifest file {name} for reading: {source}")]
    ManifestRead {
        name: String,
        source: std::io::Error,
    },
    #[error("*** FATAL AOF MANIFEST FILE ERROR *** {0}")]
    Manifest(#[from] ManifestError),
    #[error("The append log file {name} doesn't exist")]
    Missing { name: String },
    #[error("Fatal error: can't open the append log file {name} for reading: {source}")]
    Open {
        name: String,
        source: std::io::Error,
    },
    #[error("Error reading the RDB base file {name}, AOF loading aborted: {source}")]
    Rdb { name: String, source: LoadError },
    #[error(
        "Bad file format reading the append only file {name} at byte {offset}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
    )]
    Format { name: String, offset: u64 },
    #[error(
        "Unexpected end of file reading the append only file {name} at byte {offset}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
    )]
    Truncated { name: String, offset: u64 },
    #[error("Fatal error: the truncated file {name} is not the last file")]
    NotLast { name: String },
    #[error("Unknown command '{command}' reading the append only file {name} at byte {offset}")]
    UnknownCommand {
        command: String,
        name: String,
        offset: u64,
    },
    #[error("Unrecoverable error reading the append only file {name}: {source}")]
    Read {
        name: String,
        source: std::io::Error,
    },
    #[error("Error truncating the AOF file {name}: {source}")]
    Truncate {
        name: String,
        source: std::io::Error,
    },
}

/// Reads `appenddirname/<appendfilename>.manifest`; an empty manifest when the directory
/// or the file does not exist (nothing to load).
///
/// # Errors
/// The manifest exists but cannot be read or is not valid.
pub fn read_manifest(dir: &Path, appendfilename: &str) -> Result<Manifest, AofLoadError> {
    let name = manifest_name(appendfilename);
    match std::fs::read(dir.join(&name)) {
        Ok(text) => Ok(Manifest::parse(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
        Err(source) => Err(AofLoadError::ManifestRead { name, source }),
    }
}

/// One step of the command reader.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A command, and the offset just after it.
    Command(Vec<Vec<u8>>, u64),
    /// The input ended cleanly.
    End,
    /// The input ended inside a command.
    Truncated,
    /// Bytes that are not the AOF format, at this offset.
    Format(u64),
}

/// Reads commands in the AOF format as Redis's loader does: `#` lines are annotations,
/// `*<argc>` then `$<len>` lines with the argument and its CRLF.
pub struct CommandReader<R> {
    input: R,
    offset: u64,
    line: Vec<u8>,
}

impl<R: BufRead> CommandReader<R> {
    /// `offset` is where `input` starts in the file.
    pub fn new(input: R, offset: u64) -> Self {
        CommandReader {
            input,
            offset,
            line: Vec::new(),
        }
    }

    /// Reads a line; `Ok(false)` at the end of the input.
    fn read_line(&mut self) -> std::io::Result<bool> {
        self.line.clear();
        let n = self.input.read_until(b'\n', &mut self.line)?;
        self.offset += n as u64;
        Ok(n > 0)
    }

    /// The next command.
    ///
    /// # Errors
    /// Only I/O errors of the input.
    pub fn next_step(&mut self) -> std::io::Result<Step> {
        let start = loop {
            let at = self.offset;
            if !self.read_line()? {
                return Ok(Step::End);
            }
            if self.line.first() != Some(&b'#') {
                break at;
            }
        };
        if self.line.first() != Some(&b'*') {
            return Ok(Step::Format(start));
        }
        if self.line.len() == 1 {
            return Ok(Step::Truncated);
        }
        let argc = atoi(&self.line[1..]);
        if argc < 1 {
            return Ok(Step::Format(start));
        }
        let mut argv = Vec::with_capacity(argc.min(1024) as usize);
        for _ in 0..argc {
            let at = self.offset;
            if !self.read_line()? {
                return Ok(Step::Truncated);
            }
            if self.line.first() != Some(&b'$') {
                return Ok(Step::Format(at));
            }
            let len = usize::try_from(atoi(&self.line[1..]).max(0)).unwrap_or(0);
            let mut arg = Vec::new();
            let got = (&mut self.input).take(len as u64).read_to_end(&mut arg)?;
            self.offset += got as u64;
            if got < len {
                return Ok(Step::Truncated);
            }
            let mut crlf = Vec::with_capacity(2);
            let got = (&mut self.input).take(2).read_to_end(&mut crlf)?;
            self.offset += got as u64;
            if got < 2 {
                return Ok(Step::Truncated);
            }
            argv.push(arg);
        }
        Ok(Step::Command(argv, self.offset))
    }
}

/// C's `atoi`/`strtol` on a line: optional sign, leading digits, 0 when there are none.
fn atoi(s: &[u8]) -> i64 {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg { -n } else { n }
}

/// How one file ended.
#[derive(Debug, PartialEq, Eq)]
enum FileEnd {
    Ok,
    Empty,
    /// Truncated at this offset (loaded up to it).
    Truncated(u64),
}

/// Loads the files of `manifest` from `dir` into the (empty) keyspace. Returns whether
/// anything was loaded.
///
/// # Errors
/// The AOF is refused; the keyspace is emptied again.
pub async fn load(
    access: &mut Access<'_>,
    dir: &Path,
    manifest: &Manifest,
) -> Result<bool, AofLoadError> {
    let files: Vec<_> = manifest.load_order().cloned().collect();
    if files.is_empty() {
        return Ok(false);
    }
    let mut total = 0;
    for f in &files {
        match std::fs::metadata(dir.join(&f.name)) {
            Ok(md) => total += md.len(),
            Err(_) => {
                let name = f.name.clone();
                warn!("The append log file {name} doesn't exist");
                return Err(AofLoadError::Missing { name });
            }
        }
    }
    if total == 0 {
        return Ok(false);
    }
    let started = Instant::now();
    access.with(|srv| {
        srv.persistence.loading = Some(Loading {
            start_unix: crate::clock::now_ms() / 1000,
            started,
            total_bytes: total,
            loaded_bytes: 0,
            rdb_used_mem: 0,
        });
    });
    let mut done_bytes = 0;
    let mut res = Ok(true);
    for (i, f) in files.iter().enumerate() {
        let last = i + 1 == files.len();
        let t = Instant::now();
        let kind = if i == 0 && manifest.base.is_some() {
            "base"
        } else {
            "incr"
        };
        match load_file(access, dir, &f.name, done_bytes).await {
            Ok(FileEnd::Truncated(_)) if !last => {
                warn!("Fatal error: the truncated file is not the last file");
                res = Err(AofLoadError::NotLast {
                    name: f.name.clone(),
                });
                break;
            }
            Ok(_) => info!(
                "DB loaded from {kind} file {}: {:.3} seconds",
                f.name,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                res = Err(e);
                break;
            }
        }
        done_bytes += std::fs::metadata(dir.join(&f.name)).map_or(0, |m| m.len());
    }
    access.with(|srv| {
        srv.persistence.loading = None;
        if res.is_err() {
            srv.keyspace.flush_all();
            srv.scripts.functions.libraries.take_all();
        } else {
            srv.dirty = 0;
            info!(
                "DB loaded from append only file: {:.3} seconds",
                started.elapsed().as_secs_f64()
            );
        }
    });
    res
}

/// Loads one file: an RDB (the base with the preamble, possibly followed by commands in an
/// old-style file) or commands.
async fn load_file(
    access: &mut Access<'_>,
    dir: &Path,
    name: &str,
    done_bytes: u64,
) -> Result<FileEnd, AofLoadError> {
    let path = dir.join(name);
    let file = File::open(&path).map_err(|source| AofLoadError::Open {
        name: name.to_string(),
        source,
    })?;
    if file.metadata().is_ok_and(|m| m.len() == 0) {
        return Ok(FileEnd::Empty);
    }
    let mut input = BufReader::with_capacity(1 << 20, file);
    let is_rdb = input
        .fill_buf()
        .map_err(|source| AofLoadError::Read {
            name: name.to_string(),
            source,
        })?
        .starts_with(b"REDIS");
    let end = if is_rdb {
        info!("Reading RDB base file on AOF loading...");
        let databases = access.with(|srv| srv.keyspace.num_dbs() as u32);
        let rdb_err = |source| AofLoadError::Rdb {
            name: name.to_string(),
            source,
        };
        let mut reader = RdbReader::new(input)
            .map_err(|e| rdb_err(e.into()))?
            .with_max_databases(databases);
        load_items(access, &mut reader).await.map_err(rdb_err)?;
        let offset = reader.offset();
        let (rest, head) = reader.into_parts();
        let tail = BufReader::new(std::io::Cursor::new(head).chain(rest));
        replay(access, name, CommandReader::new(tail, offset), done_bytes).await?
    } else {
        replay(access, name, CommandReader::new(input, 0), done_bytes).await?
    };
    if let FileEnd::Truncated(at) = end {
        let truncated = access.with(|srv| srv.config.aof_load_truncated);
        if !truncated {
            return Err(AofLoadError::Truncated {
                name: name.to_string(),
                offset: at,
            });
        }
        warn!("!!! Warning: short read while loading the AOF file {name}!!!");
        warn!("!!! Truncating the AOF {name} at offset {at} !!!");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(at))
            .map_err(|source| AofLoadError::Truncate {
                name: name.to_string(),
                source,
            })?;
        warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    }
    Ok(end)
}

/// Replays the commands of one file through the executor.
async fn replay<R: BufRead>(
    access: &mut Access<'_>,
    name: &str,
    mut reader: CommandReader<R>,
    done_bytes: u64,
) -> Result<FileEnd, AofLoadError> {
    let mut client = access.with(|srv| {
        let mut c = Client::new(srv.next_client_id(), None, None, false);
        c.is_master = true;
        c.authenticated = true;
        c
    });
    let mut marks = Marks {
        valid_up_to: reader.offset,
        valid_before_multi: reader.offset,
    };
    loop {
        let finished = access
            .with(|srv| replay_batch(srv, name, &mut reader, &mut client, &mut marks, done_bytes));
        if let Some(o) = finished {
            access.with(|srv| srv.unregister_client(&mut client));
            return o;
        }
        access.pause().await;
    }
}

/// The offsets a truncation goes back to: after the last whole command, and before the
/// open MULTI.
struct Marks {
    valid_up_to: u64,
    valid_before_multi: u64,
}

/// Replays up to [`BATCH`] commands; `Some` once the file ended or was refused.
fn replay_batch<R: BufRead>(
    srv: &mut Server,
    name: &str,
    reader: &mut CommandReader<R>,
    client: &mut Client,
    marks: &mut Marks,
    done_bytes: u64,
) -> Option<Result<FileEnd, AofLoadError>> {
    let read_err = |source| AofLoadError::Read {
        name: name.to_string(),
        source,
    };
    let mut sink = Vec::new();
    {
        // The executor refuses commands while loading; this client is the load itself.
        let loading = srv.persistence.loading.take();
        srv.now_ms = crate::clock::now_ms();
        let mut outcome = None;
        for _ in 0..BATCH {
            let step = match reader.next_step() {
                Ok(s) => s,
                Err(e) => {
                    outcome = Some(Err(read_err(e)));
                    break;
                }
            };
            let (argv, after) = match step {
                Step::Command(argv, after) => (argv, after),
                Step::End if client.multi.is_some() => {
                    warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
                    outcome = Some(Ok(FileEnd::Truncated(marks.valid_before_multi)));
                    break;
                }
                Step::End => {
                    outcome = Some(Ok(FileEnd::Ok));
                    break;
                }
                Step::Truncated => {
                    // Redis 7.0 cuts after the last whole command even inside a MULTI,
                    // leaving the MULTI open in the file: what it appends next would be
                    // queued into it and dropped by the next load. Cut before it.
                    let at = if client.multi.is_some() {
                        marks.valid_before_multi
                    } else {
                        marks.valid_up_to
                    };
                    outcome = Some(Ok(FileEnd::Truncated(at)));
                    break;
                }
                Step::Format(offset) => {
                    outcome = Some(Err(AofLoadError::Format {
                        name: name.to_string(),
                        offset,
                    }));
                    break;
                }
            };
            let Some(spec) = crate::cmd::names::lookup(&srv.commands, &argv[0]) else {
                let command = String::from_utf8_lossy(&argv[0]).into_owned();
                warn!("Unknown command '{command}' reading the append only file {name}");
                outcome = Some(Err(AofLoadError::UnknownCommand {
                    command,
                    name: name.to_string(),
                    offset: marks.valid_up_to,
                }));
                break;
            };
            if spec.name == "multi" {
                marks.valid_before_multi = marks.valid_up_to;
            }
            let mut buf = Vec::new();
            let mut ranges = Vec::with_capacity(argv.len());
            for a in &argv {
                ranges.push((buf.len(), buf.len() + a.len()));
                buf.extend_from_slice(a);
            }
            crate::exec::execute(
                srv,
                client,
                crate::protocol::Args::new(&buf, &ranges),
                &mut sink,
            );
            sink.clear();
            marks.valid_up_to = after;
        }
        srv.persistence.loading = loading;
        if let Some(l) = srv.persistence.loading.as_mut() {
            l.loaded_bytes = done_bytes + reader.offset;
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(input: &[u8]) -> Vec<Step> {
        let mut r = CommandReader::new(input, 0);
        let mut out = Vec::new();
        loop {
            let s = r.next_step().expect("read");
            let stop = !matches!(s, Step::Command(..));
            out.push(s);
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn commands_annotations_and_ends() {
        let aof = b"#TS:1700000000\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        let s = steps(aof);
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[1],
            Step::Command(vec![b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()], 66)
        );
        assert_eq!(s[2], Step::End);
    }

    #[test]
    fn a_cut_command_is_a_truncation_and_garbage_a_format_error() {
        let full = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
        for cut in 1..full.len() {
            let s = steps(&full[..cut]);
            assert_eq!(s.last(), Some(&Step::Truncated), "cut at {cut}");
        }
        assert_eq!(steps(b"+OK\r\n"), [Step::Format(0)]);
        let s = steps(b"*1\r\n$4\r\nPING\r\n*1\r\n%4\r\nPING\r\n");
        assert_eq!(s.last(), Some(&Step::Format(18)));
        assert_eq!(steps(b"*0\r\n"), [Step::Format(0)]);
    }
}
