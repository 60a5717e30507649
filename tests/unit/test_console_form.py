"""The console's IVR editor form (admin_api/console/ivr_form.py): row numbers in field names
are ASCII digits; anything else in a posted form is ignored, never a 500."""
from admin_api.console import ivr_form


def test_rows_other_than_ascii_numbers_are_ignored():
    form = {"n0.name": "menu", "n0.kind": "gather", "n².name": "x", "n١.name": "y",
            "nx.name": "z"}
    _, rows = ivr_form.from_form(form)
    assert [row.name for row in rows] == ["menu"]
