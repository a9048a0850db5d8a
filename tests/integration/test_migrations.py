"""Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from lainaamo.errors import ConfigError
from server.adapters.db import (
    alembic_config,
    current_revision,
    head_revision,
    make_engine,
    require_current_schema,
    upgrade,
)
from server.adapters.orm import Base


def test_migrations_match_the_models_and_go_down_and_up(db_url: str) -> None:
    with pytest.raises(ConfigError, match="lainaamo db upgrade"):
        require_current_schema(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
    require_current_schema(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"
        with engine.begin() as connection:
            config = alembic_config(db_url)
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()
