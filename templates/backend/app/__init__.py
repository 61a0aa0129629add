"""Demo Flask backend used by devtool's templates.

`create_app()` is the application factory; the Flask CLI finds it through
``FLASK_APP=app:create_app`` (set in the Dockerfile), which is what makes
``flask db ...`` (Flask-Migrate) work inside the container.
"""

import os

from flask import Flask, jsonify


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=os.environ.get(
            "DATABASE_URL", "postgresql://devtool:devtool@db:5432/devtool"
        ),
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
        # A pooled connection the server closed (a database restart, `devtool snapshot` / `restore`) is
        # replaced before use instead of failing the next request.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
    )
    if test_config:
        app.config.update(test_config)

    from . import models

    models.init_app(app)

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    return app
