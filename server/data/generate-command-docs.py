#!/usr/bin/env python3
"""Writes redis-7.0-commands.json beside this script from a running Redis 7.0: for every
command, what COMMAND DOCS reports (summary, since, group, complexity, history, arguments,
subcommands), the command tips and key specs of COMMAND INFO, and a container's subcommand
rows. tandem-server answers COMMAND
DOCS, and the tips and key specs of COMMAND INFO and COMMAND GETKEYSANDFLAGS, from this file.

The replies are read in RESP3 and kept with their types, so the server can write them back
in either protocol: a bulk string is a JSON string, an integer a number, null is null, an
array a list, and the other types are one-key objects: {"simple": text}, {"set": [...]},
{"map": [[key, value], ...]} (a map keeps its order).

Usage: generate-command-docs.py [port]   (default 6379; run against redis-server 7.0.x)
"""

import json
import pathlib
import socket
import sys


class Resp3:
    def __init__(self, sock):
        self.f = sock.makefile("rb")

    def line(self):
        return self.f.readline()[:-2]

    def read(self):
        head = self.line()
        kind, rest = chr(head[0]), head[1:]
        if kind == "$":
            n = int(rest)
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        if kind == "+":
            return {"simple": rest.decode()}
        if kind == ":":
            return int(rest)
        if kind == "_":
            return None
        if kind == "*":
            return [self.read() for _ in range(int(rest))]
        if kind == "~":
            return {"set": [self.read() for _ in range(int(rest))]}
        if kind == "%":
            return {"map": [[self.read(), self.read()] for _ in range(int(rest))]}
        if kind == "-":
            raise RuntimeError(rest.decode())
        raise RuntimeError(f"unexpected reply type {kind!r}")


def command(sock, reader, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)
    return reader.read()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6379
    sock = socket.create_connection(("127.0.0.1", port))
    r = Resp3(sock)
    hello = dict(command(sock, r, "HELLO", "3")["map"])
    version = hello["version"]
    if not version.startswith("7.0."):
        sys.exit(f"this is Redis {version}; the file describes Redis 7.0")
    docs = dict(command(sock, r, "COMMAND", "DOCS")["map"])
    commands = {}
    for info in command(sock, r, "COMMAND", "INFO", *sorted(docs)):
        name = info[0]
        subs = info[9] if isinstance(info[9], list) else info[9]["set"]
        commands[name] = {
            "docs": docs[name],
            "tips": info[7],
            "key_specs": info[8],
            # A container's subcommands are listed by COMMAND INFO as whole rows.
            "subcommands": info[9],
        }
        for sub in subs:
            commands[sub[0]] = {"info": sub, "tips": sub[7], "key_specs": sub[8]}
    out = pathlib.Path(__file__).with_name("redis-7.0-commands.json")
    body = {"redis_version": version, "commands": dict(sorted(commands.items()))}
    out.write_text(json.dumps(body, indent=None, separators=(",", ":")) + "\n")
    print(f"{out.name}: {len(commands)} commands and subcommands from Redis {version}")


if __name__ == "__main__":
    main()
