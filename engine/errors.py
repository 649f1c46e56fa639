"""Errors that reach the user as one clear message instead of a traceback."""


class EngineError(Exception):
    """A problem the user can fix (bad config, malformed template, missing tool). The message says how."""


class TemplateError(EngineError):
    """A template folder that does not follow the format; the message names the file and the field."""

    def __init__(self, path: object, field: str, problem: str):
        super().__init__(f"{path}: {field}: {problem}")
        self.path, self.field = path, field
