"""Deploy to a Google Cloud project from ``pipeline.yaml`` and ``main.py`` (docs/deploy.md).

``discover`` reads the entry points from the source, ``wiring`` checks them against the config, ``plan`` and
``resources`` derive the steps (``model``), ``render`` prints them (text, Cloud Build), ``apply`` runs them
(describe, then create or update), ``gcloudtree`` checks commands against the installed Cloud CLI,
``reference`` writes docs/config-reference.md from schema/pipeline.schema.json. Nothing here is imported by
a function at cold start.
"""
