"""The installed Qt binding keeps Python's reference counts: PySide6 6.12.0 on Python 3.11 dropped a
reference to None with every call of a Qt method that returns nothing, and after some tens of
thousands of calls (a long session with live plots) the process aborted with "deallocating None"."""
import sys

import pytest
from PySide6.QtWidgets import QLabel


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="None is immortal from Python 3.12 on")
def test_void_qt_calls_keep_the_reference_count_of_none(qapp):
    label = QLabel()
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("a")
    assert sys.getrefcount(None) >= before - 10  # other code may run meanwhile; 6.12.0 lost 2000
