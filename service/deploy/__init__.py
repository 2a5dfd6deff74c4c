"""The deployment on Google Cloud, declared in ``eventarc.yaml`` and planned as gcloud commands."""
