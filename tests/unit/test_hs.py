import pytest

from hscode.hs import HSCodeError, format_hs10, level, parse_hs, require_hs10


@pytest.mark.parametrize(
    "raw, hs10",
    [
        ("3207.20-9000", "3207209000"),
        ("<em>3207.20</em>-9000 관세율표 해설서", "3207209000"),
        ("제2208.90-9000호", "2208909000"),
        ("201300000", "0201300000"),  # CSV that lost the leading zero of chapter 02
        ("8471.30-1000", "8471301000"),
    ],
)
def test_clean_single_codes(raw, hs10):
    code = parse_hs(raw)
    assert code.hs10 == hs10
    assert (code.hs6, code.hs4, code.hs2) == (hs10[:6], hs10[:4], hs10[:2])
    assert not code.multi and code.raw == raw


@pytest.mark.parametrize(
    "raw", ["① 6110.20-0000 ② 6108.91-0000", "각각 분류", "6110.20-0000, 6108.91-0000"]
)
def test_multi_code_values_are_flagged_not_guessed(raw):
    code = parse_hs(raw)
    assert code.multi
    assert code.hs10 is None and code.hs6 is None
    with pytest.raises(HSCodeError, match="several codes"):
        require_hs10(raw)


def test_six_digit_only_and_garbage():
    assert parse_hs("8471.30").hs6 == "847130"
    assert parse_hs("8471.30").hs10 is None
    garbage = parse_hs("n/a")
    assert garbage.hs10 is None and not garbage.multi
    with pytest.raises(HSCodeError, match="no 10-digit"):
        require_hs10(None)


def test_format_and_level():
    assert format_hs10("3207209000") == "3207.20-9000"
    assert level("3207209000", 4) == "3207"
    with pytest.raises(HSCodeError):
        format_hs10("32072")
    with pytest.raises(ValueError):
        level("3207209000", 5)
