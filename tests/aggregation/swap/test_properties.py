"""Properties of SWAP that must hold on any classification sequence (hypothesis)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregation.swap import (
    BOGUS,
    REAL,
    UNKNOWN,
    ClassificationTable,
    EmOptions,
    OnlineSwap,
    SubjectState,
    SwapParams,
    VolunteerState,
    online_step,
    swap_batch,
    swap_em,
    volunteer_skills,
)

EXAMPLES = settings(max_examples=60)


@st.composite
def params_st(draw):
    floor = draw(st.floats(0.01, 0.45))
    return SwapParams(
        prior=draw(st.floats(0.01, 0.99)),
        skill_prior=draw(st.floats(0.0, 1.0)),
        skill_strength=draw(st.floats(0.1, 8.0)),
        skill_floor=floor,
        skill_ceiling=draw(st.floats(0.55, 0.99)),
        require_reference=draw(st.booleans()),
        stability_window=draw(st.integers(1, 4)),
    )


@st.composite
def cases(draw, max_rows=40):
    n_subjects = draw(st.integers(1, 6))
    n_volunteers = draw(st.integers(1, 5))
    rows = draw(st.lists(st.tuples(st.integers(0, n_subjects - 1),
                                   st.integers(0, n_volunteers - 1), st.booleans()),
                         max_size=max_rows))
    truth = np.array(draw(st.lists(st.sampled_from([UNKNOWN, BOGUS, REAL]),
                                   min_size=n_subjects, max_size=n_subjects)), np.int8)
    table = ClassificationTable(
        np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64),
        np.array([r[2] for r in rows], bool), n_subjects, n_volunteers)
    return table, truth, draw(params_st())


def _assert_same(a, b, tol=1e-12):
    assert np.array_equal(a.traj_offsets, b.traj_offsets)
    np.testing.assert_allclose(a.traj_values, b.traj_values, rtol=0, atol=tol)
    np.testing.assert_allclose(a.p_real, b.p_real, rtol=0, atol=tol)
    np.testing.assert_allclose(a.log_odds, b.log_odds, rtol=tol, atol=tol)
    assert np.array_equal(a.n_counted, b.n_counted)
    assert np.array_equal(a.stable_label, b.stable_label)
    assert np.array_equal(a.unstable_label, b.unstable_label)
    for name in ("n_real_seen", "n_real_correct", "n_bogus_seen", "n_bogus_correct",
                 "contributes"):
        assert np.array_equal(getattr(a.skills, name), getattr(b.skills, name)), name
    np.testing.assert_allclose(a.skills.p_real, b.skills.p_real, rtol=0, atol=tol)
    np.testing.assert_allclose(a.skills.p_bogus, b.skills.p_bogus, rtol=0, atol=tol)


@EXAMPLES
@given(cases())
def test_vectorised_online_equals_replay_equals_online_step(case):
    table, truth, params = case
    vectorised = swap_batch(table, truth, params, skill_timing="at_classification")
    replay = OnlineSwap(params, truth).replay(table).result(table.n_subjects, table.n_volunteers)
    assert vectorised.mode == replay.mode == "online"
    _assert_same(vectorised, replay)

    subjects = {s: SubjectState.initial(params) for s in range(table.n_subjects)}
    volunteers = {v: VolunteerState() for v in range(table.n_volunteers)}
    for s, v, r in zip(table.subject.tolist(), table.volunteer.tolist(),
                       table.says_real.tolist(), strict=True):
        subjects[s], volunteers[v] = online_step(subjects[s], volunteers[v], r, int(truth[s]),
                                                 params)
    for s, state in subjects.items():
        np.testing.assert_allclose(state.trajectory, vectorised.trajectory(s), rtol=0,
                                   atol=1e-12)
        assert state.n_counted == vectorised.n_counted[s]
        assert abs(state.log_odds - vectorised.log_odds[s]) <= 1e-12 * max(1, abs(state.log_odds))
    for v, state in volunteers.items():
        assert state.n_real_seen == vectorised.skills.n_real_seen[v]
        assert state.n_bogus_correct == vectorised.skills.n_bogus_correct[v]


@EXAMPLES
@given(cases())
def test_batch_matches_a_plain_loop_with_final_skills(case):
    table, truth, params = case
    result = swap_batch(table, truth, params)
    skills = volunteer_skills(table, truth, params)
    expected = {s: [] for s in range(table.n_subjects)}
    log_odds = dict.fromkeys(expected, np.log(params.prior / (1 - params.prior)))
    for s, v, r in zip(table.subject.tolist(), table.volunteer.tolist(),
                       table.says_real.tolist(), strict=True):
        if not skills.contributes[v]:
            continue
        pr, pb = skills.p_real[v], skills.p_bogus[v]
        log_odds[s] += np.log(pr / (1 - pb)) if r else np.log((1 - pr) / pb)
        expected[s].append(1 / (1 + np.exp(-log_odds[s])))
    for s, values in expected.items():
        np.testing.assert_allclose(result.trajectory(s), values, rtol=0, atol=1e-12)
        final = values[-1] if values else params.prior
        assert abs(result.p_real[s] - final) <= 1e-12


@EXAMPLES
@given(cases())
def test_skills_always_within_the_clamp(case):
    table, truth, params = case
    for result in (swap_batch(table, truth, params),
                   swap_batch(table, truth, params, skill_timing="at_classification"),
                   swap_em(table, truth, params, EmOptions(max_iter=5))):
        for p in (result.skills.p_real, result.skills.p_bogus):
            assert (p >= params.skill_floor).all()
            assert (p <= params.skill_ceiling).all()
        assert ((result.traj_values > 0) & (result.traj_values < 1)).all()


def _direction(p_real: float, p_bogus: float) -> int:
    """+1 if a "Real" answer from this volunteer raises Pr(Real), -1 if it lowers it."""
    return int(np.sign(p_real + p_bogus - 1.0))


@EXAMPLES
@given(cases(), st.data())
def test_posterior_moves_in_each_votes_direction(case, data):
    table, truth, params = case
    result = swap_batch(table, truth, params)
    skills = result.skills
    # Each step: up for "Real" from a better-than-random volunteer, down for "Bogus"; the
    # other way round for a worse-than-random one; flat for a coin.
    prior = params.prior
    seen = dict.fromkeys(range(table.n_subjects), prior)
    at = dict.fromkeys(range(table.n_subjects), 0)
    for s, v, r in zip(table.subject.tolist(), table.volunteer.tolist(),
                       table.says_real.tolist(), strict=True):
        if not skills.contributes[v]:
            continue
        after = result.trajectory(s)[at[s]]
        sign = _direction(skills.p_real[v], skills.p_bogus[v]) * (1 if r else -1)
        if sign > 0:
            assert after >= seen[s] - 1e-15
        elif sign < 0:
            assert after <= seen[s] + 1e-15
        seen[s], at[s] = after, at[s] + 1

    # Flipping one answer on a subject without known truth from "Bogus" to "Real" moves that
    # subject's final Pr(Real) in the volunteer's direction and nothing else.
    candidates = np.flatnonzero((truth[table.subject] == UNKNOWN) & ~table.says_real)
    if candidates.size == 0:
        return
    row = int(data.draw(st.sampled_from(candidates.tolist())))
    says = table.says_real.copy()
    says[row] = True
    flipped = swap_batch(ClassificationTable(table.subject, table.volunteer, says,
                                             table.n_subjects, table.n_volunteers),
                         truth, params)
    s, v = int(table.subject[row]), int(table.volunteer[row])
    sign = _direction(skills.p_real[v], skills.p_bogus[v]) if skills.contributes[v] else 0
    change = flipped.p_real[s] - result.p_real[s]
    if sign > 0:
        assert change >= -1e-15
    elif sign < 0:
        assert change <= 1e-15
    else:
        assert abs(change) <= 1e-12
    others = np.arange(table.n_subjects) != s
    assert np.array_equal(flipped.p_real[others], result.p_real[others])


@EXAMPLES
@given(cases(), st.randoms(use_true_random=False))
def test_final_skills_ignore_the_order_of_reference_classifications(case, random):
    table, truth, params = case
    result = swap_batch(table, truth, params)
    # Shuffle the reference rows among the positions reference rows occupy; the rows of
    # subjects without known truth keep their places.
    positions = np.flatnonzero(truth[table.subject] != UNKNOWN)
    shuffled = positions.tolist()
    random.shuffle(shuffled)
    order = np.arange(len(table))
    order[positions] = shuffled
    permuted = ClassificationTable(table.subject[order], table.volunteer[order],
                                   table.says_real[order], table.n_subjects,
                                   table.n_volunteers)
    again = swap_batch(permuted, truth, params)
    for name in ("n_real_seen", "n_real_correct", "n_bogus_seen", "n_bogus_correct",
                 "p_real", "p_bogus", "contributes"):
        assert np.array_equal(getattr(result.skills, name), getattr(again.skills, name))
    unknown = np.flatnonzero(truth == UNKNOWN)
    for s in unknown:
        assert np.array_equal(result.trajectory(s), again.trajectory(s))
    # A reference subject's final value is a product of the same factors in another order.
    np.testing.assert_allclose(result.p_real, again.p_real, rtol=0, atol=1e-12)


@EXAMPLES
@given(cases())
def test_a_stable_label_is_also_the_unstable_label(case):
    table, truth, params = case
    result = swap_batch(table, truth, params)
    stable = result.stable_label != UNKNOWN
    assert np.array_equal(result.stable_label[stable], result.unstable_label[stable])
    assert (result.n_contributing[stable] >= params.stability_window).all()


@EXAMPLES
@given(cases())
def test_em_without_iterations_is_batch(case):
    table, truth, params = case
    em = swap_em(table, truth, params, EmOptions(max_iter=0))
    batch = swap_batch(table, truth, params)
    assert em.mode == "em"
    assert em.iterations == 0
    np.testing.assert_array_equal(em.traj_values, batch.traj_values)
    np.testing.assert_array_equal(em.skills.p_real, batch.skills.p_real)
