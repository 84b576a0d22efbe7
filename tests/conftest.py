"""Shared pytest configuration: fixtures of the real brokers and stores the tests start."""

pytest_plugins = [
    "tests.support.fixtures_mosquitto",
    "tests.support.fixtures_victoria",
    "tests.support.fixtures_postgres",
]
