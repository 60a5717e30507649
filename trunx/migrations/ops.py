"""The steps a migration takes, each a no-op where the schema already has its end state
(migration 1 builds a fresh database from today's models, so later steps find their
columns there; see trunx/migrations/__init__.py). Anything these don't cover is `sql`,
written per dialect with the same care (IF NOT EXISTS, or a check first)."""
from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_operations


def dialect(db: peewee.Database) -> str:
    return "postgresql" if isinstance(db, peewee.PostgresqlDatabase) else "sqlite"


class Ops:
    def __init__(self, db: peewee.Database):
        self.db = db
        self.dialect = dialect(db)
        self._migrator = SchemaMigrator.from_database(db)

    def _columns(self, model) -> set[str]:
        return {c.name for c in self.db.get_columns(model._meta.table_name)}

    def create_tables(self, *model_classes) -> None:
        """Tables (and their indexes) that do not exist yet, as the models declare them."""
        self.db.create_tables(model_classes, safe=True)

    def add_column(self, model, field_name: str) -> bool:
        """The model's field as a column, unless the table has it. A new column must be
        nullable or have a default: existing rows need a value."""
        field = model._meta.fields[field_name]
        table = model._meta.table_name
        if field.column_name in self._columns(model):
            return False
        if not field.null and field.default is None:
            raise RuntimeError(f"{table}.{field.column_name} is NOT NULL without a default: "
                               "give it a default, or add it nullable and backfill with sql")
        run_operations(self._migrator.add_column(table, field.column_name, field))
        return True

    def add_missing_columns(self, *model_classes) -> list[str]:
        """Every field a model has and its table lacks (what every process once did at
        start; migration 1 does it for a database from before migrations)."""
        added = []
        for model in model_classes:
            for field in model._meta.sorted_fields:
                if self.add_column(model, field.name):
                    added.append(f"{model._meta.table_name}.{field.column_name}")
        return added

    def add_index(self, model, *field_names: str, unique: bool = False) -> None:
        table = model._meta.table_name
        columns = [model._meta.fields[n].column_name for n in field_names]
        name = f"{table}_{'_'.join(columns)}"
        if any(ix.name == name for ix in self.db.get_indexes(table)):
            return
        run_operations(self._migrator.add_index(table, columns, unique))

    def sql(self, sqlite: str | None = None, postgresql: str | None = None,
            params: tuple = ()) -> None:
        """Raw SQL for this database's dialect (None: nothing to do on it)."""
        statement = sqlite if self.dialect == "sqlite" else postgresql
        if statement:
            self.db.execute_sql(statement, params)
