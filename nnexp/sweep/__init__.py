"""Around Hydra's launchers and sweepers: the sweep's ledger (one line per job) and the supervision that
stops a sweep's workers when the sweep itself is gone."""
