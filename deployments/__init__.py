"""Every Prefect deployment of the project, declared once in ``deployments.registry``."""
