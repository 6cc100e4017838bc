"""The one exception the tools show to users as a single line."""


class LabError(Exception):
    """Something the user can fix: the message says what, where, and what to do."""
