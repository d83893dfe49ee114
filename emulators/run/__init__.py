"""The Cloud Run Admin API v2 emulator: services, revisions that run as local processes, a traffic router.

See :mod:`emulators.run.service` (the API), :mod:`emulators.run.admin` (the ``/_emulator/`` endpoints),
:mod:`emulators.run.router` and ``docs/emulators.md``.
"""
