"""devtool's agent: runs *inside* the backend container, loads the Flask app and does the work there.

devtool copies this package into the container (as `devtool_agent`, keyed by its content hash) and runs it
with the app's own Python, so it may use only the standard library and what the app installs (Flask,
Flask-Migrate, Alembic, SQLAlchemy), from Python 3.8 and with Flask 2/3, Flask-SQLAlchemy 2/3, Flask-Migrate 3/4,
SQLAlchemy 1.4/2.x. The host imports only `protocol` (the contract) and, in tests, `review` (pure).

Modules: protocol (requests, results, codes), app (loading the app, naming failures), review (judging revision
files), models (models the app never loads), enums (enum types in autogenerate), dialects (lock, enum SQL), apply
(upgrade), actions (one function per request), files (ownership of written files), server (the warm server), main
(entry point and dispatch table).
"""
