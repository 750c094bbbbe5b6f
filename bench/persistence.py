#!/usr/bin/env python3
"""SAVE throughput and BGSAVE peak memory, tandem-server vs redis-server 7.0, same data.

For each server: load N keys of 1000 random bytes (key format of redis-benchmark's -r),
time SAVE (dump bytes / seconds), then start a redis-benchmark SET load that overwrites the
same keys, sample memory every 50 ms, run BGSAVE, keep sampling until it ends. The SET rate
before and during the BGSAVE (from INFO total_commands_processed) shows what the snapshot
costs the clients.

Memory samples: VmRSS of the server (and, for Redis, of its fork child) from
/proc/<pid>/status, plus Pss from /proc/<pid>/smaps_rollup, whose sum over parent and child
is the physical memory the pair really uses (VmRSS counts pages shared by the fork twice).

Usage: bench/persistence.py --tandem PATH/tandem-server [--keys 1000000] [--port 7790]
                           [--tmpdir /dev/shm]
Needs redis-server, redis-cli and redis-benchmark 7.0 on PATH. Prints one JSON object.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time


def proc_kb(pid, path, field):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


def info(port, field, section="persistence"):
    for line in cli(port, "INFO", section).splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def wait_ping(port, deadline_s=120):
    end = time.time() + deadline_s
    while time.time() < end:
        try:
            if cli(port, "PING") == "PONG":
                return
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not answer")


def make_data(path, keys):
    with open(path, "wb", buffering=1 << 20) as f:
        for i in range(keys):
            key = b"key:%012d" % i
            val = os.urandom(1000)
            f.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1000\r\n%s\r\n" % (len(key), key, val))


def sampler(pid, stop, out):
    while not stop.is_set():
        kids = children(pid)
        out.append({
            "t": time.time(),
            "rss_kb": proc_kb(pid, "status", "VmRSS"),
            "pss_kb": proc_kb(pid, "smaps_rollup", "Pss"),
            "child_rss_kb": sum(proc_kb(c, "status", "VmRSS") for c in kids),
            "child_pss_kb": sum(proc_kb(c, "smaps_rollup", "Pss") for c in kids),
        })
        time.sleep(0.05)


def run(name, argv, port, data, keys, workdir):
    os.makedirs(workdir, exist_ok=True)
    log = open(os.path.join(workdir, "server.log"), "w")
    srv = subprocess.Popen(argv + ["--port", str(port), "--dir", workdir, "--save", "",
                                   "--appendonly", "no"], stdout=log, stderr=log)
    try:
        wait_ping(port)
        with open(data, "rb") as f:
            subprocess.run(["redis-cli", "-p", str(port), "--pipe"], stdin=f, check=True,
                           capture_output=True)
        assert int(cli(port, "DBSIZE")) == keys
        saves = []
        for _ in range(2):
            t0 = time.time()
            assert cli(port, "SAVE") == "OK"
            dt = time.time() - t0
            size = os.path.getsize(os.path.join(workdir, "dump.rdb"))
            saves.append({"seconds": round(dt, 3), "bytes": size,
                          "mb_per_s": round(size / dt / 1e6, 1)})
        bench = subprocess.Popen(["redis-benchmark", "-p", str(port), "-t", "set", "-d", "1000",
                                  "-r", str(keys), "-n", "1000000000", "-P", "16", "-q"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples, stop = [], threading.Event()
        th = threading.Thread(target=sampler, args=(srv.pid, stop, samples))
        th.start()
        time.sleep(1)  # let the write load reach its steady state before the snapshot
        c0, t0 = int(info(port, "total_commands_processed", "stats")), time.time()
        time.sleep(2)
        c1 = int(info(port, "total_commands_processed", "stats"))
        pre = samples[-1]
        t_start = time.time()
        cli(port, "BGSAVE")
        while info(port, "rdb_bgsave_in_progress") != "0":
            time.sleep(0.05)
        t_bg = time.time() - t_start
        c2 = int(info(port, "total_commands_processed", "stats"))
        stop.set()
        th.join()
        bench.kill()
        bench.wait()
        during = [s for s in samples if s["t"] >= t_start]
        peak_rss = max(s["rss_kb"] for s in during)
        peak_sum_rss = max(s["rss_kb"] + s["child_rss_kb"] for s in during)
        peak_sum_pss = max(s["pss_kb"] + s["child_pss_kb"] for s in during)
        return {
            "server": name,
            "keys": keys,
            "save": saves,
            "bgsave_seconds": round(t_bg, 2),
            "bgsave_status": info(port, "rdb_last_bgsave_status"),
            "set_ops_per_s_before": round((c1 - c0) / (t_start - t0)),
            "set_ops_per_s_during_bgsave": round((c2 - c1) / t_bg),
            "pre_rss_mb": round(pre["rss_kb"] / 1024),
            "peak_rss_mb": round(peak_rss / 1024),
            "peak_rss_plus_child_rss_mb": round(peak_sum_rss / 1024),
            "peak_pss_total_mb": round(peak_sum_pss / 1024),
            "peak_over_pre": round(peak_rss / pre["rss_kb"], 3),
            "peak_pss_total_over_pre": round(peak_sum_pss / max(pre["pss_kb"], 1), 3),
            "samples": len(during),
        }
    finally:
        srv.kill()
        srv.wait()
        log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem", required=True)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--port", type=int, default=7790)
    ap.add_argument("--tmpdir", default=None,
                    help="where the data file and the dumps go (e.g. /dev/shm to take the "
                         "disk out of the SAVE figure)")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="tandem-persist-bench-", dir=a.tmpdir)
    try:
        data = os.path.join(tmp, "data.resp")
        make_data(data, a.keys)
        results = [
            run("redis", ["redis-server"], a.port, data, a.keys, os.path.join(tmp, "redis")),
            run("tandem", [a.tandem], a.port + 1, data, a.keys, os.path.join(tmp, "tandem")),
        ]
        print(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
