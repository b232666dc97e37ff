"""Deployment with Terraform: the python-terraform adapter and the plan/deploy/destroy sessions.

Nothing else in eventstate imports this package; python_terraform is imported only here.
"""
