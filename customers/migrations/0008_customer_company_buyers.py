"""One partial index for a company's buyers instead of two over every customer.

(tenant_id, company_id) and Django's (company_id) for the foreign key indexed every customer,
most of whom have no company: each new consumer paid two index writes for nothing. A company
belongs to one tenant, so (company_id, id DESC) WHERE company_id IS NOT NULL serves the company
page (its buyers, newest first), SET_NULL and the foreign key check when a company is deleted.

On PostgreSQL the indexes are built and dropped CONCURRENTLY: a million-row table keeps taking
writes meanwhile (hence atomic = False). SQLite (the embedded mode) does it plainly.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models
from django.db.models import Q

FK_INDEX = "customers_customer_company_id_d9d820a0"  # the name Django gave the foreign key's index


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class RemoveIndexConcurrentlyOnPostgres(RemoveIndexConcurrently):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.RemoveIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.RemoveIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class AlterFieldDroppingIndexConcurrently(migrations.AlterField):
    """The foreign key loses its own index: DROP INDEX CONCURRENTLY on PostgreSQL."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {FK_INDEX}")
        else:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {FK_INDEX} ON customers_customer (company_id)")
        else:
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("customers", "0007_segments"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="customer",
            index=models.Index(condition=Q(company__isnull=False), fields=["company", "-id"], name="customer_company_buyers"),
        ),
        RemoveIndexConcurrentlyOnPostgres(model_name="customer", name="customer_tenant_company"),
        AlterFieldDroppingIndexConcurrently(
            model_name="customer",
            name="company",
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=models.deletion.SET_NULL, related_name="buyers",
                                    to="customers.company"),
        ),
    ]
