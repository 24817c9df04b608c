import mpmath
import pytest

from riemann.divisor_sum import divisor_sum_of_exponents, number_from_exponents
from riemann.witness import (
    PRECISION,
    decimal_text,
    e_gamma,
    integer_text,
    log_of,
    violates_robin,
    witness_value,
)
from tests.naive import witness_value_mpmath

# e^gamma to 41 significant digits, as published (OEIS A073004).
E_GAMMA_DIGITS = "1.7810724179901979852365041031071795491696"


def test_e_gamma_matches_its_published_digits():
    assert decimal_text(e_gamma(), 41) == E_GAMMA_DIGITS


def test_e_gamma_is_computed_at_the_project_precision():
    assert e_gamma().precision == PRECISION


@pytest.mark.parametrize("n", [-1, 0, 1, 2])
def test_witness_value_refuses_n_below_three(n):
    with pytest.raises(ValueError, match="n >= 3"):
        witness_value(n, 1)


def test_witness_value_of_5040_exceeds_e_gamma():
    # 5040 is the largest known violation of Robin's inequality.
    assert witness_value(5040, 19344) > e_gamma()
    assert not violates_robin(5040, witness_value(5040, 19344))


def test_witness_value_of_a_number_with_thousands_of_digits_is_finite_and_precise():
    exponents = (40,) * 10 + (12,) * 200 + (1,) * 300
    n = number_from_exponents(exponents)
    sigma = divisor_sum_of_exponents(exponents)
    assert n.bit_length() > 3400  # more than 1,000 decimal digits

    value = witness_value(n, sigma)
    reference = witness_value_mpmath(n, sigma, digits=80)

    assert abs(mpmath.mpf(decimal_text(value, 40)) - reference) / reference < 1e-12
    assert 1 < float(value) < 2


def test_log_of_a_huge_number_matches_mpmath():
    n = 7**5000
    with mpmath.workdps(50):
        assert abs(float(log_of(n)) - float(5000 * mpmath.log(7))) < 1e-9


def test_integers_of_any_length_have_decimal_text():
    n = 10**5000 + 7
    text = integer_text(n)
    assert len(text) == 5001
    assert text.endswith("0007")
