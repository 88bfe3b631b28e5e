"""MLflow-compatible invocations: POST /endpoints/<name>/invocations and /gateway/<name>/invocations."""
from flask import Blueprint, Response

from app.api.dispatch import invoke, lookup, read_json
from app.errors import InvalidRequest

bp = Blueprint("invocations", __name__)


@bp.post("/endpoints/<name>/invocations")
@bp.post("/gateway/<name>/invocations")
def invocations(name: str) -> Response:
    live = lookup(name)
    payload = read_json()
    if "model" in payload:
        raise InvalidRequest(
            "The 'model' field is not allowed here: the endpoint decides the model.", param="model"
        )
    return invoke(live, payload)
