"""Keep MediaPipe's native log lines off the terminal.

MediaPipe's C++ (glog/absl) and TFLite loggers write several lines per video straight to file
descriptor 2 (XNNPACK delegate, feedback manager, ROI warnings), from their own threads; no
environment variable turns them off (google-ai-edge/mediapipe issues 5737, 6040). Commands
therefore point fd 2 at /dev/null while a video is processed and print their own messages
outside that block, so nothing of ours is lost.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True) -> Iterator[None]:
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
