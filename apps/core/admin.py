"""Admin pieces shared by the apps."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that change only through Slipway's actions (which lock, check and
    audit): the admin shows them and never edits, adds or deletes."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
