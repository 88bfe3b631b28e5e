"""The gunicorn target: `gunicorn wsgi:app` (config from AI_GATEWAY_CONFIG or MLflow's variables)."""
from app import create_app

app = create_app()
