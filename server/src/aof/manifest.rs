//! The AOF manifest of Redis 7.0's multi-part AOF: which base, incremental and history files
//! make up the dataset, one `file <name> seq <n> type <b|i|h>` line each, base first, then
//! history, then the incremental files in sequence order. Parsing is as strict as Redis's
//! (a bad line is refused with Redis's reason and the line), and the file names follow
//! Redis's rules (`<appendfilename>.<seq>.base.rdb|aof`, `<appendfilename>.<seq>.incr.aof`).
//!
//! Pure: no file system access; the writer and the loader read and write the text.

use crate::protocol::split_args;
use crate::repr::quote_into;

/// What a file in the manifest is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Base,
    Incr,
    /// A file a rewrite made obsolete, kept in the manifest until it is deleted.
    History,
}

impl FileType {
    fn letter(self) -> char {
        match self {
            FileType::Base => 'b',
            FileType::Incr => 'i',
            FileType::History => 'h',
        }
    }
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofFile {
    pub name: String,
    pub seq: u64,
    pub kind: FileType,
}

/// The manifest: at most one base, the history files, the incremental files in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofFile>,
    pub history: Vec<AofFile>,
    pub incr: Vec<AofFile>,
    /// The highest sequence numbers used, so new files never reuse a name.
    pub base_seq: u64,
    pub incr_seq: u64,
}

/// Why a manifest was refused: Redis's reason, and the line it read (when there is one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}{}", line.as_ref().map(|(n, l)| format!(" (line {n}: '{l}')")).unwrap_or_default())]
pub struct ManifestError {
    pub reason: &'static str,
    pub line: Option<(usize, String)>,
}

/// The manifest's own file name (`appendonly.aof.manifest`).
pub fn manifest_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

/// The temp name a new manifest is written under before the rename.
pub fn temp_manifest_name(appendfilename: &str) -> String {
    format!("temp-{}", manifest_name(appendfilename))
}

/// The longest line Redis reads from a manifest.
const MAX_LINE: usize = 1024;

impl Manifest {
    /// Parses a manifest as Redis 7.0's `aofLoadManifestFromFile` does.
    ///
    /// # Errors
    /// The text is not a manifest Redis would load; the error carries Redis's reason.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        let mut m = Manifest::default();
        let mut maxseq = 0;
        let mut linenum = 0;
        let err = |reason, line: Option<(usize, String)>| ManifestError { reason, line };
        if text.is_empty() {
            return Err(err("Found an empty AOF manifest", None));
        }
        let mut rest = text;
        while !rest.is_empty() {
            let (raw, next, complete) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (&rest[..=i], &rest[i + 1..], true),
                None => (rest, &rest[rest.len()..], false),
            };
            rest = next;
            linenum += 1;
            if raw.first() == Some(&b'#') {
                continue;
            }
            if !complete || raw.len() > MAX_LINE {
                return Err(err("The AOF manifest file contains too long line", None));
            }
            let line = String::from_utf8_lossy(raw)
                .trim_matches([' ', '\t', '\r', '\n'])
                .to_string();
            let at = || Some((linenum, line.clone()));
            // A name that is not UTF-8 is refused rather than read lossily: the file looked
            // for would not be the one the manifest names (Redis writes UTF-8 names only).
            let Some(argv) = split_args(raw_line(raw))
                .and_then(|a| {
                    a.into_iter()
                        .map(|w| String::from_utf8(w).ok())
                        .collect::<Option<Vec<_>>>()
                })
                .filter(|a| a.len() >= 6 && a.len() % 2 == 0)
            else {
                return Err(err("Invalid AOF manifest file format", at()));
            };
            let (mut name, mut seq, mut kind) = (None, 0u64, None);
            for pair in argv.chunks(2) {
                let key = pair[0].to_ascii_lowercase();
                match key.as_str() {
                    "file" => {
                        if pair[1].contains('/') {
                            return Err(err("File can't be a path, just a filename", at()));
                        }
                        name = Some(pair[1].clone());
                    }
                    "seq" => seq = atoll(&pair[1]),
                    "type" => kind = pair[1].bytes().next(),
                    _ => {}
                }
            }
            let (Some(name), true, Some(kind)) = (name, seq != 0, kind) else {
                return Err(err("Invalid AOF manifest file format", at()));
            };
            match kind {
                b'b' => {
                    if m.base.is_some() {
                        return Err(err("Found duplicate base file information", at()));
                    }
                    m.base_seq = seq;
                    m.base = Some(AofFile {
                        name,
                        seq,
                        kind: FileType::Base,
                    });
                }
                b'h' => m.history.push(AofFile {
                    name,
                    seq,
                    kind: FileType::History,
                }),
                b'i' => {
                    if seq <= maxseq {
                        return Err(err("Found a non-monotonic sequence number", at()));
                    }
                    maxseq = seq;
                    m.incr_seq = seq;
                    m.incr.push(AofFile {
                        name,
                        seq,
                        kind: FileType::Incr,
                    });
                }
                _ => return Err(err("Unknown AOF file type", at())),
            }
        }
        Ok(m)
    }

    /// The manifest as Redis writes it: base, history, incremental files.
    pub fn format(&self) -> String {
        let mut out = String::new();
        for f in self.base.iter().chain(&self.history).chain(&self.incr) {
            out.push_str(&format!(
                "file {} seq {} type {}\n",
                repr(&f.name),
                f.seq,
                f.kind.letter()
            ));
        }
        out
    }

    /// Makes a new base file the current one; the previous base becomes history. Returns
    /// its name (`.rdb` with the RDB preamble, else `.aof`).
    pub fn new_base(&mut self, appendfilename: &str, rdb_preamble: bool) -> String {
        if let Some(mut old) = self.base.take() {
            old.kind = FileType::History;
            self.history.insert(0, old);
        }
        self.base_seq += 1;
        let ext = if rdb_preamble { "rdb" } else { "aof" };
        let name = format!("{appendfilename}.{}.base.{ext}", self.base_seq);
        self.base = Some(AofFile {
            name: name.clone(),
            seq: self.base_seq,
            kind: FileType::Base,
        });
        name
    }

    /// Appends a new incremental file and returns its name.
    pub fn new_incr(&mut self, appendfilename: &str) -> String {
        self.incr_seq += 1;
        let name = format!("{appendfilename}.{}.incr.aof", self.incr_seq);
        self.incr.push(AofFile {
            name: name.clone(),
            seq: self.incr_seq,
            kind: FileType::Incr,
        });
        name
    }

    /// After a rewrite: every incremental file but the one being written (the last) is
    /// covered by the new base and becomes history.
    pub fn retire_rewritten_incrs(&mut self, keep_last: bool) {
        let keep = usize::from(keep_last && !self.incr.is_empty());
        let cut = self.incr.len() - keep;
        for mut f in self.incr.drain(..cut).rev() {
            f.kind = FileType::History;
            self.history.insert(0, f);
        }
    }

    /// The files to load, in order: the base, then the incremental files.
    pub fn load_order(&self) -> impl Iterator<Item = &AofFile> {
        self.base.iter().chain(&self.incr)
    }

    /// The last incremental file, if any.
    pub fn last_incr(&self) -> Option<&AofFile> {
        self.incr.last()
    }
}

/// C's `atoll`: leading digits, 0 when there are none.
/// A manifest line without the blanks and line end around it (Redis's `sdstrim`).
fn raw_line(raw: &[u8]) -> &[u8] {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = raw.iter().position(|b| !blank(b)).unwrap_or(raw.len());
    let end = raw.iter().rposition(|b| !blank(b)).map_or(start, |e| e + 1);
    &raw[start..end.max(start)]
}

fn atoll(s: &str) -> u64 {
    let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

/// A file name as Redis writes it in the manifest: quoted (`sdscatrepr`) when it holds
/// blanks, quotes or bytes that are not printable.
fn repr(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
    if plain {
        return name.to_string();
    }
    let mut out = String::new();
    quote_into(&mut out, name.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_that_is_not_utf8_is_refused_not_mangled() {
        // Found by the aof_loader fuzz target: read lossily, such a name became another
        // file's (and its formatted line grew past the line limit).
        let mut text =
            b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.2".to_vec();
        text.extend([0x91; 200]);
        text.extend(b".incr.aof seq 2 type i\n");
        let e = Manifest::parse(&text).expect_err("refused");
        assert!(
            e.to_string().contains("Invalid AOF manifest file format"),
            "{e}"
        );
        let quoted = b"file \"a\\x91.incr.aof\" seq 1 type i\n";
        assert!(Manifest::parse(quoted).is_err());
        let ok = b"  file appendonly.aof.1.incr.aof seq 1 type i  \r\n";
        assert_eq!(Manifest::parse(ok).expect("trimmed").incr.len(), 1);
    }

    /// What Redis 7.0 writes after one rewrite with the RDB preamble (and
    /// `aof-disable-auto-gc yes`, which keeps the history).
    const REDIS: &str = "file appendonly.aof.2.base.rdb seq 2 type b\n\
                         file appendonly.aof.1.incr.aof seq 1 type h\n\
                         file appendonly.aof.1.base.rdb seq 1 type h\n\
                         file appendonly.aof.2.incr.aof seq 2 type i\n";

    #[test]
    fn parses_and_formats_as_redis() {
        let m = Manifest::parse(REDIS.as_bytes()).expect("parse");
        assert_eq!(m.base.as_ref().map(|f| f.seq), Some(2));
        assert_eq!(m.history.len(), 2);
        assert_eq!(m.incr_seq, 2);
        assert_eq!(m.format(), REDIS);
    }

    #[test]
    fn a_rewrite_moves_files_to_history() {
        let mut m = Manifest::default();
        assert_eq!(
            m.new_base("appendonly.aof", true),
            "appendonly.aof.1.base.rdb"
        );
        assert_eq!(m.new_incr("appendonly.aof"), "appendonly.aof.1.incr.aof");
        m.new_incr("appendonly.aof");
        m.new_base("appendonly.aof", true);
        m.retire_rewritten_incrs(true);
        assert_eq!(m.format(), REDIS);
        let names: Vec<_> = m.load_order().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof"]
        );
    }

    #[test]
    fn bad_manifests_are_refused_with_redis_reasons() {
        let reason = |t: &str| Manifest::parse(t.as_bytes()).map_err(|e| e.reason);
        assert_eq!(reason(""), Err("Found an empty AOF manifest"));
        assert_eq!(
            reason("file a seq 1\n"),
            Err("Invalid AOF manifest file format")
        );
        assert_eq!(
            reason("file a/b seq 1 type b\n"),
            Err("File can't be a path, just a filename")
        );
        assert_eq!(
            reason("file a seq 1 type b\nfile b seq 2 type b\n"),
            Err("Found duplicate base file information")
        );
        assert_eq!(
            reason("file a seq 2 type i\nfile b seq 2 type i\n"),
            Err("Found a non-monotonic sequence number")
        );
        assert_eq!(
            reason("file a seq 1 type x\n"),
            Err("Unknown AOF file type")
        );
        assert_eq!(
            reason("file a seq 1 type b"),
            Err("The AOF manifest file contains too long line")
        );
        // Comments are skipped, extra pairs are allowed for forward compatibility.
        let m = Manifest::parse(b"# c\nfile a seq 1 type b extra x\n").expect("parse");
        assert_eq!(m.base.map(|f| f.name), Some("a".into()));
    }

    #[test]
    fn names_with_blanks_are_quoted_both_ways() {
        let mut m = Manifest::default();
        m.incr.push(AofFile {
            name: "my file\"x".into(),
            seq: 1,
            kind: FileType::Incr,
        });
        let text = m.format();
        assert_eq!(text, "file \"my file\\\"x\" seq 1 type i\n");
        assert_eq!(
            Manifest::parse(text.as_bytes()).expect("parse").incr,
            m.incr
        );
    }
}
