"""The pure domain of ``on_git_push``: who sent a webhook, what a push touches, which builds it starts.

* :mod:`shared.ingest.signatures` — GitHub ``X-Hub-Signature-256`` and GitLab ``X-Gitlab-Token``, checked
  over the raw body before anything is parsed.
* :mod:`shared.ingest.routing` — repository, branch/tag and path rules → ignored (with the reason) or the
  list of touched images, conservative when the payload's change list may be incomplete.
* :mod:`shared.ingest.runs` — run ids (lowercase, label-safe, deterministic from the cause) and the
  idempotency key of one image build.
* :mod:`shared.ingest.builds` — one Cloud Build request, as plain data, per touched image.

Nothing here calls a Google API, reads the environment or the pipeline configuration: the function adapter
passes what it read, so every decision is unit-tested on plain values.
"""
