"""``trim_heap`` against the real C library: heap memory the process freed goes back to the system.

Why it matters: the DuckDB merge allocates through its own allocator, so what glibc's heap keeps
of the extract's freed memory would otherwise stay resident under the merge's peak.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from numberyo_provider.sync.heap import trim_heap

GLIBC = platform.libc_ver()[0] == "glibc"


#: Run in a fresh interpreter: in a long-lived process (a test worker) the heap is already
#: fragmented, the small pieces land in old holes, and the big ones end up at the heap's top, which
#: glibc trims by itself on free: the holes this test needs would not be there.
CHILD = """
import json
from numberyo_provider.sync.heap import trim_heap

def rss_anon_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) / 1024 for l in status if l.startswith("RssAnon:"))

# 64 MB in 32 KB pieces (below malloc's mmap threshold: from the heap), each followed by a 1 KB
# piece that stays, so the freed ones are holes the heap cannot give back by itself.
kept, freed = [], []
for _ in range(2_000):
    freed.append(bytearray(32 * 1024))
    kept.append(bytearray(1024))
start = rss_anon_mb()
freed.clear()
before = rss_anon_mb()
trimmed = trim_heap()
after = rss_anon_mb()
print(json.dumps({"held": start - before, "given_back": before - after, "trimmed": trimmed}))
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's; elsewhere trim_heap does nothing")
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60
    )
    result = json.loads(done.stdout)
    assert result["trimmed"] is True
    assert result["held"] < 8, f"freeing alone gave back {result['held']:.1f} MB: no holes made"
    assert result["given_back"] > 32, f"only {result['given_back']:.1f} MB of 64 MB went back"


def test_without_glibc_it_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    from numberyo_provider.sync import heap

    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    assert trim_heap() is False
