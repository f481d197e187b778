"""`{% key_list "classify" %}`: the key map of frontend/keymap.py as a definition list."""

from django import template

from frontend.keymap import bindings_for

register = template.Library()


@register.inclusion_tag("frontend/_keys.html")
def key_list(page: str) -> dict:
    return {"bindings": bindings_for(page)}
