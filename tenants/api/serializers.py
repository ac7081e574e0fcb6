from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from tenants.jobs import job_label
from tenants.models import JobRun, Tenant


class TenantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["name", "slug", "locale", "timezone", "currency", "brand_color"]


class WhoAmISerializer(serializers.Serializer):
    tenant = TenantSerializer()
    key_prefix = serializers.CharField()
    key_name = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())


class JobRunSerializer(serializers.ModelSerializer):
    label = serializers.SerializerMethodField()
    result_file_url = serializers.SerializerMethodField()

    class Meta:
        model = JobRun
        fields = [
            "id", "kind", "label", "status", "progress", "total", "processed", "error_count",
            "params", "result", "error", "created_at", "started_at", "finished_at", "result_file_url",
        ]
        read_only_fields = fields

    def get_label(self, job: JobRun) -> str:
        return job_label(job.kind)

    def get_result_file_url(self, job: JobRun) -> str | None:
        if not job.result_file:
            return None
        return reverse("api:job-download", args=[job.pk])


class JobStartSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=64)
    params = serializers.DictField(required=False, default=dict)
