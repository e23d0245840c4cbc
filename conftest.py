"""Root conftest: real-server fixtures for every test suite in the workspace."""

pytest_plugins = ["tollgate_testkit.fixtures"]
