"""Admin pieces shared by the apps."""

from django import forms
from django.contrib import admin
from django.utils.html import format_html
from django.utils.text import capfirst


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that change only through Slipway's actions (which lock, check and
    audit): the admin shows them and never edits, adds or deletes."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ShownCheckboxInput(forms.CheckboxInput):
    """A checkbox that says it was on the page, with a hidden ``<name>__shown`` beside it.

    An unticked box sends nothing, so a form without the box (an older page, a form
    that leaves the field out, a script posting some fields) looked exactly like "untick
    it" and turned the setting off. With the marker, neither marker nor box means "not on
    this form": the field keeps its value (``value_omitted_from_data``)."""

    @staticmethod
    def marker(name: str) -> str:
        return f"{name}__shown"

    def render(self, name, value, attrs=None, renderer=None):
        box = super().render(name, value, attrs, renderer)
        return format_html('{}<input type="hidden" name="{}" value="1">', box, self.marker(name))

    def value_omitted_from_data(self, data, files, name):
        return name not in data and self.marker(name) not in data

    def value_from_datadict(self, data, files, name):
        if self.value_omitted_from_data(data, files, name):
            return None
        return super().value_from_datadict(data, files, name)


class KeptBooleanField(forms.NullBooleanField):
    """A yes/no field shown as a checkbox that keeps the stored value when the form did
    not carry it: cleans to None then, which Django's model forms leave unsaved for a
    model field with a default."""

    widget = ShownCheckboxInput

    def has_changed(self, initial, data):
        return data is not None and super().has_changed(initial, data)


def kept_boolean_formfield(db_field, **kwargs) -> KeptBooleanField:
    """The form field for a model ``BooleanField`` (not null, with a default)."""
    return KeptBooleanField(
        label=capfirst(db_field.verbose_name),
        help_text=db_field.help_text,
        initial=db_field.get_default(),
        **kwargs,
    )
