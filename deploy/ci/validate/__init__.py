"""deploy/ci's manifest validator, one module per job; run it as `python3 -m validate`."""
