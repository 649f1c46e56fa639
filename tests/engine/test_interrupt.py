"""A Ctrl-C whose KeyboardInterrupt is swallowed (raised inside a finalizer) still stops the run."""
import os
import signal
import time

import pytest

from engine import interrupt


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_swallowed_by_a_finalizer_is_not_lost():
    previous = signal.getsignal(signal.SIGINT)
    try:
        interrupt.install()
        interrupt.check()  # nothing yet

        class Finalized:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # the handler runs here: Python reports its KeyboardInterrupt as ignored

        Finalized()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    finally:
        signal.signal(signal.SIGINT, previous)
        interrupt.reset()
    interrupt.check()  # a later run in this process is not stopped by it
