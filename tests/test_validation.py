"""check_positive_int: the one size check the package shares."""
import pytest

from linattn.validation import check_positive_int


def test_positive_ints_pass():
    for value in (1, 7, 10 ** 9):
        check_positive_int("size", value)
    check_positive_int("size", None, allow_none=True)


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_anything_else_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"size must be a positive int, got"):
        check_positive_int("size", value)


def test_the_message_says_when_none_is_allowed():
    with pytest.raises(ValueError, match=r"threads must be a positive int or None, got 0"):
        check_positive_int("threads", 0, allow_none=True)
