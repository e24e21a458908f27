# NOTE: importing ironic's unit test package first selects the threading
# backend and registers the versioned objects the conductor tests need.
import ironic.tests.unit  # noqa: F401
