"""Transfer Studio core: all the work, usable from the app, the CLI, tests and notebooks."""
