"""Contract suites: one base class per seam, run against its fake (unit tier) and its real backend
(integration tier)."""
