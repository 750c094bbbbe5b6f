#!/usr/bin/env python3
"""Import graph of a Rust crate's modules, and its circles.

Usage: import-graph.py SRC_DIR [--registration MODULE] [--edges]

A module depends on another when it names it: `use crate::a::b`, a `crate::a::b::f` path,
`super::x`, or a parent (`mod.rs`, `lib.rs`) naming its own child. `pub use` re-exports are
followed to the module that defines the name, so importing `keyspace::SmallBytes` counts as
depending on `keyspace::bytes`. `#[cfg(test)] mod tests` blocks are left out: tests may reach
anywhere. `--registration MODULE` drops the edges from MODULE to its own children (a command
table registering the handlers of its family files is the one circle the server allows).

Prints every strongly connected component of more than one module and exits 1 if there is
one; `--edges` also prints the whole graph.
"""
import os
import re
import sys


def modules(root):
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if f.endswith('.rs'):
                path = os.path.join(dirpath, f)
                parts = os.path.relpath(path, root)[:-3].split(os.sep)
                if parts[-1] in ('mod', 'lib', 'main'):
                    parts = parts[:-1]
                if parts and parts[0] == 'bin':
                    continue
                mods['::'.join(parts)] = path
    return mods


def source(path):
    text = open(path, encoding='utf-8').read()
    text = re.split(r'#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod tests', text)[0]
    return re.sub(r'//.*', '', text)


def reexports(mods):
    out = {}
    for m, path in mods.items():
        pattern = r'pub use (?:self::|crate::)?([a-z_0-9]+)::(?:\{([^}]*)\}|([A-Za-z_0-9]+))'
        for u in re.finditer(pattern, source(path)):
            for name in (u.group(2) or u.group(3)).split(','):
                name = name.strip().split(' as ')[-1].strip()
                if not name or name == 'self':
                    continue
                child = (m + '::' if m else '') + u.group(1)
                if child not in mods:
                    child = u.group(1)
                if child in mods:
                    out[(m, name)] = child
    return out


def expand(prefix, rest):
    """Paths named by one `use` tree."""
    if not rest.startswith('{'):
        return [prefix + rest]
    items, depth, cur = [], 0, ''
    for ch in rest[1:-1]:
        depth += ch == '{'
        depth -= ch == '}'
        if ch == ',' and depth == 0:
            items.append(cur)
            cur = ''
        else:
            cur += ch
    items.append(cur)
    out = []
    for it in items:
        it = it.strip()
        if it:
            m = re.match(r'((?:[A-Za-z_0-9]+::)*)(\{.*\}|[A-Za-z_0-9]+|\*)', it, re.S)
            out += expand(prefix + m.group(1), m.group(2))
    return out


def graph(mods):
    rex = reexports(mods)

    def resolve(path):
        segs = path.split('::')
        for i in range(len(segs), 0, -1):
            m = '::'.join(segs[:i])
            if m in mods:
                if i < len(segs) and (m, segs[i]) in rex:
                    return rex[(m, segs[i])]
                return m
        return None

    edges = {m: set() for m in mods}
    for m, path in mods.items():
        src = source(path)
        for u in re.finditer(r'\bcrate::((?:[A-Za-z_0-9]+::)*)(\{[^;]*?\}|[A-Za-z_0-9]+)', src):
            for p in expand(u.group(1), u.group(2)):
                t = resolve(p.replace('::self', '').rstrip(':'))
                if t and t != m:
                    edges[m].add(t)
        body = re.sub(r'(pub(\([a-z]+\))? )?mod [a-z_0-9]+;', '', src)
        for u in re.finditer(r'(?<![A-Za-z_0-9:])(?:self::)?([a-z_0-9]+)::', body):
            child = (m + '::' if m else '') + u.group(1)
            if child in mods and child != m:
                edges[m].add(child)
        parent = m.rsplit('::', 1)[0] if '::' in m else ''
        for u in re.finditer(r'\bsuper::((?:[A-Za-z_0-9]+::)*)(\{[^;]*?\}|[A-Za-z_0-9]+)', src):
            for p in expand(u.group(1), u.group(2)):
                path = p.replace('::self', '').rstrip(':')
                t = resolve((parent + '::' if parent else '') + path) if path != '*' else None
                t = t or (parent if parent in mods else None)
                if t and t != m:
                    edges[m].add(t)
    return edges


def circles(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(argv):
    root = argv[1]
    edges = graph(modules(root))
    if '--registration' in argv:
        table = argv[argv.index('--registration') + 1]
        edges[table] = {t for t in edges[table] if not t.startswith(table + '::')}
    if '--edges' in argv:
        for m in sorted(edges):
            print(f"{m or '(crate root)'} -> {', '.join(sorted(edges[m]))}")
    found = circles(edges)
    n = sum(len(e) for e in edges.values())
    for c in found:
        print(f"{root}: import circle of {len(c)} modules: {' '.join(c)}")
    print(f"{root}: {len(edges)} modules, {n} imports, {len(found)} circles")
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
