# NOTE: ironic-python-agent 13 reads its options at import time; load them
# before any agent module is imported by a test.
from ironic_python_agent import config  # noqa: F401
