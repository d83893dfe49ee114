"""Training-chain domain logic: coalescing data into runs, debouncing drift, and metric gates (all pure)."""
