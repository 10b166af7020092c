import predictor as myapp

# gunicorn's entry point: `gunicorn wsgi:app`.
app = myapp.app
