"""rmkit's reward model inside RL loops: TRL (GRPO and every trainer taking `reward_funcs`), verl and
OpenRLHF, with the prompt run once for all of its completions.

    from rmkit.integrations.trl import reward_function
    reward = reward_function("path/to/rm")                            # local: an rmkit scorer
    reward = reward_function("http://127.0.0.1:8000", api_key="...")  # remote: `rmkit serve`
    GRPOTrainer(model=policy, reward_funcs=reward, ...)

    # verl 0.9: reward.custom_reward_function.path=<rmkit>/integrations/verl.py, .name=compute_score,
    #   +reward.custom_reward_function.reward_kwargs.model=... (or .url=...)
    # OpenRLHF 0.11: --reward.remote_url http://host:8000/k/<key>/get_reward  (rmkit serve, a capability URL)

`rewards` holds what all adapters share: samples to raw rewards (locally or over HTTP), per-sample
failures reported, never a silent 0, and the optional normalisation by a stored mean / std; `coalesce`
gathers the one-sample calls verl makes from its threads into one scoring call.
"""
