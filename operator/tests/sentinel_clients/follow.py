"""A redis-py client configured with nothing but Sentinel addresses: for each line
`write <key>` on stdin it SETs the key through `Sentinel.master_for`, retrying while the
client finds the new master and the set settles, and answers `done <key>` (or `failed <key> <error>`).

Usage: follow.py <master name> <sentinel port>...
"""

import sys
import time

import redis
from redis.sentinel import Sentinel

name, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
sentinel = Sentinel([("127.0.0.1", p) for p in ports], socket_timeout=2)
master = sentinel.master_for(name, socket_timeout=2)
for line in sys.stdin:
    key = line.split()[1]
    deadline = time.monotonic() + 30
    while True:
        try:
            master.set(key, "1")
            print(f"done {key}", flush=True)
            break
        except (redis.exceptions.ConnectionError, redis.exceptions.ResponseError) as e:
            # READONLY from a demoted master, NOREPLICAS while the replicas resync after a
            # failover (min-replicas-to-write), a closed connection: all pass.
            transient = isinstance(e, redis.exceptions.ConnectionError) or str(e).startswith(("READONLY", "NOREPLICAS"))
            if not transient or time.monotonic() > deadline:
                print(f"failed {key} {e}", flush=True)
                break
            time.sleep(0.05)
