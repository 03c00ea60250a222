"""(being written)"""
from server.staff import bp  # noqa: F401
