//! Starting a server under test (tandem-server or a real redis-server): on a free port, in a
//! directory of its own, ready only once it answers PING, and killed with its fork children
//! when its guard drops. The guard keeps what the process printed, so a server that fails to
//! start or dies says why in the test's failure instead of in a file nobody reads.

use std::ffi::OsString;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::resp::Conn;

/// How long a server may take to answer PING: a dump to load at start-up is part of it.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How much of a server's output a failure message quotes.
const TAIL_LINES: usize = 40;

/// Makes the directories of one test process distinct (several servers may share a port
/// over time, and a directory may outlive its guard).
static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

/// A port nothing listens on right now: bind port 0, read it, release it.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// `pid` and every live descendant (a Redis fork child, its children, ...), from /proc.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", all[i])) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    all
}

/// Starts a real redis-server with the DEBUG command enabled, or returns `None` after
/// [`crate::skip_or_fail`] when it is not installed.
#[track_caller]
pub fn start_redis(args: &[&str]) -> Option<ServerGuard> {
    crate::redis_available().then(|| Launch::redis("redis-server").args(args).start())
}

/// Opens a connection to a server's port; the fault tests reach servers inside a network
/// namespace, where a plain connect from the test's namespace cannot.
type Connector = Arc<dyn Fn(&str, u16) -> io::Result<TcpStream> + Send + Sync>;

/// How to start one server. Options the test does not give itself get defaults that keep
/// servers apart and quiet: its own port, address and directory, no save points, no AOF.
#[derive(Clone)]
pub struct Launch {
    name: String,
    program: PathBuf,
    wrapper: Vec<OsString>,
    args: Vec<OsString>,
    extra_defaults: Vec<(&'static str, &'static str)>,
    host: String,
    port: Option<u16>,
    dir: Option<PathBuf>,
    scratch_parent: PathBuf,
    scratch_prefix: String,
    ready_within: Duration,
    connector: Option<Connector>,
}

impl Launch {
    /// A server binary that takes Redis's command-line options; `name` is how messages
    /// call it.
    pub fn new(name: &str, program: impl Into<PathBuf>) -> Launch {
        Launch {
            name: name.to_string(),
            program: program.into(),
            wrapper: Vec::new(),
            args: Vec::new(),
            extra_defaults: Vec::new(),
            host: "127.0.0.1".to_string(),
            port: None,
            dir: None,
            scratch_parent: std::env::temp_dir(),
            scratch_prefix: "tandem-test".to_string(),
            ready_within: READY_WITHIN,
            connector: None,
        }
    }

    /// tandem-server from `bin` (a test passes `env!("CARGO_BIN_EXE_tandem-server")`).
    pub fn tandem(bin: impl Into<PathBuf>) -> Launch {
        Launch::new("tandem-server", bin)
    }

    /// redis-server from `bin`, with DEBUG enabled, which the comparisons read digests with.
    pub fn redis(bin: impl Into<PathBuf>) -> Launch {
        let mut l = Launch::new("redis-server", bin);
        l.extra_defaults.push(("--enable-debug-command", "yes"));
        l
    }

    /// Appends command-line arguments; an option given here replaces its default.
    pub fn args<S: AsRef<std::ffi::OsStr>>(mut self, args: &[S]) -> Launch {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Runs the server through another program that execs it (`taskset -c 0`,
    /// `ip netns exec ns`), so the guard's pid is still the server's.
    pub fn wrapped_in<S: AsRef<std::ffi::OsStr>>(mut self, wrapper: &[S]) -> Launch {
        self.wrapper = wrapper.iter().map(|a| a.as_ref().to_os_string()).collect();
        self
    }

    /// Listens on `host` instead of 127.0.0.1.
    pub fn host(mut self, host: &str) -> Launch {
        self.host = host.to_string();
        self
    }

    /// Listens on `port` instead of a free one (each network namespace has its own ports).
    pub fn port(mut self, port: u16) -> Launch {
        self.port = Some(port);
        self
    }

    /// Runs in `dir`, which the test owns: it is kept when the guard drops, so a later
    /// server can load what this one saved.
    pub fn dir(mut self, dir: &Path) -> Launch {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// Where the server's own directory (removed on drop) is created, and how its name
    /// starts: bench puts it on the disk it measures.
    pub fn scratch_in(mut self, parent: &Path, prefix: &str) -> Launch {
        self.scratch_parent = parent.to_path_buf();
        self.scratch_prefix = prefix.to_string();
        self
    }

    /// How long the server may take to answer PING.
    pub fn ready_within(mut self, within: Duration) -> Launch {
        self.ready_within = within;
        self
    }

    /// Connects through `connect` instead of from the test's own network namespace.
    pub fn connect_via(
        mut self,
        connect: impl Fn(&str, u16) -> io::Result<TcpStream> + Send + Sync + 'static,
    ) -> Launch {
        self.connector = Some(Arc::new(connect));
        self
    }

    /// Starts the server and waits until it answers PING; panics with its output if it
    /// does not.
    #[track_caller]
    pub fn start(self) -> ServerGuard {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Launch::start`] for callers that report errors instead of panicking.
    pub fn try_start(self) -> io::Result<ServerGuard> {
        let mut guard = self.spawn()?;
        guard.wait_ready()?;
        Ok(guard)
    }

    /// Starts the server without waiting for it: for servers expected to refuse to start,
    /// or to be seen while they load.
    pub fn spawn(self) -> io::Result<ServerGuard> {
        let port = self.port.unwrap_or_else(free_port);
        let (dir, owns_dir) = match &self.dir {
            Some(d) => (d.clone(), false),
            None => {
                let d = self.scratch_parent.join(format!(
                    "{}-{}-{}-{port}",
                    self.scratch_prefix,
                    std::process::id(),
                    NEXT_DIR.fetch_add(1, Ordering::Relaxed)
                ));
                (d, true)
            }
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| io::Error::other(format!("cannot create {}: {e}", dir.display())))?;
        let child = self.command(port, &dir).spawn().map_err(|e| {
            let program = self.wrapper.first().map_or(self.program.as_os_str(), |w| w);
            io::Error::other(format!(
                "failed to start {}: {e}",
                program.to_string_lossy()
            ))
        })?;
        Ok(ServerGuard {
            output: Output::capture(child),
            launch: self,
            port,
            dir,
            owns_dir,
        })
    }

    fn command(&self, port: u16, dir: &Path) -> Command {
        let mut cmd = match self.wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&self.program);
                c
            }
            None => Command::new(&self.program),
        };
        let port = port.to_string();
        let dir_arg = dir.as_os_str().to_os_string();
        let defaults: [(&str, OsString); 5] = [
            ("--port", port.into()),
            ("--bind", self.host.clone().into()),
            ("--dir", dir_arg),
            ("--save", OsString::new()),
            ("--appendonly", "no".into()),
        ];
        let extra = self
            .extra_defaults
            .iter()
            .map(|(k, v)| (*k, OsString::from(v)));
        for (option, value) in defaults.into_iter().chain(extra) {
            if !self.args.iter().any(|a| a.as_os_str() == option) {
                cmd.arg(option).arg(value);
            }
        }
        cmd.args(&self.args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// What the process printed, gathered by one thread per pipe so a chatty server never
/// blocks on a full pipe.
struct Output {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Output {
    fn capture(mut child: Child) -> Output {
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(drain(Pipe::Out(pipe), stdout.clone()));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(drain(Pipe::Err(pipe), stderr.clone()));
        }
        Output {
            child,
            stdout,
            stderr,
            readers,
        }
    }
}

enum Pipe {
    Out(ChildStdout),
    Err(ChildStderr),
}

fn drain(mut pipe: Pipe, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            let n = match &mut pipe {
                Pipe::Out(p) => p.read(&mut buf),
                Pipe::Err(p) => p.read(&mut buf),
            };
            match n {
                Ok(0) | Err(_) => return,
                Ok(n) => into
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]),
            }
        }
    })
}

/// A server process, killed with its descendants when dropped; its directory is removed
/// unless the test gave it ([`Launch::dir`]).
pub struct ServerGuard {
    output: Output,
    launch: Launch,
    pub port: u16,
    dir: PathBuf,
    owns_dir: bool,
}

impl ServerGuard {
    pub fn name(&self) -> &str {
        &self.launch.name
    }

    pub fn pid(&self) -> u32 {
        self.output.child.id()
    }

    /// The server's directory (its `--dir` unless the test gave another).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The arguments the test gave (defaults not included), to restart with more.
    pub fn args(&self) -> &[OsString] {
        &self.launch.args
    }

    /// A raw connection made as the launch says (see [`Launch::connect_via`]).
    pub fn try_stream(&self) -> io::Result<TcpStream> {
        match &self.launch.connector {
            Some(c) => c(&self.launch.host, self.port),
            None => TcpStream::connect((self.launch.host.as_str(), self.port)),
        }
    }

    /// A fresh RESP connection with a read timeout, so a missing reply fails instead of
    /// hanging.
    #[track_caller]
    pub fn connect(&self) -> Conn {
        match self.try_stream() {
            Ok(s) => Conn::from_stream(s),
            Err(e) => panic!("connect to {} on port {}: {e}", self.name(), self.port),
        }
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.output.child.try_wait(), Ok(None))
    }

    /// What the process printed on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout.lock().unwrap_or_else(|e| e.into_inner()))
            .into_owned()
    }

    /// What the process printed on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr.lock().unwrap_or_else(|e| e.into_inner()))
            .into_owned()
    }

    /// The `--logfile` the test gave, in the server's directory when relative.
    pub fn logfile(&self) -> Option<PathBuf> {
        let args = &self.launch.args;
        let at = args.iter().position(|a| a.as_os_str() == "--logfile")?;
        args.get(at + 1).map(|f| self.dir.join(f))
    }

    /// The server's log: its `--logfile` when given (empty until written), else its stdout.
    pub fn log(&self) -> String {
        match self.logfile() {
            Some(f) => std::fs::read_to_string(f).unwrap_or_default(),
            None => self.stdout(),
        }
    }

    /// Waits for the process to exit by itself (SHUTDOWN, a refused start), failing after
    /// `within`; its output is complete afterwards.
    #[track_caller]
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = &mut self.output.child;
        let status = crate::poll("the server to exit", within, || {
            child.try_wait().ok().flatten()
        });
        for r in self.output.readers.drain(..) {
            let _ = r.join();
        }
        status
    }

    /// SIGKILL to the server and its descendants, as `kill -9`; the directory stays for a
    /// [`ServerGuard::restart`].
    pub fn kill(&mut self) {
        // Once reaped, the pid may belong to another process: its tree is not ours.
        if !self.alive() {
            return;
        }
        let children: Vec<String> = process_tree(self.pid())
            .iter()
            .skip(1)
            .map(u32::to_string)
            .collect();
        if !children.is_empty() {
            let _ = Command::new("kill").arg("-KILL").args(&children).status();
        }
        let _ = self.output.child.kill();
        let _ = self.output.child.wait();
    }

    /// Starts the same server again (same port, directory and arguments) after it exited
    /// or was killed, and waits until it answers PING.
    #[track_caller]
    pub fn restart(&mut self) {
        let args = self.launch.args.clone();
        self.restart_with(&args);
    }

    /// [`ServerGuard::restart`] with other arguments than the first start's.
    #[track_caller]
    pub fn restart_with<S: AsRef<std::ffi::OsStr>>(&mut self, args: &[S]) {
        self.kill();
        let mut launch = self.launch.clone();
        launch.args = Vec::new();
        let launch = launch.args(args);
        let child = launch
            .command(self.port, &self.dir)
            .spawn()
            .unwrap_or_else(|e| panic!("failed to restart {}: {e}", self.name()));
        self.output = Output::capture(child);
        self.launch = launch;
        if let Err(e) = self.wait_ready() {
            panic!("{e}");
        }
    }

    /// Polls PING until a reply other than `-LOADING` comes (an error such as `-NOAUTH`
    /// also means the server is up), failing when the process exits or time runs out.
    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + self.launch.ready_within;
        loop {
            if let Ok(Some(status)) = self.output.child.try_wait() {
                for r in self.output.readers.drain(..) {
                    let _ = r.join();
                }
                return Err(self.failure(&format!("exited during startup ({status})")));
            }
            if let Ok(s) = self.try_stream() {
                let mut c = Conn::from_stream(s);
                c.send(&["PING"]);
                if c.try_read_reply()
                    .is_some_and(|r| !r.starts_with(b"-LOADING"))
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                let within = self.launch.ready_within;
                return Err(self.failure(&format!("did not answer PING within {within:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An error naming the server and quoting the end of its output and log.
    fn failure(&self, what: &str) -> io::Error {
        let mut msg = format!(
            "{} on {}:{} {what}\ncommand: {:?} {:?}",
            self.name(),
            self.launch.host,
            self.port,
            self.launch.program,
            self.launch.args
        );
        let mut sections = vec![("stdout", self.stdout()), ("stderr", self.stderr())];
        if let Some(f) = self.logfile() {
            sections.push(("log", std::fs::read_to_string(f).unwrap_or_default()));
        }
        for (label, text) in sections {
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(TAIL_LINES)..];
            if !tail.is_empty() {
                msg.push_str(&format!(
                    "\n--- {label} (last {} lines)\n{}",
                    tail.len(),
                    tail.join("\n")
                ));
            }
        }
        io::Error::other(msg)
    }
}

#[cfg(feature = "redis")]
impl ServerGuard {
    /// A `redis` crate connection, for tests written against that client.
    pub fn try_con(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://{}:{}/", self.launch.host, self.port))?
            .get_connection()
    }

    /// [`ServerGuard::try_con`], panicking when the server does not accept.
    #[track_caller]
    pub fn con(&self) -> redis::Connection {
        self.try_con()
            .unwrap_or_else(|e| panic!("connect to {} on port {}: {e}", self.name(), self.port))
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Launch;
    use std::ffi::OsStr;

    fn args(l: &Launch) -> Vec<String> {
        l.command(7000, std::path::Path::new("d"))
            .get_args()
            .map(|a: &OsStr| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn an_option_the_test_gives_replaces_its_default() {
        let l = Launch::redis("redis-server").args(&["--save", "3600 1", "--port", "1"]);
        assert_eq!(
            args(&l),
            [
                "--bind",
                "127.0.0.1",
                "--dir",
                "d",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
                "--save",
                "3600 1",
                "--port",
                "1"
            ]
        );
    }

    #[test]
    fn a_wrapper_runs_the_program_with_its_arguments() {
        let l = Launch::tandem("bin").wrapped_in(&["taskset", "-c", "1"]);
        let cmd = l.command(7000, std::path::Path::new("d"));
        assert_eq!(cmd.get_program(), "taskset");
        assert_eq!(args(&l)[..4], ["-c", "1", "bin", "--port"]);
    }
}
