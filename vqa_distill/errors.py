"""The project's error hierarchy, one class per way a run can go wrong.

```
VqaDistillError
├── FatalRunError            the whole run cannot proceed: stop once, early, clearly (exit code 3)
│   ├── TeacherAuthError         the API key was refused (401/403)
│   ├── TeacherUnreachableError  the endpoint did not answer (DNS, refused, TLS, timeout)
│   ├── TeacherModelError        the endpoint answered but does not serve the model (404)
│   ├── ConfigError              a bad option, config file or parameter
│   └── ModelNotFoundError       a student model path/id that does not exist or is unknown
├── ImageError               one image cannot be used (decode failure): recorded, the run goes on
├── TeacherError             one teacher request went wrong
│   ├── TransientTeacherError    worth retrying: 429, 5xx, timeouts, connection drops, broken JSON
│   │   └── LedgerUnavailable        the ledger's database dropped the connection (a restart, a network cut)
│   └── PermanentTeacherError    not worth retrying: 400 and other 4xx, a refused image
└── DatasetError             dataset rows that cannot be trained on (named by line and reason)
```
Library errors (openai, httpx, PIL) are translated at one boundary each: ``raise Ours(...) from exc``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_FAILED = 2
EXIT_FATAL = 3


class VqaDistillError(Exception):
    """Base of every error this project raises on purpose."""


class FatalRunError(VqaDistillError):
    """Raised when the run as a whole cannot proceed; the CLI exits with EXIT_FATAL."""


class TeacherAuthError(FatalRunError):
    """Raised by the preflight when the endpoint refuses the API key."""


class TeacherUnreachableError(FatalRunError):
    """Raised by the preflight when the endpoint cannot be reached at all."""


class TeacherModelError(FatalRunError):
    """Raised by the preflight when the endpoint does not serve the requested model."""


class ConfigError(FatalRunError):
    """Raised for invalid options, config files or flow parameters."""


class ModelNotFoundError(FatalRunError):
    """Raised when a student model path or hub id does not exist or is of an unknown type."""


class ImageError(VqaDistillError):
    """Raised when one image cannot be decoded or prepared; the run records it and goes on."""


class TeacherError(VqaDistillError):
    """Raised when one teacher request fails; carries what the API said."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class TransientTeacherError(TeacherError):
    """Raised for failures that a later attempt may not see (429, 5xx, timeouts, broken JSON)."""


class LedgerUnavailable(TransientTeacherError):
    """Raised when the ledger's database cannot be reached mid-run; the task's retry policy retries it."""


class PermanentTeacherError(TeacherError):
    """Raised for failures that every attempt would see again (400 and other 4xx)."""


class DatasetError(VqaDistillError):
    """Raised when a dataset file has rows that must not reach training."""
