"""devtool: one command from a model change to a migrated database in a Docker Compose stack."""

__version__ = "0.1.0"
