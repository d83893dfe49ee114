"""The rollout domain: the canary verdict (:mod:`.analysis`), the rollout state machine (:mod:`.machine`) and
the smoke checks on a candidate's tag URL (:mod:`.smoke`). The adapters are in :mod:`shared.chain.rollout`."""
