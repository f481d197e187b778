"""Errors the services raise; the API turns each into a JSON reply with its status code."""


class LabelingError(Exception):
    status_code = 400
    code = "invalid"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(LabelingError):
    status_code = 400
    code = "invalid"


class NotFound(LabelingError):
    status_code = 404
    code = "not_found"


class Conflict(LabelingError):
    status_code = 409
    code = "conflict"


class Forbidden(LabelingError):
    status_code = 403
    code = "forbidden"
