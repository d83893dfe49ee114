"""The Cloud Monitoring emulator (ListTimeSeries over gRPC and REST) and the metrics store it reads.

See :mod:`emulators.monitoring.service` and ``docs/emulators.md``.
"""
