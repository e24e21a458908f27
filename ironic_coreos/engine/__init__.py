"""The shared engine of ironic-coreos.

Pure Python used by the conductor interface, the agent step and the command
line tools alike. Nothing in this package imports ironic or
ironic_python_agent.
"""
