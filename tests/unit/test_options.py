"""Which request options the engine serves (``bridged.engine.options``): RFC 7252 5.4.1 and
5.4.5 applied from one table."""

from __future__ import annotations

import pytest
from aiocoap.numbers.codes import Code

from bridged.engine.dm import error_reply
from bridged.engine.options import SERVED, check_options
from bridged.objects.errors import BadOption, ProxyingNotSupported


@pytest.mark.parametrize(
    ("method", "numbers"),
    [
        (Code.GET, []),
        (Code.GET, [11, 11, 15, 15, 17, 12]),  # Uri-Path, Uri-Query twice; Accept; Content-Format
        (Code.GET, [6, 23, 60, 3, 7]),  # Observe, Block2, Size1, Uri-Host, Uri-Port
        (Code.PUT, [11, 27, 60, 12]),  # Block1 with a payload
        (Code.FETCH, [27, 23]),
        (Code.GET, [65000, 2048, 4, 4, 6, 6]),  # electives, known or not, repeated or not
    ],
)
def test_served_options_pass(method: Code, numbers: list[int]) -> None:
    check_options(method, numbers)


@pytest.mark.parametrize(
    ("method", "numbers"),
    [
        (Code.GET, [5]),  # If-None-Match
        (Code.PUT, [5]),
        (Code.PUT, [1]),  # If-Match: no ETags here
        (Code.GET, [9]),  # OSCORE
        (Code.GET, [21]),  # EDHOC
        (Code.PUT, [19]),  # Q-Block1
        (Code.GET, [31]),  # Q-Block2
        (Code.GET, [27]),  # Block1 without a payload
        (Code.DELETE, [27]),
        (Code.GET, [17, 17]),  # Accept twice
        (Code.GET, [3, 3]),  # Uri-Host twice
        (Code.GET, [11, 65003]),  # unknown critical
        (Code.GET, [2049]),
        (Code.GET, [65535]),
    ],
)
def test_critical_options_not_served_are_a_bad_option(method: Code, numbers: list[int]) -> None:
    with pytest.raises(BadOption) as raised:
        check_options(method, numbers)
    assert error_reply(raised.value).code == Code.BAD_OPTION


@pytest.mark.parametrize("number", [35, 39])
def test_proxy_options_are_proxying_not_supported(number: int) -> None:
    with pytest.raises(ProxyingNotSupported) as raised:
        check_options(Code.GET, [11, number])
    assert error_reply(raised.value).code == Code.PROXYING_NOT_SUPPORTED


def test_the_table_lists_critical_options_only() -> None:
    """Electives need no entry: they are served or ignored whatever the table says."""
    assert all(number % 2 == 1 for number in SERVED)
