"""
The course: for each exercise, its handout, the functions a student writes (blanked in the handout copy by
make_handout.py) and the tests that grade it (pytest -m exercise_N selects them: tests/conftest.py marks them
from this table). tests/test_exercises.py builds the student copy and checks that exactly these tests fail
there, each with its exercise's NotImplementedError, and that the rest pass: the course cannot drift from
the code.
"""

from typing import NamedTuple


class Exercise(NamedTuple):
    number: int
    handout: str  # file in exercises/
    functions: tuple  # ("module.py", "function") pairs whose bodies the student writes
    graded: tuple  # the fast tests (file::test; a parametrized test by its name) that need it: they grade it
    minutes: int


EXERCISES = (
    Exercise(
        1,
        "1-leave-one-out.md",
        (("loss.py", "group_advantages"),),
        (
            "tests/test_loss.py::test_leave_one_out_advantages_by_hand",
            "tests/test_loss.py::test_leave_one_out_is_a_rescaled_mean_baseline",
            "tests/test_loss.py::test_grpo_std_normalisation_and_zero_variance_groups",
        ),
        45,
    ),
    Exercise(
        2,
        "2-aggregation.md",
        (("loss.py", "token_weights"),),
        (
            "tests/test_loss.py::test_aggregations_by_hand",
            "tests/test_loss.py::test_weights_of_micro_batches_add_up_to_the_whole",
            "tests/test_update.py::test_token_weights_count_the_tokens_of_every_rank",
        ),
        45,
    ),
    Exercise(
        3,
        "3-sharpening-reward.md",
        (("rewards.py", "sharpening_reward"), ("rewards.py", "tempered_reward"), ("rewards.py", "tilted_reward")),
        (
            "tests/test_rewards.py::test_the_trainers_reward_lines_equal_the_authors_transform",
            "tests/test_rewards.py::test_rewards_by_hand",
        ),
        60,
    ),
    Exercise(
        4,
        "4-pass-at-k.md",
        (("evaluate.py", "pass_at_k"),),
        (
            "tests/test_evaluate.py::test_pass_at_k_equals_enumeration_of_subsets",
            "tests/test_evaluate.py::test_summarize_reports_every_metric",
            "tests/test_evaluate.py::test_summarize_votes_over_k_of_the_n_samples",
            "tests/test_evaluate.py::test_pass_at_k_curve_is_unbiased_up_to_n_256",
        ),
        45,
    ),
    Exercise(
        5,
        "5-fixed-length.md",
        (("theory.py", "all_responses"),),
        (
            "tests/test_theory.py::test_listing_sampler_and_log_probs_agree",
            "tests/test_theory.py::test_length_normalised_tempered_optimum_is_a_power_that_fades_with_length",
            "tests/test_theory.py::test_power_distribution_gets_shorter_as_alpha_grows",
            "tests/test_theory.py::test_fixed_length_control_closes_the_length_channel",
            "tests/test_theory.py::test_covariance_condition",
            "tests/test_predictor.py::test_identity_holds_to_numerical_precision_on_the_listed_language",
            "tests/test_power_sample.py::test_smc_converges_to_pi_ref_to_the_alpha_as_particles_grow",
            "tests/test_power_sample.py::test_scalable_power_sampling_converges_to_pi_ref_to_the_alpha_as_futures_grow",
        ),
        60,
    ),
    Exercise(6, "6-your-reward.md", (), (), 75),  # a reward of the student's design, with the test they write
    Exercise(
        7,
        "7-policy-loss.md",
        (("loss.py", "k3_kl"), ("loss.py", "policy_loss")),
        (
            "tests/test_loss.py::test_on_policy_gradient_is_minus_advantage_times_weight",
            "tests/test_loss.py::test_clipped_loss_equals_on_policy_at_ratio_one_and_clips_outside",
            "tests/test_loss.py::test_k3_kl_is_nonnegative_and_zero_at_equal_policies",
            "tests/test_loss.py::test_k3_kl_clamps_q_so_that_a_far_off_token_stays_finite",
            "tests/test_loss.py::test_kl_penalty_enters_the_loss",
        ),
        60,
    ),
    Exercise(
        8,
        "8-self-rewards.md",
        (("rewards.py", "entropy_reward"), ("rewards.py", "majority_vote")),
        (
            "tests/test_self_rewards.py::test_entropy_minimisation_token_form_is_minus_the_mean_entropy",
            "tests/test_self_rewards.py::test_majority_vote_by_hand",
            "tests/test_self_rewards.py::test_majority_vote_ties_go_to_the_answer_given_first",
            "tests/test_self_rewards.py::test_majority_vote_in_the_trainer_never_reads_the_gold",
        ),
        45,
    ),
    Exercise(
        9,
        "9-power-sampling.md",
        (("family/power_sample.py", "acceptance"),),
        (
            "tests/test_power_sample.py::test_acceptance_ratio_by_hand",
            "tests/test_power_sample.py::test_acceptance_is_detailed_balance",
            "tests/test_power_sample.py::test_the_chain_reaches_the_length_of_pi_ref_to_the_alpha",
            "tests/test_power_sample.py::test_language_model_proposal_and_power_rollout",
            "tests/test_predictor.py::test_logp_ref_is_the_models_own_log_prob_of_each_sample",  # its MH case
        ),
        60,
    ),
)

# Tests that need several exercises done: they fail in the student copy until every exercise listed is done, then
# check them together (the sampled training reaches each reward's optimum only if advantages, weights, loss and
# reward are all right). Not part of any one exercise's grade, so that each exercise can be passed alone.
TOGETHER = {
    "tests/test_update.py::test_one_step_of_the_trainer_is_the_update_written_out": (1, 2, 3, 7),
    "tests/test_update.py::test_pi_ref_stays_frozen_and_kl_follows_the_policy": (1, 2, 7),
    "tests/test_update.py::test_every_mode_takes_the_same_step_from_the_same_rewards": (1, 2, 7),
    "tests/test_checkpoint.py::test_resume_restores_everything_the_next_step_reads": (1, 2, 7),
    "tests/test_update.py::test_nan_steps_are_skipped_then_stop_the_run": (2, 7),
    "tests/test_update.py::test_micro_batches_take_the_same_step_as_one_batch": (2, 7),
    "tests/test_update.py::test_gradient_checkpointing_takes_the_same_step": (2, 7),
    "tests/test_power_sample.py::test_random_reward_has_zero_expected_gradient": (1, 2, 7),
    "tests/test_power_sample.py::test_mcmc_reaches_pi_ref_to_the_alpha_on_the_listed_language": (5, 9),
    "tests/test_power_sample.py::test_without_the_length_term_the_chain_settles_elsewhere": (5, 9),
    "tests/test_theory.py::test_kl_regularised_likelihood_reward_is_a_scaled_tempered_reward": (3, 5),
    "tests/test_power_sample.py::test_self_rewards_reach_their_optima_on_the_table": (1, 2, 5, 7, 8),
    "tests/test_theory.py::test_training_reaches_the_closed_form": (1, 2, 3, 5, 7),
    "tests/test_samples.py::test_an_evaluation_writes_its_answers_and_the_steps_group": (1, 2, 7),
    "tests/test_precision_and_sharing.py::test_a_training_step_with_shared_prompts_is_the_same_step": (1, 2, 3, 7),
}


def graded_by(nodeid):
    """The exercises whose graded tests include this test (a parametrized case counts under its test's name)."""
    base = nodeid.split("[")[0]
    return [e.number for e in EXERCISES if base in e.graded]


def together(nodeid):
    """The exercises a test needs all done, when it needs several (TOGETHER); () otherwise."""
    return TOGETHER.get(nodeid.split("[")[0], ())
