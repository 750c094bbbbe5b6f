#!/usr/bin/env python3
"""Builds the fuzz seed corpora (fuzz/corpus/<target>/) from the project's own test inputs:
the compat suite's commands (server/tests/compat/*.redis) as inline and multibulk requests,
and the RDB fixtures (server/tests/fixtures/rdb/*.rdb) as dumps and as full-sync transfers
with both framings; for the AOF loader, the commands as an incremental file and a manifest. Run from anywhere; the corpora are not committed."""

import hashlib
import pathlib
import shlex

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
MARK = b"0123456789abcdef0123456789abcdef01234567"
REPLID = b"8c4e2b1d7f6a5c3e9b0d1f2a4c6e8b0d2f4a6c8e"


def put(target, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def multibulk(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def commands():
    for f in sorted((ROOT / "server/tests/compat").glob("*.redis")):
        text = f.read_text()
        lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
        yield f.stem, lines


def main():
    stream = b""
    for name, lines in commands():
        # The parser's first byte picks the read size and the auth state.
        put("resp_parser", b"\x07" + "\r\n".join(lines).encode() + b"\r\n")
        mb = b""
        for line in lines:
            try:
                args = [a.encode() for a in shlex.split(line)]
            except ValueError:
                continue
            if args:
                mb += multibulk(args)
        put("resp_parser", b"\x3f" + mb)
        put("resp_parser", b"\x41" + mb[:2000])
        stream += mb[:1500]
        put("aof_loader", b"\x01" + multibulk([b"SELECT", b"0"]) + mb)
    for rdb in sorted((ROOT / "server/tests/fixtures/rdb").glob("*.rdb")):
        data = rdb.read_bytes()
        put("rdb_loader", data)
        full = b"+FULLRESYNC %s 0\r\n" % REPLID
        put("repl_stream", b"\x02" + full + b"\n\n$%d\r\n" % len(data) + data + stream[:800])
        put("repl_stream", b"\x00" + full + b"$EOF:" + MARK + b"\r\n" + data + MARK + stream[:800])
    put("repl_stream", b"\x01+CONTINUE " + REPLID + b"\r\n" + stream)
    put("aof_loader", b"\x00file appendonly.aof.2.base.rdb seq 2 type b\n"
        b"file appendonly.aof.1.incr.aof seq 1 type h\n"
        b"file appendonly.aof.2.incr.aof seq 2 type i\n")


if __name__ == "__main__":
    main()
