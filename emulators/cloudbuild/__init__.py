"""The Cloud Build emulator: ``python -m emulators.cloudbuild --host H --port P --project X --state-dir DIR``.

See :mod:`emulators.cloudbuild.service` for the API surface and ``docs/emulators.md`` for what it covers.
"""
