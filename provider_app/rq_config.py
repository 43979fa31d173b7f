"""Settings module for the rq command line: ``rq worker -c provider_app.rq_config ...``.

It gives workers the same Redis as the app (URL or Sentinel, redis_connect.py)
and the same JSON logs (logging_setup.py) before rq installs its own handlers.
rq reads the UPPERCASE names below.
"""

from __future__ import annotations

import os

from .logging_setup import configure_logging
from .redis_connect import rq_cli_settings
from .settings import wanted_log_format

configure_logging(wanted_log_format(os.environ), os.environ.get("LOG_LEVEL", "INFO"))

_settings = rq_cli_settings(os.environ)
REDIS_URL = _settings.get("REDIS_URL")
SENTINEL = _settings.get("SENTINEL")
QUEUES = ["high", "default", "low"]
