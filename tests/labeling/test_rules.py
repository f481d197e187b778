"""The retirement rule and the gold-injection schedule, pinned by properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labeling import rules
from labeling.records import ANSWERS

answers = st.lists(st.sampled_from(ANSWERS), min_size=1, max_size=12)
rule_params = st.integers(1, 5).flatmap(lambda a: st.tuples(st.just(a), st.integers(a, 9)))


def retirement_index(sequence, agree, maximum):
    """Independent statement of the rule: the 1-based count at which the subject retires."""
    if len(sequence) >= agree and len(set(sequence[:agree])) == 1:
        return agree
    return maximum if len(sequence) >= maximum else None


def run(sequence, rule):
    state, retired_at = rules.RetirementState(), None
    for count, answer in enumerate(sequence, start=1):
        state, retires = rules.advance(state, answer, rule)
        if retires and retired_at is None:
            retired_at = count
    return state, retired_at


@given(answers, rule_params)
def test_retires_exactly_when_the_rule_says(sequence, params):
    agree, maximum = params
    _, retired_at = run(sequence, rules.RetirementRule(agree, maximum))
    assert retired_at == retirement_index(sequence, agree, maximum)


@given(answers)
def test_default_rule_is_first_two_agree_else_seven(sequence):
    _, retired_at = run(sequence, rules.RetirementRule())
    if len(sequence) >= 2 and sequence[0] == sequence[1]:
        assert retired_at == 2
    elif len(sequence) >= 7:
        assert retired_at == 7
    else:
        assert retired_at is None


@given(answers)
def test_state_counts_every_answer_and_remembers_the_first(sequence):
    state, _ = run(sequence, rules.RetirementRule(agree=20, maximum=20))
    assert state.n_counted == len(sequence)
    assert state.first_answer == sequence[0]
    assert state.unanimous == (len(set(sequence)) == 1)


def test_disagreeing_pair_then_agreement_still_waits_for_seven():
    sequence = ["real", "bogus", "real", "real", "real", "real", "real"]
    _, retired_at = run(sequence, rules.RetirementRule())
    assert retired_at == 7


@pytest.mark.parametrize(("agree", "maximum"), [(0, 7), (3, 2)])
def test_rule_rejects_impossible_parameters(agree, maximum):
    with pytest.raises(ValueError, match="retire"):
        rules.RetirementRule(agree, maximum)


def test_advance_rejects_unknown_answers():
    with pytest.raises(ValueError, match="answer"):
        rules.advance(rules.RetirementState(), "maybe", rules.RetirementRule())


@pytest.mark.parametrize(
    ("n", "rate"), [(0, 0.4), (19, 0.4), (20, 0.3), (39, 0.3), (40, 0.2), (59, 0.2), (60, 0.1),
                    (100_000, 0.1)],
)
def test_default_gold_schedule_decays_with_the_volunteers_count(n, rate):
    assert rules.gold_rate(n) == rate


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ([[20, 0.4]], "open-ended"),
        ([[20, 0.4], [10, 0.2], [None, 0.1]], "increase"),
        ([[20, 1.5], [None, 0.1]], r"\[0, 1\]"),
        ([], "open-ended"),
    ],
)
def test_invalid_gold_schedules_are_refused(schedule, message):
    with pytest.raises(ValueError, match=message):
        rules.validate_gold_schedule(schedule)
