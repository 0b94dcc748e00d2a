"""Shadow notifiers: several `slaclock notify` processes reading a running soak's outputs.

    .venv/bin/python benchmarks/soak.py --minutes 120 ...          # prints its broker and prefix
    .venv/bin/python benchmarks/notify_shadow.py 127.0.0.1:PORT sab12cd. --minutes 60 \\
        base= trim0=SLACLOCK_HEAP_TRIM_INTERVAL:0 probed=PYTHONPATH:benchmarks/memprobe,...

Each variant (`name=VAR:value,...`, environment added to the notifier's) is one notifier with
its own app id (`<prefix>shadow-<name>`: its own consumer group, `delivered` table and
dead-letter topic) that sends the soak's breaches to a local webhook of this script's own,
never to the soak's. So variants see exactly the same outputs, faults and broker restarts
as the soak's notifier, side by side, and the soak is not disturbed. Every minute, per
variant: RSS, and the resident KiB of the main heap, of other anonymous memory (Python's
object arenas, large blocks) and of glibc's per-thread arenas (64 MiB-aligned mappings),
from /proc/<pid>/smaps. A JSON line each, on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka.admin import AdminClient  # noqa: E402
from confluent_kafka.cimpl import NewTopic  # noqa: E402

from benchmarks.soak import rss_kib  # noqa: E402
from tests.notify.harness import NotifyRun  # noqa: E402
from tests.notify.receivers import Receiver  # noqa: E402

THREAD_ARENA_ALIGN = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: non-main arenas start here


def resident_by_kind(pid: int) -> dict[str, int]:
    """Resident KiB of the main heap, other anonymous mappings and thread arenas."""
    found = {"heap": 0, "anon": 0, "thread_arenas": 0}
    kind: str | None = None
    with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as smaps:
        for line in smaps:
            parts = line.split()
            if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:  # a mapping's header
                start = int(parts[0].split("-")[0], 16)
                if len(parts) > 5:
                    kind = "heap" if parts[5] == "[heap]" else None
                else:
                    kind = "thread_arenas" if start % THREAD_ARENA_ALIGN == 0 else "anon"
            elif line.startswith("Rss:") and kind is not None:
                found[kind] += int(parts[1])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bootstrap")
    parser.add_argument("prefix", help="the soak's topic prefix, e.g. sab12cd.")
    parser.add_argument("variants", nargs="+", help="name=VAR:value,VAR:value (or name=)")
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    variants: dict[str, dict[str, str]] = {}
    for spec in args.variants:
        name, _, settings = spec.partition("=")
        variants[name] = dict(kv.split(":", 1) for kv in settings.split(",") if kv)
    workdir = Path(tempfile.mkdtemp(prefix="slaclock-shadow-"))
    hook = Receiver("webhook")
    routing = (
        f"targets:\n  hook: {{kind: webhook, url: '{hook.url}', secret_env: SHADOW_HOOK}}\n"
        "routes:\n  - {match: {type: sla.breach}, targets: [hook]}\n"
    )
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    runs: dict[str, NotifyRun] = {}
    try:
        for name, env in variants.items():
            (workdir / name).mkdir()
            dlq = f"{args.prefix}shadow-{name}.dlq"
            for future in admin.create_topics([NewTopic(dlq, num_partitions=1)]).values():
                future.result(30)
            own = {
                "SHADOW_HOOK": "s",
                "SLACLOCK_NOTIFY_APP_ID": f"{args.prefix}shadow-{name}",
                "SLACLOCK_NOTIFY_DLQ_TOPIC": dlq,
                **env,
            }
            runs[name] = NotifyRun(args.bootstrap, args.prefix, workdir / name, routing, own)
            runs[name].start()
        start = time.monotonic()
        while time.monotonic() - start < args.minutes * 60:
            time.sleep(60)
            row: dict[str, object] = {
                "seconds": round(time.monotonic() - start),
                "delivered": len(hook.requests),
            }
            for name, run in runs.items():
                process = run.process
                if process is None or process.poll() is not None:
                    row[name] = "exited"
                    continue
                row[name] = {"rss_kib": rss_kib(process.pid), **resident_by_kind(process.pid)}
            print(json.dumps(row), flush=True)
    finally:
        for run in runs.values():
            run.stop()
            run.close()
        hook.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
