"""Approvals: a human's (or a policy's) decision on a candidate model version, from every channel.

* :mod:`~shared.approval.actions` — the Approve / Reject buttons an ``approval.requested`` notification
  carries (their parameters: run id, model, version), and how a clicked button's value is read back;
* :mod:`~shared.approval.decide` — the decision itself, the same for every channel: who may decide
  (``approvers`` per model), whether the candidate is still the one to decide on (unknown, superseded,
  already decided), and the one step ``approval/<run_id>/<version>`` (``approval:decided``) that emits
  ``rollout.requested`` (approve) or marks the candidate rejected (reject);
* :mod:`~shared.approval.slack` and :mod:`~shared.approval.chat` — verifying and reading a Slack
  interaction (signed, ``slack_sdk``) and a Google Chat ``CARD_CLICKED`` event (bearer token), and the
  answer shown to the person who clicked;
* :mod:`~shared.approval.server_image` — the policy for a push that built only a server image: the current
  champion rolled out on the new image.

Nothing here is imported by ``main.py`` at module import except what the two entry points need; slack_sdk
and google-auth's token verification are imported only when a request of theirs arrives.
"""
