"""Stopping a job cleanly on SIGTERM or SIGINT."""

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)


def install_stop_handlers(stop: threading.Event) -> None:
    """Set `stop` on the first SIGTERM or SIGINT; a second one stops at once.

    Jobs check `stop` between steps, so a worker finishes or releases its block
    before it exits. Only the main thread may install handlers.
    """

    def request_stop(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            logger.warning(
                "second stop signal, exiting at once", extra={"signal": signum}
            )
            raise SystemExit(128 + signum)
        logger.info("stop requested", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
