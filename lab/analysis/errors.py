"""The one error the analyser raises for input it cannot use."""

from lab.errors import LabError


class CaptureError(LabError):
    """The capture is missing, unreadable, damaged or holds nothing to analyse.

    The message is one line: what is wrong, with which file, and what to do.
    """
