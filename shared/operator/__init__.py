"""The operator command: ``python -m shared.operator COMMAND`` — what the pipeline did, from the run ledger.

* ``runs [--limit N] [--status S] [--json]`` — the latest runs, one per line: id, status, cause, start, age
  and the last step;
* ``status RUN_ID [--json]`` — one run's chain: every step with its status, start, finish, duration and a
  summary of its detail.

It reads the ledger the functions write (Firestore through :mod:`shared.clients`: the emulator when
``FIRESTORE_EMULATOR_HOST`` is set, else the project of ``GOOGLE_CLOUD_PROJECT`` / the config) with the
configuration of ``PIPELINE_CONFIG``. Exit codes: 0 done, 1 the ledger did not answer, 2 a usage error, an
unknown run id or a configuration that cannot be used.

Adding a command (``approve``, ``reject``, ``deploy``): a module here with ``register(commands)`` that adds an
``argparse`` sub-parser whose ``handler(args, runtime) -> int`` does the work, and one line in
:data:`shared.operator.cli.COMMANDS`. Tests run :func:`shared.operator.cli.main` inside
``shared.runtime.use(runtime)`` with an in-memory ledger.
"""
