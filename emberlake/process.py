"""Child processes that do not outlive their parent.

Components run in their own sessions (so a Ctrl-C reaches only the supervisor, which stops them
in order), which also means nothing stops them if the supervisor itself is killed. On Linux the
kernel can: ``PR_SET_PDEATHSIG`` sends the child SIGTERM when its parent dies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    # The parent may have died between fork and prctl: then nobody would ever signal us.
    if os.getppid() == 1:
        os.kill(os.getpid(), signal.SIGTERM)


def child_setup() -> None:
    """``preexec_fn`` for a subprocess: new session, and SIGTERM when the parent dies."""
    os.setsid()
    if sys.platform.startswith("linux"):
        _die_with_parent()
