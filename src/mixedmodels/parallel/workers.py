"""What tasks sent to a ``concurrent.futures`` executor share within one worker process.

A task for the bootstrap, the profile or group deletion carries its model or fit pickled. A
worker runs many such tasks, possibly in several threads; ``unpickled`` builds the object once
per worker process and payload and hands the same one to every task.
"""

from __future__ import annotations

import pickle
import threading

__all__ = ["unpickled"]

_KEPT = 4  # payloads kept per worker process (the most recent)
_CACHE: dict = {}
_LOCK = threading.Lock()


def unpickled(payload: bytes, build=pickle.loads):
    """``build(payload)``, computed once per worker process for each (build, payload)."""
    key = (build, payload)
    with _LOCK:
        if key not in _CACHE:
            if len(_CACHE) >= _KEPT:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = build(payload)
        return _CACHE[key]
