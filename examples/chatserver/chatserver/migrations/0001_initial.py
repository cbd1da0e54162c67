import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [migrations.swappable_dependency(settings.AUTH_USER_MODEL)]

    operations = [
        migrations.CreateModel(
            name="Incident",
            fields=[
                ("id", models.AutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("title", models.CharField(max_length=120)),
                ("severity", models.CharField(choices=[("sev1", "SEV-1"), ("sev2", "SEV-2"), ("sev3", "SEV-3")],
                                              default="sev3", max_length=8)),
                ("status", models.CharField(choices=[("open", "Open"), ("investigating", "Investigating"),
                                                     ("mitigated", "Mitigated"), ("resolved", "Resolved")],
                                            default="open", max_length=16)),
                ("note", models.CharField(blank=True, max_length=200)),
                ("updated", models.DateTimeField(auto_now=True)),
                ("opened_by", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL,
                                                to=settings.AUTH_USER_MODEL)),
            ],
            options={"ordering": ["-pk"]},
        ),
    ]
