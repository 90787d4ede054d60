"""The public pages' limits and the machine-open rules, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.survey.domain.opens import OpenedBy, opened_by
from services.survey.domain.ratelimit import PublicLimiter, PublicLimits, client_key

DEFAULTS = PublicLimits()
OFFICE = "203.0.113.7"
SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def _served(limiter: PublicLimiter, client: str, link: str | None, times: int, now: float = 0.0) -> int:
    return sum(limiter.admit(client, link, now) == 0 for _ in range(times))


def test_a_scanner_fetching_every_link_of_one_email_twice_over_is_served() -> None:
    limiter = PublicLimiter(DEFAULTS)
    # 13 links to the pages (11 scores, the survey, unsubscribe), each HEAD and GET, by two gateways.
    assert _served(limiter, "198.51.100.1", "link-of-one-email", 26) == 26
    assert _served(limiter, "198.51.100.2", "link-of-one-email", 26) == 26


def test_hammering_one_link_is_held_to_its_rate_wherever_it_comes_from() -> None:
    limiter = PublicLimiter(DEFAULTS)
    served = sum(limiter.admit(f"192.0.2.{n % 200}", "one-link", 0.0) == 0 for n in range(200))
    assert served == DEFAULTS.link_per_minute
    assert limiter.admit("192.0.2.250", "one-link", 0.0) == 1.0  # one more a second
    assert limiter.admit("192.0.2.250", "one-link", 1.0) == 0


def test_a_company_behind_one_address_is_served_link_after_link() -> None:
    limiter = PublicLimiter(DEFAULTS)
    # 500 people, each opening the survey from the email and answering, and a few reloading.
    served = sum(limiter.admit(OFFICE, f"link-{n}", 0.0) == 0 for n in range(500) for _ in range(6))
    assert served == 3000
    assert limiter.admit(OFFICE, "link-500", 0.0) > 0  # the ceiling is only a safety net


def test_a_client_missing_too_often_is_refused_everything_until_its_misses_drain() -> None:
    limiter = PublicLimiter(DEFAULTS)
    for _ in range(10):
        assert limiter.admit(OFFICE, "a-guess", 0.0) == 0
        limiter.missed(OFFICE, 0.0)
    assert limiter.admit(OFFICE, "a-real-link", 0.0) == 6.0  # ten a minute: one every 6 s
    assert limiter.admit("198.51.100.9", "a-real-link", 0.0) == 0  # others are not affected
    assert limiter.admit(OFFICE, "a-real-link", 6.0) == 0


def test_misses_in_flight_at_once_all_count_but_the_debt_is_at_most_a_minute() -> None:
    limiter = PublicLimiter(DEFAULTS)
    for _ in range(1000):  # a flood that passed the check before any lookup came back
        limiter.missed(OFFICE, 0.0)
    assert limiter.admit(OFFICE, None, 0.0) == 66.0  # a minute's debt paid, then one more miss
    assert limiter.admit(OFFICE, None, 66.0) == 0


@given(st.lists(st.tuples(st.floats(0, 30), st.booleans()), max_size=300))
def test_a_guesser_never_gets_more_misses_than_the_rate_allows(requests: list[tuple[float, bool]]) -> None:
    """Whatever the timing: misses served in a window never exceed a minute's worth plus the rate."""
    limiter = PublicLimiter(DEFAULTS)
    misses = 0
    now = 0.0
    for step, _ in requests:
        now += step
        if limiter.admit(OFFICE, None, now) == 0:
            limiter.missed(OFFICE, now)
            misses += 1
    assert misses <= DEFAULTS.misses_per_minute + now * DEFAULTS.misses_per_minute / 60 + 1e-9


def test_ipv6_clients_are_one_client_per_64_and_mapped_ipv4_is_ipv4() -> None:
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.7") == OFFICE == client_key(OFFICE)
    assert client_key("testclient") == "testclient"


def _by(user_agent: str | None, address: str = OFFICE, after: timedelta = timedelta(hours=2)) -> OpenedBy:
    return opened_by(
        user_agent=user_agent,
        client_address=address,
        emailed_at=SENT,
        now=SENT + after,
        on_delivery=timedelta(seconds=10),
    )


def test_apple_mail_privacy_protection_is_a_machine_by_address_or_by_its_bare_user_agent() -> None:
    assert _by("Mozilla/5.0", "198.51.100.4") is OpenedBy.APPLE_PRIVACY_PROXY
    assert _by(BROWSER, "17.58.101.7") is OpenedBy.APPLE_PRIVACY_PROXY
    assert _by(BROWSER, "::ffff:17.1.2.3") is OpenedBy.APPLE_PRIVACY_PROXY


def test_a_fetch_on_delivery_and_programs_are_machines_and_a_mail_app_later_is_a_person() -> None:
    assert _by(BROWSER, after=timedelta(seconds=3)) is OpenedBy.ON_DELIVERY
    assert _by(None) is OpenedBy.AUTOMATED_CLIENT
    assert _by("python-httpx/0.28.1") is OpenedBy.AUTOMATED_CLIENT
    assert (
        _by("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/126.0 Safari/537.36") is OpenedBy.AUTOMATED_CLIENT
    )
    assert _by(BROWSER) is OpenedBy.PERSON
    # Gmail's image proxy fetches when the person opens the email: a person's open.
    gmail = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    assert _by(gmail, "66.249.84.1") is OpenedBy.PERSON
    # Not sent yet as far as the record says (a resend in flight): judged by the request alone.
    assert (
        opened_by(
            user_agent=BROWSER, client_address=OFFICE, emailed_at=None, now=SENT, on_delivery=timedelta(10)
        )
        is OpenedBy.PERSON
    )
