from django.urls import include, path

from tenants.views import auth, dashboard

app_name = "tenants"

tenant_patterns = [
    path("", dashboard.OverviewView.as_view(), name="overview"),
    *[
        path(f"{key}/", dashboard.SectionView.as_view(section_title=title, section_text=text), name=f"section_{key}")
        for key, (title, text) in dashboard.SECTIONS.items()
    ],
    path("jobs/", dashboard.JobListView.as_view(), name="jobs"),
    path("jobs/<int:job_id>/", dashboard.JobDetailView.as_view(), name="job_detail"),
    path("jobs/<int:job_id>/download/", dashboard.JobDownloadView.as_view(), name="job_download"),
    path("settings/", dashboard.TenantSettingsView.as_view(), name="settings"),
    path("settings/logo/", dashboard.LogoView.as_view(), name="logo"),
    path("settings/members/", dashboard.MemberListView.as_view(), name="members"),
    path("settings/members/<int:membership_id>/role/", dashboard.MemberRoleView.as_view(), name="member_role"),
    path("settings/members/<int:membership_id>/remove/", dashboard.MemberRemoveView.as_view(), name="member_remove"),
    path(
        "settings/invitations/<int:invitation_id>/revoke/",
        dashboard.InvitationRevokeView.as_view(),
        name="invitation_revoke",
    ),
    path("settings/api-keys/", dashboard.ApiKeyListView.as_view(), name="api_keys"),
    path("settings/api-keys/<int:api_key_id>/revoke/", dashboard.ApiKeyRevokeView.as_view(), name="api_key_revoke"),
    path("audit/", dashboard.AuditLogView.as_view(), name="audit_log"),
]

urlpatterns = [
    path("", auth.home, name="home"),
    path("accounts/sign-in/", auth.SignInView.as_view(), name="login"),
    path("accounts/sign-out/", auth.SignOutView.as_view(), name="logout"),
    path("accounts/language/", auth.set_language, name="set_language"),
    path("accounts/password-reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/password-reset/sent/", auth.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "accounts/password-reset/<uidb64>/<token>/",
        auth.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("accounts/password-reset/done/", auth.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("invite/<str:token>/", auth.accept_invitation, name="accept_invitation"),
    path("t/", auth.tenant_list, name="tenant_list"),
    path("t/<slug:tenant_slug>/", include(tenant_patterns)),
]
