"""Runtime wiring for Yingke: settings, the composition root, storage adapters, the CLI."""
