"""admin_api.agents.did_selection: local presence first (area code, then state), then health, on a
real SQLite file; and the NANP table it reads."""
from __future__ import annotations

import datetime as dt

import pytest

from admin_api.agents import did_selection as ds
from trunx import config as trunx_config
from trunx import db
from trunx.models import Account, Call, Did, utcnow


@pytest.fixture
def account(tmp_path):
    database = db.connect(trunx_config.load(env={}, data_dir=str(tmp_path)))
    yield Account.create(name="t")
    database.close()


def dids(account, *numbers):
    for n in numbers:
        Did.create(number=n, account=account)


def calls(account, did, *, answered=0, short=0, failed=0, unanswered=0, machines=0,
          ago=dt.timedelta(days=2), now=None):
    now = now or utcnow()
    at = now - ago
    rows = ([dict(status="completed", answered_at=at, duration=60.0)] * answered
            + [dict(status="completed", answered_at=at, duration=25.0,
                    answered_by="machine_end_beep")] * machines
            + [dict(status="completed", answered_at=at, duration=3.0)] * short
            + [dict(status="failed")] * failed
            + [dict(status="completed")] * unanswered)
    for row in rows:
        Call.create(account=account, direction="outbound", from_number=did,
                    to_number="+12125550000", created_at=at, **row)


# -- the NANP table -------------------------------------------------------------------------

@pytest.mark.parametrize("code,regions", [
    ("212", {"NY"}), ("415", {"CA"}), ("949", {"CA"}), ("305", {"FL"}), ("512", {"TX"}),
    ("202", {"DC"}), ("907", {"AK"}), ("808", {"HI"}), ("312", {"IL"}), ("617", {"MA"}),
    ("206", {"WA"}), ("303", {"CO"}), ("404", {"GA"}), ("702", {"NV"}), ("615", {"TN"}),
    ("945", {"TX"}), ("332", {"NY"}), ("628", {"CA"}), ("839", {"SC"}), ("557", {"MO"}),
    ("787", {"PR"}), ("340", {"VI"}), ("671", {"GU"}),
    ("416", {"ON"}), ("514", {"QC"}), ("604", {"BC"}), ("403", {"AB"}), ("306", {"SK"}),
    ("204", {"MB"}), ("506", {"NB"}), ("709", {"NL"}), ("902", {"NS", "PE"}),
    ("867", {"YT", "NT", "NU"}), ("876", {"JM"}),
])
def test_area_code_table_sample(code, regions):
    assert ds.area_regions()[code] == regions


def test_table_covers_every_us_state_and_canadian_province():
    table = ds.area_regions()
    seen = set().union(*table.values())
    states = set("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS "
                 "MO MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI "
                 "WY".split())
    provinces = set("AB BC MB NB NL NS PE ON QC SK YT NT NU".split())
    assert states | provinces <= seen
    assert len(table) >= 440
    # no toll-free or non-geographic codes, and every code is a valid NPA
    assert not {"800", "833", "844", "855", "866", "877", "888", "500", "600"} & set(table)
    assert all(c[0] in "23456789" and c[1:] != "11" for c in table)


def test_area_code_and_regions_of_a_number():
    assert ds.area_code("+14155551234") == "415"
    assert ds.area_code("+442071234567") is None
    assert ds.regions("+19495551234") == {"CA"}
    assert ds.regions("+18005551234") == frozenset()


# -- the choice -----------------------------------------------------------------------------

def test_same_area_code_wins(account):
    dids(account, "+12125550101", "+14155550101", "+16465550101")
    sel = ds.select_did(account.id, "+14155551234")
    assert (sel.number, sel.reason) == ("+14155550101", "same-area-code")


def test_same_state_when_no_area_code_match(account):
    dids(account, "+12125550101", "+16195550101")     # NY, CA (San Diego)
    sel = ds.select_did(account.id, "+14155551234")   # San Francisco
    assert (sel.number, sel.reason) == ("+16195550101", "same-state")
    assert sel.details["region"] == "CA"


def test_shared_province_codes_count_as_same_state(account):
    dids(account, "+17825550101", "+14165550101")     # 782: NS/PE
    sel = ds.select_did(account.id, "+19025551234")   # 902: NS/PE
    assert (sel.number, sel.reason) == ("+17825550101", "same-state")


def test_health_score_when_nothing_is_local(account):
    dids(account, "+12125550101", "+13125550101")
    calls(account, "+12125550101", answered=2, failed=8)
    calls(account, "+13125550101", answered=8, failed=1)
    sel = ds.select_did(account.id, "+14155551234")
    assert (sel.number, sel.reason) == ("+13125550101", "health-score")
    assert sel.health.score > ds.health(account.id, ["+12125550101"])["+12125550101"].score


def test_health_decides_within_the_local_tier(account):
    dids(account, "+14155550101", "+14155550102", "+12125550101")
    calls(account, "+14155550101", answered=3, short=7)    # people hang up on it
    calls(account, "+14155550102", answered=9, unanswered=1)
    calls(account, "+12125550101", answered=50)            # healthier, but not local
    sel = ds.select_did(account.id, "+14155551234")
    assert (sel.number, sel.reason) == ("+14155550102", "same-area-code")
    assert sel.candidates == 2


def test_recent_heavy_use_is_penalised(account):
    now = utcnow()
    dids(account, "+14155550101", "+14155550102")
    calls(account, "+14155550101", answered=10, ago=dt.timedelta(minutes=10), now=now)
    calls(account, "+14155550102", answered=10, ago=dt.timedelta(days=3), now=now)
    h = ds.health(account.id, ["+14155550101", "+14155550102"], now=now)
    assert h["+14155550101"].recent == 10 and h["+14155550102"].recent == 0
    assert ds.select_did(account.id, "+14155551234", now=now).number == "+14155550102"


def test_old_calls_fall_out_of_the_window(account):
    dids(account, "+14155550101")
    calls(account, "+14155550101", failed=10, ago=dt.timedelta(days=45))
    assert ds.health(account.id, ["+14155550101"])["+14155550101"].calls == 0


def test_health_ignores_other_accounts_and_inbound_calls(account):
    other = Account.create(name="o")
    dids(account, "+14155550101")
    Call.create(account=other, direction="outbound", from_number="+14155550101",
                status="failed")
    Call.create(account=account, direction="inbound", from_number="+14155550101",
                status="failed")
    assert ds.health(account.id, ["+14155550101"])["+14155550101"].calls == 0


def test_fresh_did_scores_between_good_and_bad(account):
    dids(account, "+14155550101", "+14155550102", "+14155550103")
    calls(account, "+14155550101", answered=10)
    calls(account, "+14155550102", failed=10)
    h = ds.health(account.id, ["+14155550101", "+14155550102", "+14155550103"])
    assert h["+14155550101"].score > h["+14155550103"].score > h["+14155550102"].score
    assert 0 <= h["+14155550102"].score <= h["+14155550101"].score <= 100


def test_ties_go_to_the_least_recently_used(account):
    dids(account, "+14155550101", "+14155550102")
    Call.create(account=account, direction="outbound", from_number="+14155550101",
                status="initiated", created_at=utcnow() - dt.timedelta(hours=3))
    # an unfinished call counts as use, not as a result: scores tie, 0102 was never used
    assert ds.select_did(account.id, "+14155551234").number == "+14155550102"


def test_non_nanp_destination_uses_health_only(account):
    dids(account, "+14155550101")
    sel = ds.select_did(account.id, "+442071234567")
    assert (sel.number, sel.reason) == ("+14155550101", "health-score")


def test_no_did(account):
    with pytest.raises(ds.NoDidAvailable):
        ds.select_did(account.id, "+14155551234")


def test_health_as_dict(account):
    dids(account, "+14155550101")
    calls(account, "+14155550101", answered=3, short=1, failed=1)
    d = ds.health(account.id, ["+14155550101"])["+14155550101"].as_dict()
    assert d["calls"] == 5 and set(d) == {"score", "calls", "answerRate", "shortCallRate",
                                          "failureRate", "callsLastHour", "machineAnswers",
                                          "machineRate"}


def test_machine_answers_are_not_human_answers(account):
    """Calls that reach voicemail (answering-machine detection said so) are counted apart:
    a number whose calls go to machines is not healthier for it."""
    dids(account, "+14155550101", "+14155550102")
    calls(account, "+14155550101", answered=2, unanswered=2)
    calls(account, "+14155550102", answered=2, machines=2)
    h = ds.health(account.id, ["+14155550101", "+14155550102"])
    human, machine = h["+14155550101"], h["+14155550102"]
    assert (machine.answered, machine.machines, machine.calls) == (2, 2, 4)
    assert machine.answer_rate == human.answer_rate
    assert machine.as_dict()["machineAnswers"] == 2
    assert machine.as_dict()["machineRate"] == 0.5
