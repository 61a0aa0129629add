"""Where commands run. `compose`: the backend service's container of a compose project (the default)."""
