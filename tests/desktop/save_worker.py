"""A child process that saves entries in a loop, to be killed with SIGKILL by test_crash_safety.

    python -m tests.desktop.save_worker DATA_DIR

Prints ``begin N`` before each Submit and ``saved N ID`` after its commit. Submit is slowed down
inside its transaction (between assigning ``device_seq`` and inserting) so that a kill often lands
in the middle of one.
"""

from __future__ import annotations

import sys
import time

from desktop.clock import SystemClock
from desktop.services.entries import EntryService
from desktop.store import Store, outbox

from tests.desktop.helpers import fill_alsfrs, fill_dose, fill_nasal


def main(data_dir: str) -> None:
    real = outbox.load_record

    def slow(env, **kw):
        time.sleep(0.02)
        return real(env, **kw)
    outbox.load_record = slow
    store = Store(data_dir)
    svc = EntryService(store, SystemClock())
    n = 0
    while True:
        n += 1
        kind = n % 3
        d = fill_alsfrs(svc) if kind == 0 else fill_nasal(svc) if kind == 1 else fill_dose(svc)
        print(f"begin {n}", flush=True)
        entry = svc.submit(d, "en").entry
        print(f"saved {n} {entry.id}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
