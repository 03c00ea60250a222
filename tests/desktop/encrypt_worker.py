"""Run the in-place encryption of a plain client database and SIGKILL the process at one step.

    python -m tests.desktop.encrypt_worker DATA_DIR KEY_HEX STEP

STEP is one of the hooks of ``desktop.store.cipher.encrypt_in_place`` (journal, exported, verified,
replaced) or ``none`` (run to the end).
"""

import os
import signal
import sys
from pathlib import Path

from desktop.store.cipher import encrypt_in_place
from desktop.store.db import DB_FILENAME


def main() -> None:
    data_dir, key_hex, step = sys.argv[1:4]

    def hook(name: str) -> None:
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    encrypt_in_place(Path(data_dir) / DB_FILENAME, bytes.fromhex(key_hex), hook)
    print("done")


if __name__ == "__main__":
    main()
