"""Every Cloud Functions entry point of this source tree (deploy each with ``--entry-point NAME``).

Importing this module is cheap by design: heavy clients (Vertex AI, Cloud Run, Cloud Build) are imported on
first use inside ``shared.clients``, never here. The pipeline configuration is validated here, at cold start:
a broken config fails the instance start with an error naming the file and every bad field, instead of
failing (and being retried) event by event.
"""

from functions.notify import notify
from functions.on_approval import on_approval
from functions.on_build_status import on_build_status
from functions.on_chat_approval import on_chat_approval
from functions.on_data_object import on_data_object
from functions.on_drift_alert import on_drift_alert
from functions.on_git_push import on_git_push
from functions.on_training_state import on_training_state
from functions.reconcile import reconcile
from functions.start_rollout import start_rollout
from functions.start_training import start_training
from shared.config import get_config

get_config()

__all__ = [
    "notify",
    "on_approval",
    "on_build_status",
    "on_chat_approval",
    "on_data_object",
    "on_drift_alert",
    "on_git_push",
    "on_training_state",
    "reconcile",
    "start_rollout",
    "start_training",
]
