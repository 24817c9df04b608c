"""Stopping a job cleanly on SIGTERM or SIGINT."""

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)


def install_stop_handlers(stop: threading.Event) -> None:
    """Set `stop` on SIGTERM or SIGINT; a second Ctrl-C (SIGINT) stops at once.

    Jobs check `stop` between steps, so a worker finishes or releases its block
    before it exits. A SIGTERM that follows a SIGINT is the same request again (a
    supervisor passing on the terminal's Ctrl-C), not an order to hurry. Only the
    main thread may install handlers.
    """
    interrupts = 0

    def request_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            interrupts += 1
            if interrupts > 1:
                logger.warning(
                    "second interrupt, exiting at once", extra={"signal": name}
                )
                raise SystemExit(128 + signum)
        if not stop.is_set():
            logger.info("stop requested", extra={"signal": name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
