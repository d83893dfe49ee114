"""A small framework for API emulators that the unmodified Google client libraries can talk to.

- :mod:`.server`: :class:`~.server.ApiServer` — REST routes from the clients' ``google.api.http`` rules,
  optional gRPC, Google-shaped errors, admin endpoints under ``/_emulator/``.
- :mod:`.operations`: long-running operations; :mod:`.faults`: fault injection and latency by method name.
- :mod:`.filtering`: AIP-160 list filters; :mod:`.paging`: page tokens; :mod:`.messages`: JSON/bytes
  conversions of proto-plus and protobuf messages; :mod:`.routing`: URI templates.
- :mod:`.admin`: :class:`~.admin.EmulatorAdmin`, the Python client of the admin endpoints.
- :mod:`.cli`: the command line of ``python -m emulators.cloudbuild`` and ``python -m emulators.vertex``.
"""
