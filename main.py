"""Every Cloud Functions entry point of this source tree (deploy each with ``--entry-point NAME``).

Importing this module is cheap by design: heavy clients (Vertex AI, Cloud Run, Cloud Build) are imported on
first use inside ``shared.clients``, never here.
"""

from functions.notify import notify

__all__ = ["notify"]
