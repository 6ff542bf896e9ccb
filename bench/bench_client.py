"""Client memory under a huge answer: peak RSS of a process reading 400 MiB and 2 GiB answers.

A stdlib server in its own process streams ``GET /api/checks/{id}/results`` answers of a size and
framing encoded in the id (valid JSON: a results object padded with whitespace). Each case runs in
a fresh child process that imports the client, records its RSS high-water mark (``VmHWM``: the
import floor, the baseline of the same run), makes one request and records ``VmHWM`` again:

* 400 MiB chunked, 2 GiB chunked, and 400 MiB announced by ``Content-Length``, at the default
  32 MiB limit: refused (``ResponseTooLargeError``) at the limit, or before reading;
* 400 MiB chunked with the limit raised to 512 MiB: read whole and parsed, the cost of a limit
  above the answer.

Medians of ``--reps`` children per case.

    .venv/bin/python bench/bench_client.py [--reps 3] [--json bench/results/client.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
CHUNKED, CONTENT_LENGTH = 1, 2

#: The server: id = size_in_mib * 10 + framing. Streams, never holds a body in memory.
SERVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HEAD, TAIL = b'{"type": "HLR", "results": [', b"]}"
PAD = b" " * 65536

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = self.path.split("/")
        check_id = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else 0
        size, framing = (check_id // 10) * 1024 * 1024, check_id % 10
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if framing == 2:
            self.send_header("Content-Length", str(size))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pad = max(0, size - len(HEAD) - len(TAIL))
        try:
            self._write(HEAD, framing)
            while pad:
                piece = PAD[: min(pad, len(PAD))]
                self._write(piece, framing)
                pad -= len(piece)
            self._write(TAIL, framing)
            if framing != 2:
                self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _write(self, data, framing):
        if framing == 2:
            self.wfile.write(data)
        else:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.daemon_threads = True
server.serve_forever()
"""

#: One case, in a fresh process: the import floor, then one request, then the peak.
CHILD = r"""
import json, sys, time
from numberyo_provider.api.client import NumberYoClient
from numberyo_provider.errors import NumberYoError

def hwm():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

url, limit_mb, check_id = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
client = NumberYoClient("bench", url, timeout=300, max_retries=0, max_response_mb=limit_mb)
floor = hwm()
started = time.perf_counter()
outcome = "no request"
if check_id:
    try:
        client.get_results(check_id)
        outcome = "read"
    except NumberYoError as exc:
        outcome = type(exc).__name__
print(json.dumps({"floor": floor, "peak": hwm(), "seconds": time.perf_counter() - started,
                  "outcome": outcome}))
"""

#: name -> (answer MiB, framing, client limit MiB); size 0 = no request (the import floor).
CASES: dict[str, tuple[int, int, float]] = {
    "import floor (no request)": (0, CHUNKED, 32),
    "400 MiB chunked, 32 MiB limit": (400, CHUNKED, 32),
    "2 GiB chunked, 32 MiB limit": (2048, CHUNKED, 32),
    "400 MiB Content-Length, 32 MiB limit": (400, CONTENT_LENGTH, 32),
    "400 MiB chunked, limit raised to 512 MiB": (400, CHUNKED, 512),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/api/checks/0/results", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not start within 30 s")


def run_case(url: str, size_mib: int, framing: int, limit_mb: float) -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    check_id = size_mib * 10 + framing if size_mib else 0
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(limit_mb), str(check_id)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    proc, url = start_server()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CASES}
    try:
        for rep in range(args.reps):
            for name, (size, framing, limit) in CASES.items():
                runs[name].append(run_case(url, size, framing, limit))
                last = runs[name][-1]
                print(
                    f"rep {rep + 1} {name}: peak {last['peak'] / MIB:.1f} MiB "
                    f"({last['outcome']}, {last['seconds']:.2f} s)",
                    file=sys.stderr,
                )
    finally:
        proc.terminate()
        proc.wait(10)

    floor = statistics.median(r["peak"] for r in runs["import floor (no request)"])
    cases = {}
    for name, results in runs.items():
        peak = statistics.median(r["peak"] for r in results)
        cases[name] = {
            "peak_mib": round(peak / MIB, 1),
            "above_floor_mib": round((peak - floor) / MIB, 1),
            "seconds": round(statistics.median(r["seconds"] for r in results), 3),
            "outcome": results[-1]["outcome"],
        }
    result = {
        "reps": args.reps,
        "import_floor_mib": round(floor / MIB, 1),
        "cases": cases,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(f"client memory (median of {args.reps} fresh processes per case):")
    for name, case in cases.items():
        print(
            f"  {name}: peak RSS {case['peak_mib']:.1f} MiB, {case['above_floor_mib']:+.1f} MiB "
            f"over the import floor, {case['seconds']:.2f} s, {case['outcome']}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
