"""The rollout domain: the canary verdict now; the rollout state machine grows here."""
