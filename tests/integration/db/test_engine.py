"""The engine: a plain URL locally, the Cloud SQL connector in GCP, never the connector locally."""

from __future__ import annotations

import pg8000.dbapi
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from shared.config import ConfigurationError, load_settings
from shared.db import engine as db_engine


class FakeConnector:
    """Stands in for google.cloud.sql.connector.Connector, connecting to the test database."""

    instances: list[FakeConnector] = []

    def __init__(self, **options):
        self.options = options
        self.calls: list[tuple] = []
        FakeConnector.instances.append(self)

    def connect(self, instance, driver, **kwargs):
        self.calls.append((instance, driver, kwargs))
        url = make_url(self.target)
        return pg8000.dbapi.connect(
            user=url.username, host=url.host, port=url.port, database=url.database
        )


@pytest.fixture
def fake_connector(monkeypatch, database_url):
    import google.cloud.sql.connector as connector_module

    FakeConnector.instances = []
    FakeConnector.target = database_url
    monkeypatch.setattr(connector_module, "Connector", FakeConnector)
    monkeypatch.setattr(db_engine, "_connector", None)
    return FakeConnector


def test_cloud_sql_path_uses_the_connector_as_creator(fake_connector):
    settings = load_settings(
        database_url=None,
        instance_connection_name="proj:europe-west1:coinfrs",
        db_user="coinfrs",
        db_name="coinfrs",
        db_pass="pw",
        db_private_ip=True,
    )
    engine = db_engine.make_engine(settings)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
    [connector] = fake_connector.instances
    assert str(connector.options["ip_type"]).endswith("PRIVATE")
    instance, driver, kwargs = connector.calls[0]
    assert (instance, driver) == ("proj:europe-west1:coinfrs", "pg8000")
    assert kwargs == {"user": "coinfrs", "db": "coinfrs", "password": "pw"}


def test_iam_auth_sends_no_password(fake_connector):
    settings = load_settings(
        database_url=None,
        instance_connection_name="p:r:i",
        db_user="sa@p.iam",
        db_name="coinfrs",
        db_iam_auth=True,
    )
    engine = db_engine.make_engine(settings)
    with engine.connect():
        pass
    engine.dispose()
    assert fake_connector.instances[0].calls[0][2] == {
        "user": "sa@p.iam",
        "db": "coinfrs",
        "enable_iam_auth": True,
    }


def test_a_database_url_never_constructs_the_connector(fake_connector, database_url):
    engine = db_engine.make_engine(load_settings())
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert fake_connector.instances == []


def test_neither_setting_is_a_named_configuration_error(monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    with pytest.raises(ConfigurationError, match="DATABASE_URL"):
        db_engine.make_engine(load_settings())


def test_both_settings_are_refused():
    with pytest.raises(ConfigurationError, match="set one, not both"):
        load_settings(instance_connection_name="p:r:i", db_user="u", db_name="d")
