"""Test helper: kill a child process by SIGKILL once its checkpoint has reached a given progress."""
import os
import signal
import time

import numpy as np


def kill_at_checkpoint(proc, path, progress_index, at_least, timeout=120.0):
    """Poll the ``.npz`` checkpoint ``path`` of the running ``proc``; SIGKILL it as soon as
    ``scalars[progress_index] >= at_least``. Returns that progress value, or None if the child ended
    (or the timeout passed) first. The child is always reaped."""
    t0 = time.time()
    try:
        while time.time() - t0 < timeout:
            if os.path.exists(path):
                with np.load(path) as d:
                    done = int(d["scalars"][progress_index])
                if done >= at_least:
                    proc.send_signal(signal.SIGKILL)
                    return done
            if proc.poll() is not None:
                return None
            time.sleep(0.002)
        return None
    finally:
        proc.kill()
        proc.wait()
