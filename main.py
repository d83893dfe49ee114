"""Every Cloud Functions entry point of this source tree (deploy each with ``--entry-point NAME``).

Importing this module is cheap by design: heavy clients (Vertex AI, Cloud Run, Cloud Build) are imported on
first use inside ``shared.clients``, never here. The pipeline configuration is validated here, at cold start:
a broken config fails the instance start with an error naming the file and every bad field, instead of
failing (and being retried) event by event.
"""

from functions.notify import notify
from shared.config import get_config

get_config()

__all__ = ["notify"]
