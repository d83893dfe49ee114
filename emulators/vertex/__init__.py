"""The Vertex AI emulator: ``python -m emulators.vertex --host H --port P --project X --state-dir DIR``.

CustomJobs and PipelineJobs (:mod:`emulators.vertex.jobs`), the Model Registry
(:mod:`emulators.vertex.models`); ``docs/emulators.md`` says what is covered.
"""
