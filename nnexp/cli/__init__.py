"""The `nnexp` command: arguments and `--help`, the checks that refuse a bad config before any folder
exists (preflight, checks), and the hooks nnexp adds to Hydra. `command.main` is the entry point."""
