"""Database objects and model registry.

Flask-Migrate's autogenerate only sees models whose module has been
imported when the app is set up: every model module must be imported in
``init_app`` below (``from . import user  # noqa: F401``).
"""

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
migrate = Migrate()


def init_app(app):
    db.init_app(app)

    # Import every model module here, or migrations won't see it.
    from . import user  # noqa: F401

    migrate.init_app(app, db)
